"""The serving model holder: lazy refresh, atomic swap, failures keep the old model."""

from __future__ import annotations

import logging
import threading
import types
from pathlib import Path

import numpy as np
import pytest

from simrec import publishing, storage
from simrec.core import layout
from simrec.core.snapshot import ModelSnapshot
from simrec.serving import model_holder
from simrec.serving.model_holder import MISSING_RETRY_SECONDS, ModelHolder
from simrec.storage import snapshots
from tests.clock import FakeClock

TENANT = "shop"


def snapshot(version: str, top_score: float = 0.75) -> ModelSnapshot:
    return ModelSnapshot(
        skus=["a", "b", "c"],
        indptr=np.array([0, 2, 3, 3]),
        indices=np.array([1, 2, 0]),
        scores=np.array([top_score, 0.25, top_score]),
        users=np.ones(3),
        popularity=np.array([1.0, 3.0, 2.0]),
        metadata={"version": version, "tenant": TENANT},
    )


def holder_over_v1(root: str, refresh_seconds: float, **options) -> tuple[FakeClock, ModelHolder]:
    """A holder (``options``: ModelHolder's) of a tenant whose LATEST is v1, on a clock
    the test moves."""
    clock = FakeClock(1000.0)
    publishing.write_snapshot(root, TENANT, snapshot("v1"))
    return clock, ModelHolder(root, TENANT, refresh_seconds=refresh_seconds, clock=clock, **options)


