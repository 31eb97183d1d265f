"""The nightly tuning through the whole local chain: a failed tuning step keeps the served
model; a tuned run records its choice in the similarity manifest and the run summary
(keys from simrec.evaluation.nightly.RECORD_KEYS), and trains with it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from simrec import storage
from simrec.cli import main
from simrec.core import layout
from simrec.core.params import ModelParams
from simrec.core.runs import RunParams
from simrec.evaluation import nightly
from simrec.generate import generate_events, write_events
from simrec.local.runner import Workdir
from simrec.storage import snapshots

pytestmark = pytest.mark.chain
END = dt.date(2024, 3, 20)
TENANT = "default"


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("events") / "events.csv"
    write_events(generate_events(12_000, days=14, end_date=END, seed=4), path)
    return path


def run(events: Path, workdir: Path, *extra: str) -> int:
    return main(["run", "--events", str(events), "--workdir", str(workdir),
                 "--engine", "local", "--window-days", "14", *extra])  # fmt: skip


def test_failed_tuning_keeps_the_served_model_then_a_tuned_run_records_its_choice(
    events, tmp_path, monkeypatch
):
    workdir = tmp_path / "w"
    bucket = str(Workdir(workdir).bucket)
    assert run(events, workdir) == 0
    served = snapshots.latest_version(bucket, TENANT)
    assert served is not None

    def broken(*args, **kwargs):
        raise RuntimeError("tuning step crashed")

    monkeypatch.setattr(nightly, "tune", broken)
    assert run(events, workdir, "--tune-holdout-days", "3") == 1
    assert snapshots.latest_version(bucket, TENANT) == served  # LATEST untouched
    monkeypatch.undo()

    assert run(events, workdir, "--tune-holdout-days", "3") == 0
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["run_id"] != served  # the setting is in the run id hash
    record = summary["tuning"]
    assert set(record) == set(nightly.RECORD_KEYS)
    assert record["status"] == nightly.TUNED, record["reason"]
    assert record["engine"] == "local" and record["holdout_days"] == 3
    manifest = storage.read_json(layout.similarities_manifest(bucket, TENANT, summary["run_id"]))
    assert manifest["tuning"] == record
    chosen = ModelParams.from_json(record["chosen"]["params"])
    configured = RunParams.from_json(summary["params"]).model
    assert chosen == configured.replace(**record["chosen"]["changes"])
    assert snapshots.latest_version(bucket, TENANT) == summary["model_version"]
