"""The whole nightly chain on the embedded default, through the real function handlers."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simrec import storage
from simrec.cli import local_settings, main
from simrec.core import layout
from simrec.core.events import MAX_SKU_LENGTH, REJECT_REASONS
from simrec.core.snapshot import METADATA_NAME
from simrec.generate import generate_events
from simrec.local.dispatcher import NIGHTLY_TOPIC, LocalCloud, load_function
from simrec.local.runner import Workdir, prepare
from simrec.stages.cloudevents import make_storage_event
from simrec.storage import snapshots

pytestmark = pytest.mark.chain  # the whole local chain, in processes: tens of seconds
END = dt.date(2024, 3, 31)
RUN_DATE = END + dt.timedelta(days=1)

#: One malformed row per reason, plus a valid date-only row.
MALFORMED = [
    {"user_id": "", "sku": "SKU-000001", "action": "browsed", "ts": "2024-03-10T10:00:00Z"},
    {"user_id": "U-x1", "sku": " ", "action": "basket", "ts": "2024-03-10T10:00:00Z"},
    {"user_id": "U-x5", "sku": "S" * (MAX_SKU_LENGTH + 1), "action": "basket",
     "ts": "2024-03-10T10:00:00Z"},  # could never be queried
    {"user_id": "U-x2", "sku": "SKU-000001", "action": "wishlist", "ts": "2024-03-10T10:00:00Z"},
    {"user_id": "U-x3", "sku": "SKU-000001", "action": "purchase", "ts": "yesterday"},
    {"user_id": "U-x4", "sku": "SKU-000001", "action": "purchase", "ts": "2024-03-11"},
    {"user_id": "U-x6", "sku": "(not set)", "action": "browsed", "ts": "2024-03-10T10:00:00Z"},
]


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> tuple[Path, int]:
    """A small generated shop as CSV, with malformed rows mixed in."""
    events = generate_events(n_events=20_000, days=20, end_date=END, seed=7)
    frame = events.assign(ts=events["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    frame = pd.concat([frame, pd.DataFrame(MALFORMED)], ignore_index=True)
    path = tmp_path_factory.mktemp("shop") / "events.csv"
    frame.to_csv(path, index=False)
    return path, len(events)


def _run(shop_path: Path, workdir: Path, *extra: str) -> dict:
    code = main(["run", "--events", str(shop_path), "--workdir", str(workdir), *extra])
    assert code == 0
    return json.loads((workdir / "summary.json").read_text())


def _model(workdir: Path):
    root = str(Workdir(workdir).bucket)
    version = snapshots.latest_version(root, "default")
    assert version is not None
    return snapshots.read_snapshot(root, "default", version)


@pytest.fixture(scope="module")
def local_run(shop, tmp_path_factory) -> tuple[Path, dict]:
    workdir = tmp_path_factory.mktemp("local-run")
    return workdir, _run(shop[0], workdir, "--engine", "local")


def test_summary_counts_every_row_once(shop, local_run):
    _, generated = shop
    _, summary = local_run
    rows = summary["rows"]
    assert rows["rows_read"] == generated + len(MALFORMED)
    assert rows["rows_valid"] == generated + 1  # the date-only row is valid
    assert rows["rejected_by_reason"] == dict.fromkeys(REJECT_REASONS, 0) | {
        "missing_user_id": 1, "empty_sku": 1, "placeholder_id": 1, "sku_too_long": 1,
        "unknown_action": 1,
        "bad_timestamp": 1,
    }
    assert rows["rows_read"] == (rows["rows_valid"] + rows["rows_rejected"]
                                 + rows["rows_ignored"] + rows["rows_outside"])
    assert summary["date"] == RUN_DATE.isoformat()  # the day after the newest event
    assert summary["users"] > 0 and summary["items"] > 0 and summary["pairs"] > 0
    assert set(summary["stage_timings_s"]) >= {"export", "cluster", "dataflow_launch"}
    assert [(d["function"], d["action"]) for d in summary["decisions"]] == [
        ("export", "exported"), ("cluster", "succeeded"), ("dataflow_launch", "succeeded"),
    ]


def test_rejects_are_kept_with_their_reason(local_run):
    _, summary = local_run
    rejects = pd.read_parquet(storage.filesystem(summary["rejects_uri"])[1])
    assert sorted(rejects["reason"]) == sorted(
        ["missing_user_id", "empty_sku", "placeholder_id", "sku_too_long", "unknown_action",
         "bad_timestamp"]
    )


def test_model_is_published_and_answers(local_run, capsys):
    workdir, summary = local_run
    model = _model(workdir)
    assert model.version == summary["run_id"] == summary["model_version"]
    assert model.metadata["tenant"] == "default"
    top = model.skus[int(np.argmax(model.popularity))]

    capsys.readouterr()
    assert main(["similar", top, "--workdir", str(workdir), "--n", "5", "--json"]) == 0
    similar = json.loads(capsys.readouterr().out)
    neighbors, scores = model.neighbors(model.skus.index(top))
    assert [i["sku"] for i in similar["items"]] == [model.skus[j] for j in neighbors[:5]]

    assert main(["recommend", "--workdir", str(workdir), "--browsed", top, "--json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert recs["fallback"] is False and top not in [i["sku"] for i in recs["items"]]
    assert recs["items"][0]["score"] == pytest.approx(0.5 * float(scores[0]), rel=1e-6)


def test_redelivered_message_starts_nothing(shop, local_run):
    workdir, summary = local_run
    settings = local_settings(Workdir(workdir), events_source=str(shop[0]), engine="local")
    params = prepare(settings, RUN_DATE)
    cloud = LocalCloud(settings)
    deliveries = cloud.publish(NIGHTLY_TOPIC, {"tenant": "default", "date": str(RUN_DATE)})
    acted = deliveries.acted()
    assert [(d.function, d.result.action) for d in acted] == [("export", "skipped")]
    models = Path(layout.models(str(Workdir(workdir).bucket), "default"))
    assert sorted(p.name for p in models.iterdir() if p.is_dir()) == [params.run_id]


def test_storage_event_for_a_manifest_twice_launches_once(shop, local_run):
    workdir, summary = local_run
    bucket = str(Workdir(workdir).bucket)
    settings = local_settings(Workdir(workdir), events_source=str(shop[0]), engine="local")
    cloud = LocalCloud(settings)
    name = f"exports/default/runs/{summary['run_id']}/{layout.MANIFEST_NAME}"
    event = make_storage_event(bucket, name, 1, 1)
    cloud._deliver("cluster", event)
    cloud._deliver("cluster", event)
    assert [d.result.action for d in cloud.deliveries.items] == ["skipped", "skipped"]
    sims = f"similarities/default/{summary['run_id']}/{layout.MANIFEST_NAME}"
    cloud._deliver("dataflow_launch", make_storage_event(bucket, sims, 1, 2))
    assert cloud.deliveries.items[-1].result.action == "skipped"


def test_handlers_ignore_objects_that_are_not_their_manifest(local_run):
    workdir, _ = local_run
    bucket = str(Workdir(workdir).bucket)
    cluster = load_function("cluster").cluster
    launch = load_function("dataflow_launch").dataflow_launch
    part = "exports/default/dt=2024-03-10/part-0.parquet"
    assert cluster(make_storage_event(bucket, part, 10, 1)).action == "ignored"
    assert launch(make_storage_event(bucket, part, 10, 1)).action == "ignored"
    export_manifest = "exports/default/runs/x/_MANIFEST.json"
    assert launch(make_storage_event(bucket, export_manifest, 10, 1)).action == "ignored"


def test_failed_export_leaves_no_manifest_and_a_rerun_succeeds(shop, tmp_path):
    workdir = Workdir(tmp_path / "w")
    missing = tmp_path / "missing.csv"
    settings = local_settings(workdir, events_source=str(missing), engine="local")
    params = prepare(settings, RUN_DATE)
    with pytest.raises(Exception):  # noqa: B017 - whatever DuckDB raises for a missing file
        LocalCloud(settings).publish(NIGHTLY_TOPIC, {"date": str(RUN_DATE)})
    manifest = layout.export_manifest(str(workdir.bucket), "default", params.run_id)
    assert not storage.exists(manifest)
    assert not Path(layout.join(str(workdir.bucket), "similarities")).exists()

    missing.write_bytes(shop[0].read_bytes())
    deliveries = LocalCloud(settings).publish(NIGHTLY_TOPIC, {"date": str(RUN_DATE)})
    assert [d.function for d in deliveries.acted()] == ["export", "cluster", "dataflow_launch"]
    assert storage.exists(manifest)
    version = layout.model_version(str(workdir.bucket), "default", params.run_id)
    assert storage.exists(layout.join(version, METADATA_NAME))


@pytest.mark.spark
def test_spark_run_gives_the_same_model_as_the_local_engine(shop, local_run, tmp_path):
    """The Spark job and the single-machine engine draw the same DIMSUM sample."""
    local_dir, local_summary = local_run
    summary = _run(shop[0], tmp_path / "spark-run", "--engine", "spark")
    assert summary["engine"] == "spark"
    for key in ("users", "users_kept", "items", "cells", "emitted_pairs", "pairs"):
        assert summary[key] == local_summary[key], key
    spark_model, local_model = _model(tmp_path / "spark-run"), _model(local_dir)
    assert spark_model.skus == local_model.skus
    np.testing.assert_array_equal(spark_model.indptr, local_model.indptr)
    np.testing.assert_allclose(spark_model.scores, local_model.scores, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(spark_model.popularity, local_model.popularity)