@pytest.fixture
def root(tmp_path: Path) -> str:
    return str(tmp_path / "models-bucket")


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts of LATEST reads and snapshot loads made through the holder."""
    counts = {"latest": 0, "load": 0}
    latest, read = snapshots.latest_version, snapshots.read_snapshot

    def counted_latest(*args):
        counts["latest"] += 1
        return latest(*args)

    def counted_read(*args):
        counts["load"] += 1
        return read(*args)

    # Only the holder's view of storage is counted: publishing reads LATEST too.
    proxy = types.SimpleNamespace(
        **{k: getattr(snapshots, k) for k in dir(snapshots) if not k.startswith("__")}
    )
    proxy.latest_version, proxy.read_snapshot = counted_latest, counted_read
    monkeypatch.setattr(model_holder, "snapshots", proxy)
    return counts


def test_no_model_then_first_model(root: str, calls: dict[str, int]) -> None:
    clock = FakeClock(1000.0)
    holder = ModelHolder(root, TENANT, refresh_seconds=60, clock=clock)
    assert holder.get() is None
    assert holder.get() is None  # within the retry interval: LATEST not read again
    assert calls["latest"] == 1

    publishing.write_snapshot(root, TENANT, snapshot("v1"))
    clock.now += MISSING_RETRY_SECONDS  # before a first model, retried every second
    model = holder.get()
    assert model is not None and model.version == "v1"
    assert model.sku_index == {"a": 0, "b": 1, "c": 2}
    assert model.popular.tolist() == [1, 2, 0]
    assert calls == {"latest": 2, "load": 1}


def test_swaps_on_latest_change_and_not_before_refresh(root: str, calls: dict) -> None:
    clock, holder = holder_over_v1(root, 60)
    first = holder.get()
    assert first is not None and first.version == "v1"

    publishing.write_snapshot(root, TENANT, snapshot("v2", top_score=0.5))
    clock.now += 59
    assert holder.get() is first  # not due yet
    clock.now += 1
    second = holder.get()
    assert second is not None and second.version == "v2"
    assert second.snapshot.scores.tolist() == [0.5, 0.25, 0.5]
    assert first.version == "v1" and first.snapshot.scores[0] == 0.75  # old one untouched
    assert calls == {"latest": 2, "load": 2}


def test_no_reload_when_latest_is_unchanged(root: str, calls: dict) -> None:
    clock, holder = holder_over_v1(root, 10)
    first = holder.get()
    for _ in range(3):
        clock.now += 10
        assert holder.get() is first
    assert calls == {"latest": 4, "load": 1}
    assert holder.refresh() is False


def test_failed_load_keeps_serving_the_old_model(
    root: str, calls: dict, caplog: pytest.LogCaptureFixture
) -> None:
    clock, holder = holder_over_v1(root, 10)
    first = holder.get()

    # LATEST names a version whose folder is incomplete (no metadata.json) ...
    storage.write_bytes(layout.latest_pointer(root, TENANT), b"v2")
    clock.now += 10
    with caplog.at_level(logging.ERROR, logger=model_holder.__name__):
        assert holder.get() is first
    assert "loading model 'v2'" in caplog.text and "still serving 'v1'" in caplog.text

    # ... then a complete-looking one with corrupt arrays.
    folder = layout.model_version(root, TENANT, "v3")
    for name, content in snapshot("v3").to_files().items():
        storage.write_bytes(layout.join(folder, name), content)
    storage.write_bytes(layout.join(folder, "arrays.npz"), b"not an npz file")
    storage.write_bytes(layout.latest_pointer(root, TENANT), b"v3")
    caplog.clear()
    clock.now += 10
    with caplog.at_level(logging.ERROR, logger=model_holder.__name__):
        assert holder.get() is first
    assert "loading model 'v3'" in caplog.text

    # Once the version is fixed, the next check loads it.
    publishing.write_snapshot(root, TENANT, snapshot("v3"))
    clock.now += 10
    assert holder.get().version == "v3"


def test_failed_latest_read_keeps_serving(
    root: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock, holder = holder_over_v1(root, 5)
    first = holder.get()

    def broken(*args):
        raise OSError("bucket unreachable")

    monkeypatch.setattr(model_holder.snapshots, "latest_version", broken)
    clock.now += 5
    with caplog.at_level(logging.ERROR, logger=model_holder.__name__):
        assert holder.get() is first
    assert "reading LATEST" in caplog.text and "bucket unreachable" in caplog.text


def test_zero_refresh_never_rechecks_once_loaded(root: str, calls: dict) -> None:
    clock = FakeClock(1000.0)
    holder = ModelHolder(root, TENANT, refresh_seconds=0, clock=clock)
    assert holder.get() is None
    publishing.write_snapshot(root, TENANT, snapshot("v1"))
    clock.now += MISSING_RETRY_SECONDS
    assert holder.get().version == "v1"
    publishing.write_snapshot(root, TENANT, snapshot("v2"))
    clock.now += 1e9
    assert holder.get().version == "v1"
    assert calls == {"latest": 2, "load": 1}
    assert holder.refresh() is True and holder.get().version == "v2"  # explicit refresh


def test_requests_keep_the_old_model_while_one_thread_loads(
    root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, holder = holder_over_v1(root, 10)
    first = holder.get()
    publishing.write_snapshot(root, TENANT, snapshot("v2"))

    entered, release = threading.Event(), threading.Event()
    read = snapshots.read_snapshot

    def slow_read(*args):
        entered.set()
        assert release.wait(30)
        return read(*args)

    monkeypatch.setattr(model_holder.snapshots, "read_snapshot", slow_read)
    clock.now += 10
    result: list = []
    loader = threading.Thread(target=lambda: result.append(holder.get()))
    loader.start()
    assert entered.wait(30)
    # The loader holds the lock mid-load: another request is served the old model at once.
    assert holder.get() is first
    release.set()
    loader.join(30)
    assert result[0].version == "v2" and holder.get() is result[0]


def test_bad_refresh_is_rejected(root: str) -> None:
    with pytest.raises(ValueError, match="refresh_seconds"):
        ModelHolder(root, TENANT, refresh_seconds=-1)


def test_background_load_never_blocks_a_request(
    root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``simrec serve``'s holders: the request finding a new version does not wait for it."""
    clock, holder = holder_over_v1(root, 10, background=True)
    first = holder.start()  # at server start, before the first request
    assert first is not None and first.version == "v1"
    publishing.write_snapshot(root, TENANT, snapshot("v2"))

    release = threading.Event()
    read = snapshots.read_snapshot

    def slow_read(*args):
        assert release.wait(30)
        return read(*args)

    monkeypatch.setattr(model_holder.snapshots, "read_snapshot", slow_read)
    clock.now += 10
    assert holder.get() is first  # returns at once: the load runs in a thread
    assert holder.get() is first
    release.set()
    holder.wait_for_loader(30)
    assert holder.get().version == "v2"


