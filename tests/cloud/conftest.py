"""Cloud tests: Terraform, the Google Cloud adapters over loopback wires, emulators,
the functions' wiring and the deploy rehearsal. The servers are in tests/cloud/wire.py
and tests/cloud/emulators.py; their fixtures here, so only this folder starts them."""

from __future__ import annotations

from collections.abc import Iterator

import fsspec
import pytest

from tests.cloud.emulators import DATASTORE, GcloudEmulator
from tests.cloud.wire import (
    BUCKET,
    PROJECT,
    PUBSUB,
    FakeBigQueryEndpoint,
    GcsEmulator,
    GrpcStub,
    grpc_stub_server,
)
from tests.net import free_port


@pytest.fixture(scope="session")
def datastore_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcloudEmulator]:
    """A Datastore emulator for the whole session (in memory, strongly consistent)."""
    with GcloudEmulator(DATASTORE, tmp_path_factory.mktemp("datastore-emulator")) as emulator:
        yield emulator


@pytest.fixture
def datastore_host(datastore_emulator: GcloudEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty emulator (``POST /reset``) with ``DATASTORE_EMULATOR_HOST`` pointing at it."""
    datastore_emulator.post("/reset")
    monkeypatch.setenv(DATASTORE.env_var, datastore_emulator.host)
    return datastore_emulator.host


@pytest.fixture
def grpc_stub() -> Iterator[GrpcStub]:
    """A fresh loopback Dataproc + Dataflow stub."""
    with grpc_stub_server() as stub:
        yield stub


@pytest.fixture
def fake_bigquery() -> Iterator[FakeBigQueryEndpoint]:
    fake = FakeBigQueryEndpoint().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[GcsEmulator]:
    try:
        from gcp_storage_emulator.server import create_server
    except ImportError as exc:  # pragma: no cover - it is a test dependency
        pytest.skip(f"gcp-storage-emulator is not installed: {exc}")
    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        yield GcsEmulator(f"http://127.0.0.1:{port}", server)
    finally:
        server.stop()


@pytest.fixture
def gcs(gcs_emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> GcsEmulator:
    """An empty emulator with bucket :data:`BUCKET`; google-cloud-storage and gcsfs (hence
    ``simrec.storage``) point at it without credentials."""
    gcs_emulator.server.wipe()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.url)
    monkeypatch.setitem(fsspec.config.conf, "gs", {"token": "anon", "project": PROJECT})
    import gcsfs

    gcsfs.GCSFileSystem.clear_instance_cache()
    gcs_emulator.client().create_bucket(BUCKET)
    yield gcs_emulator
    gcsfs.GCSFileSystem.clear_instance_cache()


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcloudEmulator]:
    with GcloudEmulator(PUBSUB, tmp_path_factory.mktemp("pubsub-emulator"), PROJECT) as emu:
        yield emu
