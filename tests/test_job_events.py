"""Job completion is an event, on the local chain: a job made to fail becomes one failed
decision per attempt, a retry with the next attempt's job id, and after the last attempt
the alert line; the events are the ones Google Cloud sends (Dataflow statusChanged, the
job-watch Pub/Sub tick)."""

from __future__ import annotations

import datetime as dt
import io
import json
import sys
from pathlib import Path

import pytest

from simrec import logs, storage
from simrec.cli import local_settings
from simrec.core import layout
from simrec.generate import generate_events
from simrec.local.dispatcher import (
    JOB_WATCH_TOPIC,
    NIGHTLY_TOPIC,
    LocalCloud,
    load_function,
    settings_environment,
)
from simrec.local.runner import Workdir, prepare
from simrec.stages import cluster, jobs, load
from simrec.stages.cloudevents import DATAFLOW_STATUS_CHANGED, PUBSUB_PUBLISHED, topic_of
from simrec.stages.decisions import JOB_GAVE_UP_ALERT

END = dt.date(2024, 3, 31)
RUN_DATE = END + dt.timedelta(days=1)


@pytest.fixture(scope="module")
def events_csv(tmp_path_factory) -> Path:
    events = generate_events(n_events=3_000, days=10, end_date=END, seed=3)
    path = tmp_path_factory.mktemp("events") / "events.csv"
    events.assign(ts=events["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(path, index=False)
    return path


@pytest.fixture
def decision_lines():
    buffer = io.StringIO()
    logs.configure(stream=buffer)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    logs.configure(stream=sys.stderr)


def _chain(workdir: Workdir, events_csv: Path, **overrides):
    settings = local_settings(workdir, events_source=str(events_csv), engine="local",
                              job_max_attempts=2, **overrides)  # fmt: skip
    delivered: list[tuple[str, object]] = []
    cloud = LocalCloud(settings, on_deliver=lambda fn, ev: delivered.append((fn, ev)))
    deliveries = cloud.publish(NIGHTLY_TOPIC, {"tenant": "default", "date": str(RUN_DATE)})
    return settings, prepare(settings, RUN_DATE), cloud, deliveries, delivered


def test_a_failing_load_is_retried_then_alerted(tmp_path, events_csv, decision_lines) -> None:
    workdir = Workdir(tmp_path / "w")
    missing = str(tmp_path / "no-such-catalog.parquet")  # the load refuses it: job FAILED
    settings, params, cloud, deliveries, delivered = _chain(workdir, events_csv,
                                                            catalog_uri=missing)  # fmt: skip

    # The local load emitted Dataflow's event, in its documented shape, per attempt.
    status = [ev for fn, ev in delivered if fn == "job_events"
              and ev["type"] == DATAFLOW_STATUS_CHANGED]  # fmt: skip
    names = [load.job_name(params, 0), load.job_name(params, 1)]
    assert [ev.data["payload"]["name"] for ev in status] == names
    assert {ev.data["payload"]["currentState"] for ev in status} == {"JOB_STATE_FAILED"}
    assert [ev["subject"] for ev in status] == [f"jobs/{n}" for n in names]

    failed = [d for d in decision_lines() if d.get("action") == "failed"]
    assert [d["stage"] for d in failed] == ["job_events", "job_events"]  # one per attempt
    first, last = failed
    assert first["run_id"] == last["run_id"] == params.run_id
    assert first["ids"]["attempt"] == 1 and first["ids"]["retry_job_id"] == names[1]
    assert "alert" not in first and "retrying (attempt 2 of 2)" in first["reason"]
    assert last["alert"] == JOB_GAVE_UP_ALERT and last["ids"]["attempt"] == 2
    for line in failed:
        assert "no-such-catalog.parquet" in line["ids"]["error"]
        assert line["ids"]["job_state"] == "JOB_STATE_FAILED"
    assert "simrec cloud rerun" in last["reason"]
    # No model was published; both attempts are recorded as failed.
    assert storage.latest_version(settings.models_root, "default") is None
    for name in names:
        assert jobs.read_record(settings, name).state == jobs.FAILED
    acted = [(d.function, d.result.action) for d in deliveries.acted()]
    assert acted[:3] == [("export", "exported"), ("cluster", "succeeded"),
                         ("dataflow_launch", "launched")]  # fmt: skip

    # A redelivered event decides nothing twice.
    with settings_environment(settings):  # handlers read Settings() from the environment
        again = load_function("job_events").job_events(status[-1])
    assert again.action == "skipped"
    assert len([d for d in decision_lines() if d.get("action") == "failed"]) == 2


def test_a_failing_similarity_job_is_seen_by_the_watch(tmp_path, events_csv,
                                                       decision_lines) -> None:  # fmt: skip
    """The Spark job fails (its input partitions are corrupted before it runs): the
    job-watch tick finds the workflow failed, retries it once, then alerts."""
    workdir = Workdir(tmp_path / "w")

    def corrupt(function: str, event) -> None:
        subject = str(event.get("subject", ""))
        if function == "cluster" and subject.endswith(f"runs/{params.run_id}/_MANIFEST.json"):
            for part in Path(workdir.bucket, "exports", "default").glob("dt=*/*.parquet"):
                part.write_bytes(b"not parquet")

    settings = local_settings(workdir, events_source=str(events_csv), engine="local",
                              job_max_attempts=2)  # fmt: skip
    params = prepare(settings, RUN_DATE)
    delivered: list = []
    cloud = LocalCloud(settings, on_deliver=lambda fn, ev: (delivered.append((fn, ev)),
                                                            corrupt(fn, ev)))  # fmt: skip
    cloud.publish(NIGHTLY_TOPIC, {"tenant": "default", "date": str(RUN_DATE)})

    ticks = [ev for fn, ev in delivered if fn == "job_events"]
    assert ticks and all(ev["type"] == PUBSUB_PUBLISHED for ev in ticks)
    assert {topic_of(ev) for ev in ticks} == {JOB_WATCH_TOPIC}
    failed = [d for d in decision_lines() if d.get("action") == "failed"]
    assert [d["ids"]["job_id"] for d in failed] == [
        cluster.request_id(params, 0), cluster.request_id(params, 1)
    ]
    assert failed[0]["ids"]["retry_job_id"] == cluster.request_id(params, 1)
    assert failed[-1]["alert"] == JOB_GAVE_UP_ALERT
    assert all(d["ids"]["error"] for d in failed)
    assert not storage.exists(layout.similarities_manifest(settings.data_uri, "default",
                                                           params.run_id))  # fmt: skip
