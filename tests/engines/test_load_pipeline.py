"""beam/load_pipeline.py on Beam's local FnApiRunner: each composite, then end to end.

The similarity output is written by ``tests.builders.write_similarities`` in the Spark
job's shape (docs/architecture.md), split over several part files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
import scipy.sparse as sp
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from simrec import storage
from simrec.core import layout, model_builder
from simrec.jobs import beam_load
from simrec.storage import snapshots
from tests.builders import (
    CREATED_AT,
    CREATED_AT_DT,
    RUN_ID,
    SAMPLE_ITEMS,
    SAMPLE_NEIGHBORS,
    SIMILARITY_PARAMS,
    item_row,
    random_neighbors,
    write_similarities,
)

REPO = Path(__file__).resolve().parents[2]


def expected_row(sku: str, neighbors: list[tuple[str, float, float]]) -> dict:
    ordered = sorted(neighbors, key=lambda e: (-e[1], e[0]))
    return {
        "sku": sku,
        "items": [e[0] for e in ordered],
        "scores": [e[1] for e in ordered],
        "users": [e[2] for e in ordered],
    }


def assert_model_matches(snapshot, neighbors, items) -> None:
    """CSR, vocabulary and popularity against a scipy matrix built from the input rows."""
    skus = sorted(set(items) | set(neighbors) | {n for v in neighbors.values() for n, *_ in v})
    assert snapshot.skus == skus
    index = {s: i for i, s in enumerate(skus)}
    r = [index[s] for s, v in neighbors.items() for _ in v]
    c = [index[n] for v in neighbors.values() for n, *_ in v]
    shape = (len(skus), len(skus))
    for field, values in (
        ("scores", [e[1] for v in neighbors.values() for e in v]),
        ("users", [e[2] for v in neighbors.values() for e in v]),
    ):
        oracle = sp.coo_matrix((values, (r, c)), shape=shape).toarray()
        got = sp.csr_matrix((getattr(snapshot, field), snapshot.indices, snapshot.indptr), shape)
        np.testing.assert_allclose(got.toarray(), oracle, rtol=1e-6, atol=0)  # float32 storage
    for i in range(len(skus)):
        idx, sc = snapshot.neighbors(i)
        pairs = list(zip(-sc, idx, strict=True))
        assert pairs == sorted(pairs), f"row {skus[i]} out of order"
    assert snapshot.popularity.tolist() == [float(items.get(s, (0,))[0]) for s in skus]
    # Trending (simrec.core.trending), PARAMS' window the default 30 days: 7 recent, 23
    # prior; smoothing 1, min support 5; growth desc, recent desc, sku asc.
    growth = {s: (w / 7 + 1) / (u / 23 + 1) for s, (u, w) in items.items() if w >= 5}
    want = sorted(growth, key=lambda s: (-growth[s], -items[s][1], s))
    assert [skus[i] for i in snapshot.trending] == want
    np.testing.assert_allclose(snapshot.trending_scores, [growth[s] for s in want], rtol=1e-12)


def file_state(folder: str) -> dict[str, tuple[int, bytes]]:
    return {
        p.name: (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(Path(folder).iterdir())
        if p.is_file()
    }


def local_pipeline() -> BeamTestPipeline:
    """A TestPipeline on the offline local runner (plain DirectRunner would fetch Prism)."""
    return BeamTestPipeline(runner=beam_load.DEFAULT_RUNNER)


@pytest.fixture
def similarities(tmp_path: Path) -> str:
    return write_similarities(tmp_path)


# --- composites -----------------------------------------------------------------------
def test_read_neighbor_lists(similarities: str) -> None:
    expected = [expected_row(s, v) for s, v in SAMPLE_NEIGHBORS.items()]
    with local_pipeline() as p:
        rows = p | beam_load.ReadNeighborLists(similarities)
        assert_that(rows, equal_to(expected))


def test_read_neighbor_lists_sorts_unsorted_input(tmp_path: Path) -> None:
    shuffled = {"a": [("d", 0.5, 1.0), ("b", 0.9, 3.0), ("c", 0.5, 2.0)]}
    uri = write_similarities(tmp_path, shuffled, {"a": (1, 1.0)}, parts=1)
    with local_pipeline() as p:
        rows = p | beam_load.ReadNeighborLists(uri)
        assert_that(rows, equal_to([expected_row("a", shuffled["a"])]))
    assert expected_row("a", shuffled["a"])["items"] == ["b", "c", "d"]


def test_read_item_stats(similarities: str) -> None:
    expected = [item_row(s, u, w) for s, (u, w) in SAMPLE_ITEMS.items()]
    with local_pipeline() as p:
        stats = p | beam_load.ReadItemStats(similarities)
        assert_that(stats, equal_to(expected))


def test_to_neighbor_entities() -> None:
    rows = [expected_row(s, v) for s, v in SAMPLE_NEIGHBORS.items()]

    def check(entities: list) -> None:
        assert sorted(e.key.path_elements for e in entities) == [
            ("ItemNeighbors", s) for s in sorted(SAMPLE_NEIGHBORS)
        ]
        for entity in entities:
            sku = entity.key.path_elements[1]
            assert (entity.key.project, entity.key.namespace, entity.key.parent) == (
                "proj",
                "ns1",
                None,
            )
            assert entity.exclude_from_indexes == {"items", "scores"}
            assert entity.properties == {
                "items": expected_row(sku, SAMPLE_NEIGHBORS[sku])["items"],
                "scores": expected_row(sku, SAMPLE_NEIGHBORS[sku])["scores"],
                "model_version": "v7",
                "updated_at": CREATED_AT_DT,
            }
            client = entity.to_client_entity()  # what WriteToDatastore sends
            assert set(client.exclude_from_indexes) == {"items", "scores"}
        a = next(e for e in entities if e.key.path_elements[1] == "a")
        assert a.properties["items"] == ["b", "c", "d"]  # score desc, tie by sku

    with local_pipeline() as p:
        entities = (
            p
            | beam.Create(rows)
            | beam_load.ToNeighborEntities("proj", "ns1", "v7", updated_at=CREATED_AT_DT)
        )
        assert_that(entities, check)


def test_to_neighbor_entities_default_namespace_and_project_required() -> None:
    entity = beam_load.neighbor_entity(
        expected_row("b", SAMPLE_NEIGHBORS["b"]), "proj", "", "v1", CREATED_AT_DT
    )
    assert entity.key.namespace is None
    assert entity.to_client_entity().key.flat_path == ("ItemNeighbors", "b")
    with pytest.raises(ValueError, match="project"):
        beam_load.ToNeighborEntities("", None, "v1")


def test_build_serving_model() -> None:
    neighbors, items = random_neighbors(seed=11)
    rows = [expected_row(s, v) for s, v in neighbors.items()]
    stats = [item_row(s, u, w) for s, (u, w) in items.items()]
    meta = {"version": "v1", "tenant": "default", "source": "mem://"}

    def check(actual: list) -> None:  # runs inside the pipeline: a failure fails the run
        assert len(actual) == 1
        snapshot = actual[0]
        assert_model_matches(snapshot, neighbors, items)
        assert snapshot.metadata == {
            **meta,
            "counts": {
                "items": len(snapshot.skus),
                "neighbor_rows": len(neighbors),
                "nnz": sum(len(v) for v in neighbors.values()),
            },
        }

    with local_pipeline() as p:
        model = (
            p | "Rows" >> beam.Create(rows),
            p | "Items" >> beam.Create(stats),
        ) | beam_load.BuildServingModel(meta)
        assert_that(model, check)


def test_a_failing_matcher_fails_the_pipeline() -> None:
    """Guards the tests above: matchers must really run and propagate their failure."""

    def check(actual: list) -> None:
        raise AssertionError("matcher ran")

    with pytest.raises(Exception, match="matcher ran"), local_pipeline() as p:
        assert_that(p | beam.Create([1]), check)


def test_build_serving_model_rejects_empty_neighbors() -> None:
    with pytest.raises(Exception, match="no neighbor rows"), local_pipeline() as p:
        _ = (
            p | "Rows" >> beam.Create([]),
            p | "Items" >> beam.Create([{"sku": "a", "users": 1, "weight": 1.0}]),
        ) | beam_load.BuildServingModel({"version": "v1", "source": "empty"})


def _sample_snapshot(version: str = "v1", **meta):
    rows = [expected_row(s, v) for s, v in SAMPLE_NEIGHBORS.items()]
    stats = [{"sku": s, "users": u, "weight": w} for s, (u, w) in SAMPLE_ITEMS.items()]
    return model_builder.build_snapshot(rows, stats, {"version": version, **meta})


def test_publish_serving_model(tmp_path: Path) -> None:
    root = str(tmp_path / "bucket")
    snapshot = _sample_snapshot("v1")
    folder = layout.model_version(root, "default", "v1")
    with local_pipeline() as p:
        published = p | beam.Create([snapshot]) | beam_load.PublishServingModel(root, "default")
        assert_that(published, equal_to([folder]))
    assert snapshots.latest_version(root, "default") == "v1"
    loaded = snapshots.read_snapshot(root, "default", "v1")
    assert model_builder.same_content(loaded, snapshot)
    assert loaded.metadata["version"] == "v1"


def test_publish_is_idempotent_and_versions_are_immutable(tmp_path: Path) -> None:
    root = str(tmp_path / "bucket")
    night = {"params": {"date": "2024-04-01"}, "created_at": "2024-04-01T02:00:00Z"}
    folder = beam_load.publish_snapshot(root, "default", _sample_snapshot("v1", **night))
    before = file_state(folder)
    latest = layout.latest_pointer(root, "default")
    latest_mtime = os.stat(latest).st_mtime_ns

    # same content again (even with other metadata): nothing is rewritten
    assert beam_load.publish_snapshot(root, "default", _sample_snapshot("v1", x=1)) == folder
    assert file_state(folder) == before
    assert os.stat(latest).st_mtime_ns == latest_mtime

    # a later night moves LATEST; republishing the older v1 never moves it back, unless
    # the operator asks to publish it
    later = {"params": {"date": "2024-04-02"}, "created_at": "2024-04-02T02:00:00Z"}
    beam_load.publish_snapshot(root, "default", _sample_snapshot("v2", **later))
    assert snapshots.latest_version(root, "default") == "v2"
    beam_load.publish_snapshot(root, "default", _sample_snapshot("v1", **night))
    assert snapshots.latest_version(root, "default") == "v2"
    beam_load.publish_snapshot(
        root, "default", _sample_snapshot("v1", **night), publish=True
    )
    assert snapshots.latest_version(root, "default") == "v1"

    changed = _sample_snapshot("v1")
    changed.scores[0] = 0.125
    with pytest.raises(ValueError, match="immutable"):
        beam_load.publish_snapshot(root, "default", changed)
    assert file_state(folder) == before


def test_publish_completes_an_interrupted_version(tmp_path: Path) -> None:
    root = str(tmp_path / "bucket")
    snapshot = _sample_snapshot("v1")
    folder = layout.model_version(root, "default", "v1")
    storage.write_bytes(layout.join(folder, "arrays.npz"), b"partial")  # no metadata yet
    beam_load.publish_snapshot(root, "default", snapshot)
    assert model_builder.same_content(snapshots.read_snapshot(root, "default", "v1"), snapshot)
    assert snapshots.latest_version(root, "default") == "v1"


# --- whole pipeline -------------------------------------------------------------------
def test_end_to_end_and_rerun_is_idempotent(tmp_path: Path) -> None:
    neighbors, items = random_neighbors(seed=5)
    uri = write_similarities(tmp_path, neighbors, items, parts=3)
    models = str(tmp_path / "bucket")
    argv = ["--similarities", uri, "--models_root", models, "--tenant", "default"]

    summary = beam_load.run(argv)

    assert summary["version"] == RUN_ID  # defaults to the manifest's run id
    assert snapshots.latest_version(models, "default") == RUN_ID
    snapshot = snapshots.read_snapshot(models, "default", RUN_ID)
    assert_model_matches(snapshot, neighbors, items)
    assert len(snapshot.trending) > 10  # published with the model
    nnz = sum(len(v) for v in neighbors.values())
    assert snapshot.metadata == {
        "format": 1,
        "version": RUN_ID,
        "tenant": "default",
        "run_id": RUN_ID,
        "params": SIMILARITY_PARAMS.to_json(),
        "created_at": CREATED_AT,
        "source": uri,
        "counts": {"items": len(snapshot.skus), "neighbor_rows": len(neighbors), "nnz": nnz},
    }
    assert summary["counts"] == snapshot.metadata["counts"]
    assert snapshot.bought_together() is None  # a run made before it: none
    folder = layout.model_version(models, "default", RUN_ID)
    assert summary["model"] == folder
    before = file_state(folder)
    latest = layout.latest_pointer(models, "default")
    latest_before = (os.stat(latest).st_mtime_ns, Path(latest).read_bytes())

    assert beam_load.run(argv) == summary
    assert file_state(folder) == before
    assert (os.stat(latest).st_mtime_ns, Path(latest).read_bytes()) == latest_before
    assert sorted(os.listdir(layout.models(models, "default"))) == [RUN_ID, "LATEST"]


def _bt_rows(snapshot) -> dict[str, list[tuple[str, float, float]]]:
    """The snapshot's bought-together CSR back as {sku: [(neighbor, score, users)]}."""
    bt = snapshot.bought_together()
    out = {}
    for i, sku in enumerate(bt.skus):
        lo, hi = bt.indptr[i], bt.indptr[i + 1]
        if hi > lo:
            out[sku] = [(bt.skus[j], float(c), float(u)) for j, c, u in
                        zip(bt.indices[lo:hi], bt.scores[lo:hi], bt.users[lo:hi], strict=True)]
    return out


