"""A server's model loads: built in a loader process, memory-mapped, swapped.

The real child process (``python -m simrec.serving.model_image``) builds every image
here; answers through ``ServingApp`` are compared byte for byte with a model built in
this process, a corrupt version and a crashing child keep the old model, and the image
files are gone (and their mappings released) once a model is replaced.
"""

from __future__ import annotations

import gc
import logging
import math
import mmap
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from simrec import publishing, storage
from simrec.config import Settings
from simrec.core import layout
from simrec.core.snapshot import ARRAYS_NAME, ModelSnapshot
from simrec.serving import model_holder, model_image
from simrec.serving.api import ServingApp
from simrec.serving.model_holder import HolderRegistry, LoadedModel, ModelHolder
from simrec.storage import snapshots
from tests.shops import snapshot_from_rows

TENANT = "shop"
SKUS = ["a", "b", "c", "d", "e", "ü-1", "日本"]
CATEGORY = ["k1", "k2", None, "k1", "k2", "k3", "k1"]


def snapshot(version: str, scale: float = 1.0) -> ModelSnapshot:
    rows = {0: [(1, 0.75), (2, 0.375)], 1: [(0, 0.75), (3, 0.5), (5, 0.25)],
            2: [(0, 0.375)], 3: [(6, 0.5), (1, 0.125)], 5: [(1, 0.25)]}  # fmt: skip
    listed = [*SKUS[:-1], "not-in-model"]  # 日本 unlisted: no category, not in stock
    return snapshot_from_rows(
        SKUS,
        rows,
        [10.0, 8.0, 5.0, 3.0, 12.0, 0.0, 7.0],
        {"version": version, "tenant": TENANT},
        scale=scale,
        catalog={
            "sku": listed,
            "category": CATEGORY[:-1] + ["k9"],
            "in_stock": [True, False, True, True, False, True, True],
            "price": [1.5, math.nan, 0.1, None, 2.0, 1e300, 3.0],
            "tags": [["x"], [], None, ["y", "z"], ["x"], ["ü"], []],
        },
    )


REQUESTS = [
    ("/recommendations", "browsed=a"),
    ("/recommendations", "browsed=a,b&basket=d&n=5&exclude_seen=false"),
    ("/recommendations", "purchased=%C3%BC-1&in_stock_only=true"),
    ("/recommendations", "browsed=b&category=k1"),
    ("/recommendations", "browsed=e"),  # no neighbors: the fallback
    ("/recommendations", "browsed=unknown&category=k2&n=3"),
    ("/recommendations", "browsed=c&exclude=a,%E6%97%A5%E6%9C%AC"),
    ("/similar", "sku=b&n=2"),
    ("/similar", "sku=%E6%97%A5%E6%9C%AC"),
    ("/similar", "sku=d&in_stock_only=true"),
    ("/similar", "sku=nope"),
    ("/make_recommendation", "browsed=a,b"),
    ("/healthz", ""),
]


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A models bucket, and a temp dir of the test's own (where images are written)."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return str(tmp_path / "models-bucket")


def images_left() -> list[str]:
    return [p.name for p in Path(tempfile.gettempdir()).iterdir()
            if p.name.startswith(model_image.TEMP_PREFIX)]  # fmt: skip


def mapped_images() -> int:
    """How many image files of this test this process still maps (deleted files: only
    the mappings name them)."""
    maps = Path("/proc/self/maps").read_text()
    return len({line.split()[5] for line in maps.splitlines()
                if tempfile.gettempdir() in line and model_image.IMAGE_NAME in line})  # fmt: skip


def answers(app: ServingApp) -> list[tuple[int, bytes]]:
    return [app.respond("GET", path, query)[::2] for path, query in REQUESTS]


def test_the_mapped_model_answers_exactly_as_an_in_process_one(root: str) -> None:
    publishing.write_snapshot(root, TENANT, snapshot("v1"))
    settings = Settings(models_uri=root, tenant=TENANT, model_refresh_seconds=0)
    here = ServingApp(settings, ModelHolder(root, TENANT, 0))
    mapped_holder = ModelHolder(root, TENANT, 0, background=True, isolated=True)
    mapped = ServingApp(settings, mapped_holder)
    here.start()
    mapped.start()
    expected = answers(here)
    assert [status for status, _ in expected] == [200] * 10 + [404, 200, 200]
    assert answers(mapped) == expected
    assert answers(mapped) == expected  # and again, from the decoded caches

    # The same arrays, bit for bit: built here vs mapped from the child's file.
    built = model_image.build_image(snapshots.read_snapshot(root, TENANT, "v1"))
    assert isinstance(mapped_holder.current.snapshot.indices.base.obj, mmap.mmap)  # no copy
    arrays, metadata = model_image.map_image(_write(built, {"version": "v1"}))
    assert metadata == {"version": "v1"}
    for name, array in built.items():
        assert arrays[name].dtype == array.dtype and arrays[name].tobytes() == array.tobytes()
    assert mapped_holder.current.snapshot.scores.flags.writeable is False  # read-only pages


def _write(arrays: dict, metadata: dict) -> str:
    path = str(Path(tempfile.mkdtemp()) / "x.image")
    model_image.write_image(path, arrays, metadata)
    return path