def test_loaded_model_precomputes_catalog_lookups(root: str) -> None:
    snap = snapshot("v1")
    snap = ModelSnapshot(
        # warm_users 0: rows as built (the cold-item blend: tests/unit/test_content.py)
        **{**snap.__dict__, "metadata": {**snap.metadata, "content": {"warm_users": 0}},
           "catalog": {
            "sku": ["c", "a", "zz"],
            "category": ["k2", "k1", "k1"],
            "in_stock": [True, False, True],
            "colour": ["red", "blue", "green"],
        }}
    )
    publishing.write_snapshot(root, TENANT, snap)
    model = ModelHolder(root, TENANT, refresh_seconds=0).get()
    catalog = model.catalog
    assert catalog is not None
    assert catalog.in_stock.tolist() == [0, 0, 1]  # b is not listed: not in stock
    assert catalog.category == ["k1", None, "k2"]
    assert catalog.attributes == [{"colour": "blue"}, None, {"colour": "red"}]
    assert catalog.popular_by_category == {"k1": [0], "k2": [2]}  # zz is not in the model
    assert catalog.mask("k2", False).tolist() == [0, 0, 1]
    assert catalog.mask(None, True).tolist() == [0, 0, 1]
    assert catalog.mask(None, False) is None
    assert catalog.mask("unknown", False).tolist() == [0, 0, 0]
    assert model.scorer.score(np.array([0], np.int32), np.array([1.0]), 5) == [(1, 0.75), (2, 0.25)]


def test_background_holder_never_loads_on_the_request_path(
    root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the first model too: get() answers None at once (the endpoint: 503) while
    the loader thread loads; the request that finds the model loaded gets it."""
    clock, holder = holder_over_v1(root, 10, background=True)
    release = threading.Event()
    read = snapshots.read_snapshot
    loading_threads: list[str] = []

    def slow_read(*args):
        loading_threads.append(threading.current_thread().name)
        assert release.wait(30)
        return read(*args)

    monkeypatch.setattr(model_holder.snapshots, "read_snapshot", slow_read)
    assert holder.get() is None  # returns although the load has not finished
    assert holder.get() is None
    release.set()
    holder.wait_for_loader(30)
    assert holder.get().version == "v1"
    assert loading_threads and all(n.startswith("model-loader-") for n in loading_threads)


@pytest.mark.parametrize("pointer", ["../../etc", "../other/v1", "/abs", ".hidden", "a/b"])
def test_latest_naming_a_path_is_never_read(
    root: str, calls: dict, caplog: pytest.LogCaptureFixture, pointer: str
) -> None:
    clock, holder = holder_over_v1(root, 10)
    first = holder.get()
    storage.write_bytes(layout.latest_pointer(root, TENANT), pointer.encode())
    clock.now += 10
    with caplog.at_level(logging.ERROR, logger=model_holder.__name__):
        assert holder.get() is first
    # snapshots.latest_version checks LATEST's content by the one name rule (layout).
    assert calls["load"] == 1 and "is not a valid name" in caplog.text


def test_non_finite_scores_are_rejected_at_load(root: str, caplog) -> None:
    bad = snapshot("v1")
    bad.scores[0] = np.nan
    publishing.write_snapshot(root, TENANT, bad)
    holder = ModelHolder(root, TENANT, refresh_seconds=10, clock=FakeClock(1000.0))
    with caplog.at_level(logging.ERROR, logger=model_holder.__name__):
        assert holder.get() is None
    assert "non-finite value(s)" in caplog.text  # ModelSnapshot.validate, at load


def test_one_loader_thread_per_holder_woken_by_requests(root: str) -> None:
    """A due refresh costs the request an event set: the same loader thread runs every
    check, and ``close`` (a dropped holder) ends it."""
    clock, holder = holder_over_v1(root, 10, background=True)
    holder.start(wait=False)
    holder.wait_for_loader(30)
    loader = holder._loader
    assert holder.get().version == "v1" and loader is not None and loader.is_alive()
    for version in ("v2", "v3"):
        publishing.write_snapshot(root, TENANT, snapshot(version))
        clock.now += 10
        assert holder.get().version != version  # answered by the current model at once
        holder.wait_for_loader(30)
        assert holder.get().version == version and holder._loader is loader
    holder.close()
    loader.join(30)
    assert not loader.is_alive() and holder.get().version == "v3"
