"""Job completion is an event, on the local chain: a job made to fail becomes one failed
decision per attempt, a retry with the next attempt's job id, and after the last attempt
the alert line; the events are the ones Google Cloud sends (Dataflow statusChanged, the
job-watch Pub/Sub tick)."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import sys
from pathlib import Path

import pytest

from simrec import logs, storage
from simrec.adapters.local_launchers import JOB_WATCH_TOPIC
from simrec.cli import local_settings
from simrec.core import layout
from simrec.generate import generate_events
from simrec.local.dispatcher import (
    FUNCTIONS,
    NIGHTLY_TOPIC,
    LocalCloud,
    load_function,
    settings_environment,
)
from simrec.local.runner import Workdir, prepare
from simrec.stages import cluster, jobs, load
from simrec.stages.cloudevents import (
    AUDIT_LOG_WRITTEN,
    DATAFLOW_STATUS_CHANGED,
    PUBSUB_PUBLISHED,
    topic_of,
)
from simrec.stages.decisions import JOB_GAVE_UP_ALERT
from simrec.storage import snapshots
from tests.cloud import test_alert_filters as alert_filters
from tests.cloud.log_filter import matches
from tests.cloud.test_terraform import module

pytestmark = pytest.mark.chain  # the whole local chain, in processes: tens of seconds
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
    status = [ev for fn, ev in delivered if ev["type"] == DATAFLOW_STATUS_CHANGED]
    assert {fn for fn, ev in delivered if ev["type"] == DATAFLOW_STATUS_CHANGED} == {
        "dataflow_launch"}  # the function that launched the load relaunches it
    names = [load.job_name(params, 0), load.job_name(params, 1)]
    assert [ev.data["payload"]["name"] for ev in status] == names
    assert {ev.data["payload"]["currentState"] for ev in status} == {"JOB_STATE_FAILED"}
    assert [ev["subject"] for ev in status] == [f"jobs/{n}" for n in names]

    failed = [d for d in decision_lines() if d.get("action") == "failed"]
    assert [d["stage"] for d in failed] == [jobs.STAGE, jobs.STAGE]  # one per attempt
    first, last = failed
    assert first["run_id"] == last["run_id"] == params.run_id
    assert first["ids"]["attempt"] == 1 and first["ids"]["retry_job_id"] == names[1]
    assert "alert" not in first and "retrying (attempt 2 of 2)" in first["reason"]
    assert last["alert"] == JOB_GAVE_UP_ALERT and last["ids"]["attempt"] == 2
    for line in failed:
        assert "no-such-catalog.parquet" in line["ids"]["error"]
        assert line["ids"]["job_state"] == "JOB_STATE_FAILED"
    assert f"simrec cloud rerun --date {RUN_DATE} --tenant default" in last["reason"]
    # No model was published; both attempts are recorded as failed.
    assert snapshots.latest_version(settings.models_root, "default") is None
    for name in names:
        assert jobs.read_record(settings, name).state == jobs.FAILED
    acted = [(d.function, d.result.action) for d in deliveries.acted()]
    assert acted[:3] == [("export", "exported"), ("cluster", "succeeded"),
                         ("dataflow_launch", "launched")]  # fmt: skip

    # A redelivered event decides nothing twice.
    with settings_environment(settings):  # handlers read Settings() from the environment
        again = load_function("dataflow_launch").dataflow_launch(status[-1])
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

    ticks = [(fn, ev) for fn, ev in delivered if ev["type"] == PUBSUB_PUBLISHED
             and topic_of(ev) == JOB_WATCH_TOPIC]  # fmt: skip
    assert ticks and {fn for fn, _ in ticks} == {"cluster"}  # it launched the workflow
    failed = [d for d in decision_lines() if d.get("action") == "failed"]
    assert [d["ids"]["job_id"] for d in failed] == [
        cluster.request_id(params, 0), cluster.request_id(params, 1)
    ]
    assert failed[0]["ids"]["retry_job_id"] == cluster.request_id(params, 1)
    assert failed[-1]["alert"] == JOB_GAVE_UP_ALERT
    assert all(d["ids"]["error"] for d in failed)
    assert not storage.exists(layout.similarities_manifest(settings.data_uri, "default",
                                                           params.run_id))  # fmt: skip


# --- the deployment: triggers and the alert follow the code's constants ----------------------
# The alert filters as Terraform renders them (fixtures of tests/cloud/test_alert_filters.py).
rendered_names, service_names = alert_filters.rendered_names, alert_filters.service_names
filters, k_service = alert_filters.filters, alert_filters.k_service


def _pages(filter_text: str, line: dict, k_service: dict[str, str]) -> bool:
    """Whether the entry Cloud Run makes of a job-end line (logged by the function that
    launched the job, here the load's: dataflow_launch) matches a rendered alert filter."""
    return matches(filter_text, alert_filters.log_entry(line, k_service["dataflow_launch"], 0))


def test_a_retried_attempt_pages_nobody_and_giving_up_pages_once(
    tmp_path, events_csv, decision_lines, filters, k_service
) -> None:
    """On a real chain whose load fails twice: the retried attempt's line matches no alert
    filter, the gave-up line only job_gave_up's; no alert watches job metrics."""
    monitoring = module("modules/monitoring")
    policy = monitoring.resource("google_monitoring_alert_policy", "job_gave_up")
    [condition] = policy["conditions"]
    assert condition["condition_matched_log"][0]["filter"] == "${local.filters.job_gave_up}"
    assert "simrec cloud rerun" in policy["documentation"][0]["content"]
    run_failed = monitoring.resource("google_monitoring_alert_policy", "run_failed")
    assert [c["condition_threshold"][0]["filter"] for c in run_failed["conditions"]] == [
        "${local.filters.dead_lettered}"]  # no first-attempt Dataproc/Dataflow condition

    _chain(Workdir(tmp_path / "w"), events_csv, catalog_uri=str(tmp_path / "missing.parquet"))
    lines = decision_lines()
    ends = [d for d in lines if d.get("stage") == jobs.STAGE]
    failed = [d for d in ends if d["action"] == "failed"]
    assert [d.get("alert", "") for d in failed] == ["", JOB_GAVE_UP_ALERT]  # retried, gave up
    for line in lines:
        if line.get("action") is None:
            continue
        gave_up = line is failed[-1]
        assert _pages(filters["job_gave_up"], line, k_service) is gave_up, line
        assert not _pages(filters["failed_decision"], line, k_service), line


def test_job_end_triggers_deliver_to_the_function_that_launched_the_job() -> None:
    """Each job-end trigger reaches the function ROUTES names for its event, as the trigger
    identity (which holds run.invoker on exactly the functions' services)."""
    from simrec.stages import routes
    from tests.cloud.test_terraform import resolve

    fns = module("modules/functions")
    service = "${google_cloudfunctions2_function.fn[\"%s\"].service_config[0].service}"
    assert set(fns.of_kind("google_cloudfunctions2_function")) == {"fn"}  # no fifth function
    trigger = fns.resource("google_eventarc_trigger", "job_end")  # one per job_end_triggers
    assert trigger["for_each"] == "${local.job_end_triggers}"
    assert trigger["name"] == '${var.name_prefix}-${replace(each.key, "_", "-")}'
    assert trigger["service_account"] == "${var.service_accounts.trigger}"
    assert trigger["event_data_content_type"] == "application/json"
    dynamic = {k: v for d in trigger["dynamic"] for k, v in d.items()}
    assert dynamic["matching_criteria"]["for_each"] == "${each.value.criteria}"
    assert dynamic["matching_criteria"]["content"] == [
        {"attribute": "${matching_criteria.key}", "value": "${matching_criteria.value}"}
    ]
    assert dynamic["transport"]["for_each"] == "${each.value.topics}"
    assert dynamic["transport"]["content"] == [{"pubsub": [{"topic": "${transport.value}"}]}]
    target = trigger["destination"][0]["cloud_run_service"][0]["service"]
    assert target == (service % "x").replace('"x"', "each.value.function")
    pubsub = module("modules/pubsub")  # the job-watch topic and its scheduler job
    topic = pubsub.resource("google_pubsub_topic", "topic")
    assert topic["name"] == '${var.name_prefix}-${replace(each.key, "_", "-")}'
    assert {"job_watch"} <= set(pubsub.locals["topics"]) & set(pubsub.locals["schedules"])
    role = "job_watch".replace("_", "-")
    expected = {
        "dataflow_status": (DATAFLOW_STATUS_CHANGED, ""),
        "job_watch": (PUBSUB_PUBLISHED, role),
        "dataproc_audit": (AUDIT_LOG_WRITTEN, ""),
    }
    assert role == routes.JOB_WATCH
    triggers = fns.locals["job_end_triggers"]
    assert set(triggers) == set(expected)
    for name, key in expected.items():
        [function] = routes.ROUTES[key]
        assert triggers[name]["function"] == function, name
        criteria = {a: resolve(fns.rel, v) for a, v in triggers[name]["criteria"].items()}
        assert criteria["type"] == key[0], name
    criteria = {a: resolve(fns.rel, v) for a, v in triggers["dataproc_audit"]["criteria"].items()}
    assert criteria == {"type": AUDIT_LOG_WRITTEN, "serviceName": jobs.DATAPROC_SERVICE,
                        "methodName": jobs.INSTANTIATE_METHOD}  # fmt: skip
    assert triggers["job_watch"]["topics"] == ["${var.job_watch_topic_id}"]
    assert triggers["dataflow_status"]["topics"] == triggers["dataproc_audit"]["topics"] == []
    topic_id = module().calls["functions"]["job_watch_topic_id"]
    assert topic_id == "${module.pubsub.topics.job_watch.id}"
    scheduler = pubsub.resource("google_cloud_scheduler_job", "job")
    target = scheduler["pubsub_target"][0]["topic_name"]
    assert target == "${google_pubsub_topic.topic[each.key].id}"
    invoker = fns.resource("google_cloud_run_v2_service_iam_member", "trigger_invoker")
    assert invoker["for_each"] == "${google_cloudfunctions2_function.fn}"
    assert invoker["member"] == "serviceAccount:${var.service_accounts.trigger}"
    # Their subscriptions get the dead-letter policy by the module's one hook.
    hooks = fns.resource("terraform_data", "dead_letter")
    assert hooks["for_each"] == "${local.dead_letter_triggers}"
    assert "google_eventarc_trigger.job_end" in fns.locals["dead_letter_triggers"]


def test_every_identity_terraform_names_is_one_the_iam_module_makes() -> None:
    """``terraform plan`` fails on a service account key nobody creates (job_events was)."""
    from tests.cloud.test_terraform import MODULES

    identities = set(module("modules/iam").locals["identities"])
    for rel in [f"modules/{m}" for m in MODULES]:
        used = set(re.findall(r"var\.service_accounts(?:\.|\[\")(\w+)", module(rel).text))
        assert used <= identities, f"{rel}: {used - identities} are never created"


def test_job_records_grants_are_exactly_what_the_retry_and_watch_write() -> None:
    """cluster and dataflow_launch create, overwrite and expire jobs/<id>.json records: a
    conditional objectUser on that prefix of the data bucket, granted in the iam module
    (so the propagation wait follows it); the functions module adds no other grant."""
    from tests.cloud.test_terraform import resolve

    fns = module("modules/functions")
    grants = {(k, n) for (k, n) in fns.resources if k.endswith("_iam_member")}
    assert grants == {("google_cloud_run_v2_service_iam_member", "trigger_invoker")}
    iam = module("modules/iam")
    prefix = layout.job_records("").strip("/") + "/"
    assert resolve(iam.rel, iam.locals["job_records_prefix"]) == prefix
    assert iam.locals["job_records_only"] == (
        'resource.name.startsWith("${local.objects}/${var.data_bucket}/objects/'
        '${local.job_records_prefix}")'
    )
    assert resolve(iam.rel, iam.locals["objects"]) == "projects/_/buckets"
    wait = iam.resource("time_sleep", "grants")["depends_on"]
    # The functions that record launches: the stages of the job records (simrec.stages.jobs).
    for identity, name in ((cluster.STAGE, "cluster"), (load.STAGE, "launch")):
        writer = iam.locals["grants"][f"{name}_job_records_writer"]
        assert writer["member"] == f"${{local.member.{identity}}}"
        assert (writer["on"], writer["bucket"], writer["role"]) == (
            "bucket", "${var.data_bucket}", "roles/storage.objectUser")  # fmt: skip
        assert writer["condition"] == "${local.job_records_condition}"
        assert "${google_storage_bucket_iam_member.grant}" in wait
    assert iam.locals["job_records_condition"]["expression"] == "${local.job_records_only}"


def test_a_redelivered_launch_never_reopens_a_handled_job(tmp_path) -> None:
    from simrec.adapters.launch_ports import LaunchResult
    from simrec.config import Settings

    settings = Settings(data_uri=str(tmp_path))
    params = prepare(settings, RUN_DATE)
    result = LaunchResult("simrec-dimsum-x", "started", {"operation": "ops/1"})
    record = jobs.record_launch(settings, "cluster", "b", "n", params, 0, result)
    jobs.save(settings, jobs.JobRecord(**{**record.__dict__, "state": jobs.FAILED}))
    again = jobs.record_launch(settings, "cluster", "b", "n", params, 0, result)
    assert again.state == jobs.FAILED == jobs.read_record(settings, "simrec-dimsum-x").state
    assert jobs.running_records(settings, "cluster") == []


@pytest.mark.parametrize(
    ("state", "labels", "recorded", "expected"),
    [
        ("JOB_STATE_CANCELLED", {"simrec-stage": "load"}, True, "failed"),
        ("JOB_STATE_RUNNING", {"simrec-stage": "load"}, True, "ignored"),
        ("JOB_STATE_DONE", {"simrec-stage": "load"}, True, "ignored"),
        ("JOB_STATE_FAILED", {}, False, "ignored"),  # somebody else's job
        ("JOB_STATE_FAILED", {"simrec-stage": "load"}, False, "retried delivery"),
    ],
)
def test_dataflow_states(tmp_path, state, labels, recorded, expected) -> None:
    from simrec.adapters import build_adapters
    from simrec.adapters.launch_ports import LaunchResult
    from simrec.config import Settings
    from simrec.stages.cloudevents import make_dataflow_event

    settings = Settings(data_uri=str(tmp_path), job_max_attempts=1)
    params = prepare(settings, RUN_DATE)
    name = load.job_name(params)
    if recorded:
        jobs.record_launch(settings, "dataflow_launch", str(tmp_path), "m.json", params, 0,
                           LaunchResult(name, "started"))  # fmt: skip
    event = make_dataflow_event("p", "europe-west1", {"id": "2024-1", "name": name,
                                                      "currentState": state, "labels": labels})
    adapters = build_adapters(settings)
    if expected == "retried delivery":
        with pytest.raises(jobs.RecordMissing):
            jobs.on_dataflow_event(event, settings, adapters)
        return
    decision = jobs.on_dataflow_event(event, settings, adapters)
    assert decision.action == expected
    if expected == "failed":  # one attempt allowed: given up at once
        assert decision.alert == JOB_GAVE_UP_ALERT and decision.ids["job_state"] == state
        assert jobs.read_record(settings, name).state == jobs.FAILED
    elif recorded and state == "JOB_STATE_DONE":
        assert jobs.read_record(settings, name).state == jobs.SUCCEEDED


def test_a_retry_that_cannot_launch_leaves_the_job_to_the_next_delivery(tmp_path) -> None:
    from simrec.adapters import build_adapters
    from simrec.adapters.launch_ports import JobOutcome, LaunchResult
    from simrec.config import Settings

    settings = Settings(data_uri=str(tmp_path), job_max_attempts=2)
    params = prepare(settings, RUN_DATE)
    manifest = f"exports/default/runs/{params.run_id}/_MANIFEST.json"  # never written
    record = jobs.record_launch(settings, "cluster", str(tmp_path), manifest, params, 0,
                                LaunchResult(cluster.request_id(params), "started"))  # fmt: skip
    with pytest.raises(FileNotFoundError):
        jobs.on_job_ended(record, JobOutcome("failed", "job dimsum FAILED", "boom"), settings,
                          build_adapters(settings))  # fmt: skip
    assert jobs.read_record(settings, record.job_id).state == jobs.RUNNING
    assert jobs.running_records(settings, "cluster") == [record]


def test_a_successful_run_reports_each_jobs_end_and_decides_nothing(
    tmp_path, events_csv, decision_lines
) -> None:
    workdir = Workdir(tmp_path / "w")
    settings, params, cloud, deliveries, delivered = _chain(workdir, events_csv)
    status = [ev for fn, ev in delivered if ev["type"] == DATAFLOW_STATUS_CHANGED]
    assert [ev.data["payload"]["currentState"] for ev in status] == ["JOB_STATE_DONE"]
    assert jobs.read_record(settings, load.job_name(params)).state == jobs.SUCCEEDED
    assert jobs.read_record(settings, cluster.request_id(params)).state == jobs.SUCCEEDED
    assert not [d for d in decision_lines() if d.get("action") == "failed"]
    assert [(d.function, d.result.action) for d in deliveries.acted()] == [
        ("export", "exported"), ("cluster", "succeeded"), ("dataflow_launch", "succeeded"),
    ]
    assert snapshots.latest_version(settings.models_root, "default") == params.run_id


def test_each_event_reaches_the_function_that_launched_its_job(tmp_path) -> None:
    """One table (simrec.stages.routes) routes for the handlers and the local dispatcher."""
    from simrec.local import dispatcher
    from simrec.stages import routes
    from simrec.stages.cloudevents import make_dataflow_event, make_pubsub_event, make_storage_event

    assert dispatcher.subscribers is routes.subscribers
    assert tuple(FUNCTIONS) == routes.FUNCTIONS == ("export", "cluster", "dataflow_launch")
    job = {"id": "1", "name": "simrec-load-x", "currentState": "JOB_STATE_FAILED"}
    cases = {
        "dataflow": (make_dataflow_event("p", "europe-west1", job), ["dataflow_launch"]),
        "nightly": (make_pubsub_event("p", "acme-nightly", {}), ["export"]),
        "tick": (make_pubsub_event("p", "acme-job-watch", {}), ["cluster"]),
        "storage": (make_storage_event("b", "x.json", 1, 1), ["cluster", "dataflow_launch"]),
    }
    for what, (event, expected) in cases.items():
        assert routes.subscribers(event) == expected, what
    # A job-watch tick that reaches export (a wrong trigger) exports nothing: one bad-event line.
    settings = local_settings(Workdir(tmp_path / "w"), events_source=str(tmp_path / "none.csv"))
    with settings_environment(settings):
        decision = load_function("export").export(cases["tick"][0])
    assert decision.action == "failed" and decision.reason.startswith("bad event: export does")
    assert not (tmp_path / "w" / "bucket" / "exports").exists()


def test_the_watch_expires_old_job_records_unread(tmp_path) -> None:
    """jobs/ does not grow forever: a record last written more than RECORD_DAYS ago is
    deleted by the watch (even a RUNNING one, which no nightly job stays that long)."""
    import os

    from simrec.adapters.launch_ports import LaunchResult
    from simrec.config import Settings

    settings = Settings(data_uri=str(tmp_path))
    params = prepare(settings, RUN_DATE)
    old, new = (jobs.record_launch(settings, "cluster", "b", "n", params, attempt,
                                   LaunchResult(cluster.request_id(params, attempt), "started"))
                for attempt in (0, 1))  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    stale = (now - dt.timedelta(days=jobs.RECORD_DAYS, minutes=1)).timestamp()
    os.utime(layout.job_record(settings.data_uri, old.job_id), (stale, stale))
    assert jobs.running_records(settings, "cluster", now=now) == [new]
    assert jobs.read_record(settings, old.job_id) is None
    assert jobs.read_record(settings, new.job_id) == new


def test_a_run_whose_retry_succeeds_is_reported_as_succeeded(tmp_path, events_csv,
                                                             monkeypatch) -> None:  # fmt: skip
    """`simrec run` reports the final outcome: the similarity job fails once (its input is
    corrupted), the watch retries it on repaired input, and the run succeeds; the summary
    shows the retry."""
    from rich.console import Console

    from simrec.local import runner

    workdir = Workdir(tmp_path / "w")
    settings = local_settings(workdir, events_source=str(events_csv), engine="local",
                              job_max_attempts=2)  # fmt: skip
    params = prepare(settings, RUN_DATE)
    saved: dict[Path, bytes] = {}

    class FlakyInput(LocalCloud):
        """Corrupts the export partitions before the first similarity job, restores them
        before the watch tick that retries it."""

        def _deliver(self, function: str, event) -> None:
            subject = str(event.get("subject", ""))
            if function == "cluster" and subject.endswith(f"runs/{params.run_id}/_MANIFEST.json"):
                for part in Path(workdir.bucket, "exports", "default").glob("dt=*/*.parquet"):
                    saved[part] = part.read_bytes()
                    part.write_bytes(b"not parquet")
            if function == "cluster" and event["type"] == PUBSUB_PUBLISHED:
                for part, data in saved.items():
                    part.write_bytes(data)
            super()._deliver(function, event)

    monkeypatch.setattr(runner, "LocalCloud", FlakyInput)
    console = Console(file=io.StringIO(), width=200)
    summary = runner.run_pipeline(settings, params, console=console)

    assert saved  # the first attempt really ran on corrupted input
    assert summary["model_version"] == params.run_id
    assert snapshots.latest_version(settings.models_root, "default") == params.run_id
    [retry] = summary["retries"]
    assert retry["stage"] == "cluster" and retry["attempt"] == 1 and retry["error"]
    assert (retry["job_id"], retry["retry_job_id"]) == (cluster.request_id(params, 0),
                                                        cluster.request_id(params, 1))  # fmt: skip
    assert jobs.read_record(settings, cluster.request_id(params, 1)).state == jobs.SUCCEEDED
    runner.print_summary(summary, console)
    assert f"{cluster.request_id(params, 0)} failed -> {cluster.request_id(params, 1)}" in (
        console.file.getvalue()
    )


def test_a_run_given_up_is_reported_as_failed(tmp_path, events_csv) -> None:
    from rich.console import Console

    from simrec.local import runner

    workdir = Workdir(tmp_path / "w")
    settings = local_settings(workdir, events_source=str(events_csv), engine="local",
                              job_max_attempts=2,
                              catalog_uri=str(tmp_path / "missing.parquet"))  # fmt: skip
    gave_up = r"(?s)dataflow_launch: .*gave up after 2 attempt"
    with pytest.raises(RuntimeError, match=gave_up) as err:
        runner.run_pipeline(settings, prepare(settings, RUN_DATE),
                            console=Console(file=io.StringIO()))  # fmt: skip
    assert "retrying" not in str(err.value)  # only the final outcome is the run's