def test_bought_together_is_loaded_and_published_with_the_model(tmp_path: Path) -> None:
    neighbors, items = random_neighbors(seed=5)
    skus = sorted(items)
    together = {skus[0]: [(skus[2], 0.25, 3.0), (skus[1], 0.5, 4.0)],
                skus[3]: [(skus[0], 1.0, 1.0)]}  # fmt: skip
    uri = write_similarities(tmp_path, neighbors, items, bought_together=together)
    models = str(tmp_path / "bucket")
    summary = beam_load.run(["--similarities", uri, "--models_root", models])
    snapshot = snapshots.read_snapshot(models, "default", summary["version"])
    assert_model_matches(snapshot, neighbors, items)  # the related items unchanged
    assert _bt_rows(snapshot) == {skus[0]: [(skus[1], 0.5, 4.0), (skus[2], 0.25, 3.0)],
                                  skus[3]: [(skus[0], 1.0, 1.0)]}  # fmt: skip
    assert snapshot.metadata["counts"]["bought_together_rows"] == 2


def test_build_serving_model_with_bought_together() -> None:
    neighbors, items = random_neighbors(seed=11)
    rows = [expected_row(s, v) for s, v in neighbors.items()]
    stats = [item_row(s, u, w) for s, (u, w) in items.items()]
    sku = sorted(items)[0]
    together = [expected_row(sku, [("zz-only-in-baskets", 0.5, 2.0)])]

    def check(actual: list) -> None:
        (snapshot,) = actual
        assert "zz-only-in-baskets" in snapshot.skus  # the vocabulary covers both models
        assert _bt_rows(snapshot) == {sku: [("zz-only-in-baskets", 0.5, 2.0)]}
        assert snapshot.bought_together().neighbors(snapshot.skus.index(sku))[0].tolist() == [
            snapshot.skus.index("zz-only-in-baskets")]  # fmt: skip

    with local_pipeline() as p:
        model = (
            p | "Rows" >> beam.Create(rows),
            p | "Items" >> beam.Create(stats),
            p | "Together" >> beam.Create(together),
        ) | beam_load.BuildServingModel({"version": "v1", "source": "mem://"})
        assert_that(model, check)


