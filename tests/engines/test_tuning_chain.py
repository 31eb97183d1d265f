"""The nightly tuning through the whole local chain: a failed tuning step keeps the served
model; a tuned run records its choice in the similarity manifest and the run summary
(keys from simrec.evaluation.nightly.RECORD_KEYS), and trains with it. The shop and the
run command are test_reruns' (its 10 days hold 141 scored shoppers in the last 3)."""

from __future__ import annotations

import pytest

from simrec import storage
from simrec.core import layout
from simrec.core.params import ModelParams
from simrec.core.runs import RunParams
from simrec.evaluation import nightly
from tests.engines.test_reruns import TENANT, bucket, events, run, served, summary

pytestmark = pytest.mark.chain
__all__ = ["events"]  # the shop fixture, shared with test_reruns


def test_failed_tuning_keeps_the_served_model_then_a_tuned_run_records_its_choice(
    events, tmp_path, monkeypatch
):
    workdir = tmp_path / "w"
    assert run(events, workdir) == 0
    first = served(workdir)
    assert first is not None

    def broken(*args, **kwargs):
        raise RuntimeError("tuning step crashed")

    monkeypatch.setattr(nightly, "tune", broken)
    assert run(events, workdir, "--tune-holdout-days", "3") == 1
    assert served(workdir) == first  # LATEST untouched
    monkeypatch.undo()

    assert run(events, workdir, "--tune-holdout-days", "3") == 0
    done = summary(workdir)
    assert done["run_id"] != first  # the setting is in the run id hash
    record = done["tuning"]
    assert set(record) == set(nightly.RECORD_KEYS)
    assert record["status"] == nightly.TUNED, record["reason"]
    assert record["engine"] == "local" and record["holdout_days"] == 3
    uri = layout.similarities_manifest(bucket(workdir), TENANT, done["run_id"])
    assert storage.read_json(uri)["tuning"] == record
    chosen = ModelParams.from_json(record["chosen"]["params"])
    configured = RunParams.from_json(done["params"]).model
    assert chosen == configured.replace(**record["chosen"]["changes"])
    assert served(workdir) == done["model_version"]