def test_a_corrupt_version_keeps_the_old_model_and_is_retried(
    root: str, caplog: pytest.LogCaptureFixture
) -> None:
    publishing.write_snapshot(root, TENANT, snapshot("v1"))
    holder = ModelHolder(root, TENANT, 10, background=True, isolated=True)
    first = holder.start()
    assert first is not None and first.version == "v1"

    folder = layout.model_version(root, TENANT, "v2")
    for name, content in snapshot("v2", scale=0.5).to_files().items():
        storage.write_bytes(layout.join(folder, name), content)
    storage.write_bytes(layout.join(folder, ARRAYS_NAME), b"not an npz file")
    storage.write_bytes(layout.latest_pointer(root, TENANT), b"v2")
    with caplog.at_level(logging.ERROR, logger=model_holder.__name__):
        assert holder.refresh() is False
    assert holder.current is first
    (record,) = [r for r in caplog.records if r.name == model_holder.__name__]
    message = record.getMessage()
    assert "loading model 'v2' of tenant 'shop' failed" in message
    assert "still serving 'v1'" in message
    assert "ValueError: " in message and "\n" not in message and record.exc_info is None
    assert images_left() == []

    publishing.write_snapshot(root, TENANT, snapshot("v2", scale=0.5))  # repaired
    assert holder.refresh() is True and holder.current.version == "v2"
    assert holder.current.snapshot.scores[0] == np.float32(0.375)


def test_a_crashed_loader_process_keeps_the_old_model(
    root: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    publishing.write_snapshot(root, TENANT, snapshot("v1"))
    holder = ModelHolder(root, TENANT, 10, background=True, isolated=True)
    first = holder.start()
    publishing.write_snapshot(root, TENANT, snapshot("v2"))
    crash = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
    monkeypatch.setattr(model_image, "child_command", lambda *args: crash)  # the OOM killer
    with caplog.at_level(logging.ERROR, logger=model_holder.__name__):
        assert holder.refresh() is False
    assert holder.current is first
    assert "killed by signal 9" in caplog.text and "still serving 'v1'" in caplog.text
    assert images_left() == []
    monkeypatch.undo()
    assert holder.refresh() is True and holder.current.version == "v2"


def test_image_files_are_gone_and_released_once_a_model_is_replaced(root: str) -> None:
    publishing.write_snapshot(root, TENANT, snapshot("v1"))
    holder = ModelHolder(root, TENANT, 10, background=True, isolated=True)
    first = holder.start()
    assert images_left() == []  # unlinked as soon as mapped
    assert mapped_images() == 1
    publishing.write_snapshot(root, TENANT, snapshot("v2", scale=0.5))
    assert holder.refresh() is True
    assert images_left() == [] and mapped_images() == 2  # a request may still hold v1 ...
    assert first.snapshot.scores.tolist() == [0.75, 0.375, 0.75, 0.5, 0.25, 0.375, 0.5, 0.125,
                                              0.25]  # fmt: skip
    assert first.sku_index["日本"] == 6  # ... and v1 still answers it
    del first
    gc.collect()
    assert mapped_images() == 1  # dropped: its pages are freed


def test_a_holder_never_published_is_not_ready(root: str) -> None:
    """Before a first model the isolated holder answers None (/startupz 503)."""
    folder = layout.model_version(root, TENANT, "v1")
    for name, content in snapshot("v1").to_files().items():
        storage.write_bytes(layout.join(folder, name), content)
    storage.write_bytes(layout.join(folder, ARRAYS_NAME), b"broken")
    storage.write_bytes(layout.latest_pointer(root, TENANT), b"v1")
    holder = ModelHolder(root, TENANT, 10, background=True, isolated=True)
    app = ServingApp(Settings(models_uri=root, tenant=TENANT), holder)
    assert holder.start() is None and holder.published is True
    assert app.respond("GET", "/startupz", "")[0] == 503
    assert app.respond("GET", "/healthz", "")[0] == 503


def test_the_registry_is_the_one_cache_of_holders(root: str) -> None:
    registry = HolderRegistry(max_unpinned=2)
    server = registry.get(root, TENANT, 30, background=True)
    assert server is registry.get(root, TENANT, 30.0, True) and server.isolated
    assert not registry.get(root, TENANT, 30).isolated  # the CLI's: built in process
    others = [registry.get(root, f"t{k}", 30, True, pinned=False) for k in range(3)]
    assert registry.tenants(root, pinned=False) == ["t1", "t2"]
    assert others[0]._closed and not others[2]._closed  # the least recent one dropped
    assert registry.find(root, "t1", 30, True) is others[1]  # found: now the most recent
    assert registry.tenants(root, pinned=False) == ["t2", "t1"]
    assert registry.get(root, "t2", 30, True) is others[2]  # configured later: pinned
    assert registry.tenants(root, pinned=False) == ["t1"]
    assert registry.find(root, "nobody", 30, True) is None
    registry.clear()
    assert registry.tenants(root, pinned=True) == [] and server._closed


def test_from_snapshot_and_from_image_agree() -> None:
    snap = snapshot("v1")
    model = LoadedModel.from_snapshot("v1", snap)
    assert model.sku_index == {s: i for i, s in enumerate(SKUS)} and model.snapshot.skus == SKUS
    assert list(model.popular_list) == model.popular.tolist() == [4, 0, 1, 6, 2, 3]  # not 5: 0
    assert list(model.popularity) == snap.popularity.tolist()
    assert model.catalog is not None and model.catalog.category == [*CATEGORY[:-1], None]
    assert model.catalog.attributes[1] == {"price": None, "tags": []}  # NaN: null, as served
    assert model.catalog.popular_by_category == {"k1": [0, 3], "k2": [4, 1], "k3": []}
