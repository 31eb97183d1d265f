"""The load pipeline against the real Cloud Datastore emulator (skipped when absent).

Entities are read back with the real ``google.cloud.datastore`` client, which uses
anonymous credentials by itself when ``DATASTORE_EMULATOR_HOST`` is set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from google.cloud import datastore

from simrec import storage
from simrec.core import layout
from simrec.jobs import beam_load
from simrec.storage import snapshots
from tests.builders import (
    CREATED_AT_DT,
    RUN_ID,
    SAMPLE_ITEMS,
    SAMPLE_NEIGHBORS,
    random_neighbors,
    write_similarities,
)
from tests.engines.test_load_pipeline import expected_row
from tests.paths import REPO

PROJECT = "simrec-test"
NAMESPACE = "shop"


def _entities(namespace: str | None) -> dict[str, datastore.Entity]:
    client = datastore.Client(project=PROJECT, namespace=namespace)
    return {e.key.name: e for e in client.query(kind=beam_load.ENTITY_KIND).fetch()}


def _plain(entities: dict[str, datastore.Entity]) -> dict[str, tuple]:
    return {k: (dict(e), set(e.exclude_from_indexes)) for k, e in entities.items()}


def _assert_entities(entities: dict, neighbors: dict, version: str) -> None:
    assert sorted(entities) == sorted(neighbors)
    for sku, entity in entities.items():
        row = expected_row(sku, neighbors[sku])
        assert entity.key.flat_path == (beam_load.ENTITY_KIND, sku)
        assert (entity.key.project, entity.key.namespace) == (PROJECT, NAMESPACE)
        assert dict(entity) == {
            "items": row["items"],
            "scores": row["scores"],
            "model_version": version,
            "updated_at": CREATED_AT_DT,
        }
        assert set(entity.exclude_from_indexes) == {"items", "scores"}


@pytest.mark.emulator
def test_load_into_datastore_rerun_and_new_version(tmp_path: Path, datastore_host: str) -> None:
    neighbors, items = random_neighbors(seed=3, n_items=60)
    uri = write_similarities(tmp_path, neighbors, items, parts=3)
    models = str(tmp_path / "bucket")
    argv = [
        "--similarities", uri, "--models_root", models, "--tenant", "default",
        "--datastore_project", PROJECT, "--datastore_namespace", NAMESPACE,
    ]  # fmt: skip

    # first run exactly as the local Dataflow launcher does it: a subprocess
    assert os.environ["DATASTORE_EMULATOR_HOST"] == datastore_host
    done = subprocess.run(
        [sys.executable, str(REPO / "beam" / "load_pipeline.py"), *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["datastore"] == {"project": PROJECT, "namespace": NAMESPACE}
    first = _entities(NAMESPACE)
    _assert_entities(first, neighbors, RUN_ID)
    assert _entities(None) == {}  # nothing leaked into the default namespace

    client = datastore.Client(project=PROJECT, namespace=NAMESPACE)
    by_version = client.query(kind=beam_load.ENTITY_KIND)
    by_version.add_filter(filter=datastore.query.PropertyFilter("model_version", "=", RUN_ID))
    assert len(list(by_version.fetch())) == len(neighbors)
    some_neighbor = next(iter(neighbors.values()))[0][0]
    by_item = client.query(kind=beam_load.ENTITY_KIND)
    by_item.add_filter(filter=datastore.query.PropertyFilter("items", "=", some_neighbor))
    assert list(by_item.fetch()) == []  # unindexed: no query can see the lists

    # rerun: no duplicate, no change, same LATEST
    beam_load.run(argv)
    assert _plain(_entities(NAMESPACE)) == _plain(first)
    assert snapshots.latest_version(models, "default") == RUN_ID

    # a new version of the same run overwrites every entity in place
    beam_load.run([*argv, "--model_version", "manual-2"])
    _assert_entities(_entities(NAMESPACE), neighbors, "manual-2")
    assert snapshots.latest_version(models, "default") == "manual-2"


@pytest.mark.emulator
def test_failed_datastore_write_does_not_move_latest(
    tmp_path: Path, datastore_host: str, capsys: pytest.CaptureFixture
) -> None:
    # Datastore rejects key names of the form __*__: the write step fails for real.
    neighbors = {**SAMPLE_NEIGHBORS, "__reserved__": [("a", 0.5, 1.0)]}
    uri = write_similarities(tmp_path, neighbors, SAMPLE_ITEMS)
    models = str(tmp_path / "bucket")
    code = beam_load.main(
        ["--similarities", uri, "--models_root", models, "--datastore_project", PROJECT]
    )
    assert code == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after Beam's own log lines
    assert last.startswith("load_pipeline: pipeline failed: ") and "reserved" in last
    assert snapshots.latest_version(models, "default") is None
    assert not storage.exists(layout.model_version(models, "default", RUN_ID))


def test_rampup_throttling_is_off_only_against_the_emulator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entities = beam_load.ToNeighborEntities(PROJECT, None, "v")
    monkeypatch.delenv("DATASTORE_EMULATOR_HOST", raising=False)
    assert beam_load.WriteNeighborsToDatastore(entities)._rampup is True
    monkeypatch.setenv("DATASTORE_EMULATOR_HOST", "127.0.0.1:1")
    assert beam_load.WriteNeighborsToDatastore(entities)._rampup is False
    explicit = beam_load.WriteNeighborsToDatastore(entities, throttle_rampup=True)
    assert explicit._rampup is True


def test_latest_waits_for_the_datastore_write(tmp_path: Path) -> None:
    """Publishing takes the write's output as a side input, so a runner must finish the
    write before LATEST can move (the emulator test above shows a failed write stops it)."""
    import apache_beam as beam

    uri = write_similarities(tmp_path)
    argv = ["--similarities", uri, "--models_root", str(tmp_path / "m")]
    options = beam_load.pipeline_options([*argv, "--datastore_project", PROJECT])
    built = beam_load.build_pipeline(beam.Pipeline(options=options), options)
    assert built.datastore is not None
    publish = built.published.producer
    assert [side.pvalue for side in publish.side_inputs] == [built.datastore]

    options = beam_load.pipeline_options(argv)
    without = beam_load.build_pipeline(beam.Pipeline(options=options), options)
    assert without.datastore is None and not without.published.producer.side_inputs


def test_emulator_fixture_explains_why_it_skips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.cloud.emulators import DATASTORE, EmulatorSpec, GcloudEmulator, missing_reason

    absent = EmulatorSpec("nothing", "no-such-emulator-component", "NOTHING_EMULATOR_HOST")
    if missing_reason(DATASTORE) is None:  # gcloud present: a missing component is named
        assert "no-such-emulator-component" in (missing_reason(absent) or "")
    monkeypatch.setenv("PATH", str(tmp_path))  # no gcloud, no java on this PATH
    assert "gcloud CLI is not installed" in (missing_reason(DATASTORE) or "")
    with pytest.raises(pytest.skip.Exception, match="gcloud CLI"):
        GcloudEmulator(DATASTORE, tmp_path).start()