def test_model_version_option_and_tenant_default(tmp_path: Path) -> None:
    uri = write_similarities(tmp_path, tenant="shop-2")
    models = str(tmp_path / "bucket")
    summary = beam_load.run(
        ["--similarities", uri, "--models_root", models, "--model_version", "manual-1"]
    )
    assert (summary["tenant"], summary["version"]) == ("shop-2", "manual-1")
    snapshot = snapshots.read_snapshot(models, "shop-2", "manual-1")
    assert snapshot.metadata["run_id"] == RUN_ID
    assert snapshots.latest_version(models, "shop-2") == "manual-1"


@pytest.mark.parametrize(
    ("setup", "extra", "message"),
    [
        ("no-manifest", [], "no manifest"),
        ("empty", [], "empty"),
        ("ok", ["--tenant", "other"], "does not match"),
        ("no-parquet", [], "no neighbors"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture, setup: str, extra: list, message: str
) -> None:
    if setup == "no-parquet":
        uri = str(tmp_path / "sim")
        os.makedirs(uri)
        Path(uri, layout.MANIFEST_NAME).write_text(
            json.dumps({"run_id": "r", "tenant": "default", "created_at": CREATED_AT})
        )
    else:
        neighbors = {} if setup == "empty" else SAMPLE_NEIGHBORS
        uri = write_similarities(tmp_path, neighbors, manifest=setup != "no-manifest")
    models = tmp_path / "bucket"
    code = beam_load.main(["--similarities", uri, "--models_root", str(models), *extra])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("load_pipeline: error: ") and message in err
    assert not models.exists()


def test_missing_required_options() -> None:
    with pytest.raises(beam_load.LoadError, match="--similarities"):
        beam_load.run(["--models_root", "/tmp/x"])
    with pytest.raises(beam_load.LoadError, match="--models_root"):
        beam_load.run(["--similarities", "/tmp/x"])


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "beam" / "load_pipeline.py"), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )


def test_cli_subprocess(tmp_path: Path) -> None:
    uri = write_similarities(tmp_path)
    models = str(tmp_path / "bucket")
    done = _cli("--similarities", uri, "--models_root", models, "--tenant", "default")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # nothing noisy
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["status"] == "ok" and summary["latest"] == RUN_ID
    assert_model_matches(
        snapshots.read_snapshot(models, "default", RUN_ID), SAMPLE_NEIGHBORS, SAMPLE_ITEMS
    )

    missing = _cli("--similarities", str(tmp_path / "nothing"), "--models_root", models)
    assert missing.returncode == 2
    assert missing.stdout == ""
    assert missing.stderr.strip() == (
        f"load_pipeline: error: no manifest at {tmp_path / 'nothing' / layout.MANIFEST_NAME}:"
        " the similarity run is missing or incomplete"
    )
