"""The three pipeline functions over real wires.

- export: the Pub/Sub emulator's push subscription POSTs into the function running in
  its own functions-framework process (embedded backend); and, in functions-framework's
  WSGI app, the gcp backend against the recording BigQuery fake + the GCS emulator.
- cluster / dataflow_launch: the GCS emulator's object resource is the CloudEvent data;
  the gcp backend's real GAPIC clients reach the loopback gRPC stub.
- how a job ended, to the function that launched it: Dataflow's statusChanged event (the
  client's Job type as its payload) to dataflow_launch, the Dataproc workflow operation's
  audit entries and the job-watch Pub/Sub tick to cluster; failed jobs are retried
  through the stub, then alerted.
Every delivery happens twice: one job, one manifest, one launch.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import io
import json
import os
from pathlib import Path

import pytest
from cloudevents.conversion import to_structured
from cloudevents.http import CloudEvent
from functions_framework import create_app

from simrec import storage
from simrec.config import Settings
from simrec.core import layout
from simrec.stages.cloudevents import (
    AUDIT_LOG_WRITTEN,
    DATAFLOW_DATA_SCHEMA,
    DATAFLOW_STATUS_CHANGED,
    STORAGE_FINALIZED,
    make_pubsub_event,
)
from simrec.stages.decisions import JOB_GAVE_UP_ALERT
from simrec.stages.jobs import STAGE
from simrec.stages.load import job_name
from simrec.stages.requests import run_params
from simrec.storage import snapshots
from tests.cloud.wire import (
    BUCKET,
    EVENTS_TABLE,
    PROJECT,
    REGION,
    FunctionServer,
    dimsum_node,
    gcp_settings_env,
    refresh_gcsfs,
)

REPO = Path(__file__).resolve().parents[2]
RUN_DATE = dt.date(2024, 3, 1)
#: The run the functions derive from the nightly message and the deployment's settings.
PARAMS = run_params({"date": RUN_DATE.isoformat()}, Settings(window_days=3), RUN_DATE)


def decisions(buffer: io.StringIO) -> list[dict]:
    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    return [line for line in lines if "action" in line]


def _function(name: str, target: str | None = None):
    app = create_app(
        target=target or name, source=str(REPO / "functions" / name / "main.py"),
        signature_type="cloudevent",
    )  # fmt: skip
    return app.test_client()


def _job_function(name: str, max_attempts: int, monkeypatch: pytest.MonkeyPatch):
    """A job stage's function, allowed ``max_attempts`` attempts of its job: it launches
    the job, and hears how it went on the same function."""
    monkeypatch.setenv("SIMREC_JOB_MAX_ATTEMPTS", str(max_attempts))
    return _function(name)


def _post(client, event: CloudEvent):
    headers, body = to_structured(event)
    return client.post("/", headers=headers, data=body)


def _storage_event(gcs, name: str, content: bytes) -> CloudEvent:
    """Upload through google-cloud-storage; the emulator's object resource is the data."""
    blob = gcs.client().bucket(BUCKET).blob(name)
    blob.upload_from_string(content)
    blob.reload()
    resource = dict(blob._properties)
    return CloudEvent(
        {"type": STORAGE_FINALIZED, "source": f"//storage.googleapis.com/projects/_/buckets/"
         f"{BUCKET}", "subject": f"objects/{name}", "id": str(resource["generation"])},
        resource,
    )  # fmt: skip


# --- export: Pub/Sub emulator push -> functions-framework process -----------------------
def _events_csv(path: Path) -> Path:
    rows = ["user_id,sku,action,ts"]
    for day in PARAMS.days():
        for user in ("u1", "u2", "u3"):
            for sku in ("a", "b"):
                rows.append(f"{user},{sku},browsed,{day.isoformat()}T10:00:00Z")
    rows.append(",a,browsed,2024-02-28T10:00:00Z")  # missing_user_id
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.emulator
def test_pubsub_push_delivers_the_nightly_message_to_the_export_function(
    pubsub_emulator, tmp_path, monkeypatch
) -> None:
    from google.cloud import pubsub_v1

    data = tmp_path / "data"
    env = {
        **os.environ,
        "SIMREC_BACKEND": "local",
        "SIMREC_DATA_URI": str(data),
        "SIMREC_EVENTS_SOURCE": str(_events_csv(tmp_path / "events.csv")),
        "SIMREC_WINDOW_DAYS": "3",
    }
    server = FunctionServer("export", REPO / "functions/export/main.py", env, tmp_path).start()
    try:
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator.host)
        publisher = pubsub_v1.PublisherClient()
        subscriber = pubsub_v1.SubscriberClient()
        topic = publisher.topic_path(PROJECT, f"nightly-{tmp_path.name}")
        publisher.create_topic(name=topic)
        subscriber.create_subscription(
            name=subscriber.subscription_path(PROJECT, f"export-push-{tmp_path.name}"),
            topic=topic,
            push_config={"push_endpoint": server.url},
            ack_deadline_seconds=60,
        )
        message = json.dumps({"date": RUN_DATE.isoformat()}).encode()

        publisher.publish(topic, message).result(timeout=30)
        [first] = server.wait_for_decisions(1)
        manifest = layout.export_manifest(str(data), "default", PARAMS.run_id)
        assert first["action"] == "exported" and first["run_id"] == PARAMS.run_id
        assert first["severity"] == "INFO" and first["stage"] == "export"
        assert first["ids"]["manifest"] == manifest
        written = storage.read_json(manifest)
        assert written["counts"]["rows_valid"] == 18 and written["counts"]["rows_rejected"] == 1

        # The same message again: no second export; no similarities exist yet, so the
        # manifest is re-emitted (same content, a new object write) for the cluster stage.
        publisher.publish(topic, message).result(timeout=30)
        second = server.wait_for_decisions(2)[1]
        assert second["action"] == "resumed" and second["run_id"] == PARAMS.run_id
        runs = list((data / "exports" / "default" / "runs").iterdir())
        assert [r.name for r in runs] == [PARAMS.run_id]
        assert storage.read_json(manifest) == written
    finally:
        server.stop()


# --- export on the gcp backend: BigQuery fake + GCS emulator ----------------------------
@pytest.fixture
def gcp_env(monkeypatch, gcs, grpc_stub, fake_bigquery):
    env = gcp_settings_env(fake_bigquery.url, grpc_stub.endpoint)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    fake_bigquery.tables[EVENTS_TABLE] = ["user_id", "sku", "action", "ts"]
    fake_bigquery.counts = [(PARAMS.days()[0].isoformat(), None, 4), (None, "empty_sku", 1)]
    # The fake executes nothing: stand in for its EXPORT DATA of the one day with rows
    # (the export stage checks every day its manifest lists exists before writing it).
    day = layout.export_day(f"gs://{BUCKET}", "default", PARAMS.days()[0])
    name = layout.join(day, "part-000000000000.parquet").removeprefix(f"gs://{BUCKET}/")
    gcs.client().bucket(BUCKET).blob(name).upload_from_string(b"PAR1")
    return env


def _nightly() -> CloudEvent:
    return make_pubsub_event(PROJECT, "nightly", {"date": RUN_DATE.isoformat()})


def _export_manifest_exists() -> bool:
    refresh_gcsfs()
    return storage.exists(layout.export_manifest(f"gs://{BUCKET}", "default", PARAMS.run_id))


def test_export_function_on_bigquery_runs_one_job_for_two_deliveries(
    gcp_env, fake_bigquery, log_buffer
) -> None:
    client = _function("export")
    assert _post(client, _nightly()).status_code == 200
    assert _post(client, _nightly()).status_code == 200

    first, second = decisions(log_buffer)
    assert first["action"] == "exported" and first["ids"]["rows_valid"] == 4
    assert second["action"] == "resumed" and "re-emitted the export manifest" in second["reason"]
    assert len(fake_bigquery.inserts) == 1 and len(fake_bigquery.jobs) == 1
    body = fake_bigquery.inserts[0]
    assert body["jobReference"]["jobId"] == f"simrec-export-{PARAMS.key}"
    params = {p["name"]: p for p in body["configuration"]["query"]["queryParameters"]}
    assert params["start_date"]["parameterType"]["type"] == "DATE"
    assert params["start_date"]["parameterValue"]["value"] == PARAMS.start_date.isoformat()
    assert _export_manifest_exists()


def test_forced_rerun_is_a_new_attempt_with_its_own_bigquery_job(
    gcp_env, fake_bigquery, log_buffer
) -> None:
    client = _function("export")
    forced = make_pubsub_event(PROJECT, "nightly", {"date": RUN_DATE.isoformat(), "force": True})
    assert _post(client, _nightly()).status_code == 200
    assert _post(client, forced).status_code == 200
    assert _post(client, forced).status_code == 200  # redelivered: same event id

    first, second, redelivered = decisions(log_buffer)
    attempt = dataclasses.replace(PARAMS, attempt=1)
    assert (first["action"], first["run_id"]) == ("exported", PARAMS.run_id)
    assert (second["action"], second["run_id"]) == ("exported", attempt.run_id)
    assert (redelivered["action"], redelivered["run_id"]) == ("resumed", attempt.run_id)
    assert [b["jobReference"]["jobId"] for b in fake_bigquery.inserts] == [
        f"simrec-export-{PARAMS.key}", f"simrec-export-{PARAMS.key}-a1"
    ]
    refresh_gcsfs()
    for params in (PARAMS, attempt):  # the first attempt's manifest is kept
        assert storage.exists(layout.export_manifest(f"gs://{BUCKET}", "default", params.run_id))


def test_export_function_failure_leaves_no_manifest_and_redelivery_reruns(
    gcp_env, fake_bigquery, log_buffer
) -> None:
    client = _function("export")
    fake_bigquery.outcome = "failed"
    assert _post(client, _nightly()).status_code == 500  # Pub/Sub retries the delivery
    assert not _export_manifest_exists()

    fake_bigquery.outcome = "done"
    assert _post(client, _nightly()).status_code == 200
    failed, exported = decisions(log_buffer)
    assert failed["action"] == "failed" and failed["severity"] == "ERROR"
    assert "simulated failure" in failed["reason"]
    assert exported["action"] == "exported" and exported["run_id"] == PARAMS.run_id
    assert _export_manifest_exists()
    assert list(fake_bigquery.jobs) == [
        f"simrec-export-{PARAMS.key}", f"simrec-export-{PARAMS.key}-retry1"
    ]


# --- cluster: GCS object event -> Dataproc workflow over gRPC ----------------------------
def _export_manifest_event(gcs) -> CloudEvent:
    name = f"exports/default/runs/{PARAMS.run_id}/_MANIFEST.json"
    body = {"stage": "export", "run_id": PARAMS.run_id, "tenant": "default",
            "params": PARAMS.to_json()}  # fmt: skip
    return _storage_event(gcs, name, json.dumps(body).encode())


def test_cluster_function_starts_one_workflow_for_a_redelivered_manifest(
    gcp_env, gcs, grpc_stub, log_buffer
) -> None:
    client = _function("cluster")
    part = _storage_event(gcs, "exports/default/dt=2024-02-27/part-0.parquet", b"PAR1")
    assert _post(client, part).status_code == 200
    event = _export_manifest_event(gcs)
    assert _post(client, event).status_code == 200
    assert _post(client, event).status_code == 200

    ignored, first, second = decisions(log_buffer)
    assert ignored["action"] == "ignored"
    assert first["action"] == second["action"] == "launched"
    assert first["ids"]["request_id"] == second["ids"]["request_id"]
    requests = grpc_stub.instantiate_requests
    assert len(requests) == 2 and grpc_stub.workflows_started == 1
    assert grpc_stub.duplicates == [requests[0].request_id]
    assert requests[0].name == (
        f"projects/{PROJECT}/regions/{REGION}/workflowTemplates/simrec-dimsum"
    )
    assert dict(requests[0].parameters) == {
        "EXPORT_MANIFEST": f"gs://{BUCKET}/exports/default/runs/{PARAMS.run_id}/_MANIFEST.json",
        "OUTPUT": f"gs://{BUCKET}/similarities/default/{PARAMS.run_id}",
    }


# --- dataflow_launch: GCS object event -> Flex Template over gRPC -----------------------
def test_dataflow_launch_function_launches_one_job_and_skips_published_versions(
    gcp_env, gcs, grpc_stub, log_buffer
) -> None:
    from google.cloud import dataflow_v1beta3

    client = _function("dataflow_launch")
    name = f"similarities/default/{PARAMS.run_id}/_MANIFEST.json"
    body = {"stage": "similarities", "run_id": PARAMS.run_id, "tenant": "default",
            "params": PARAMS.to_json()}  # fmt: skip
    event = _storage_event(gcs, name, json.dumps(body).encode())
    assert _post(client, event).status_code == 200
    assert _post(client, event).status_code == 200  # while the job runs

    grpc_stub.finish_jobs(dataflow_v1beta3.JobState.JOB_STATE_DONE)
    metadata = f"models/default/{PARAMS.run_id}/metadata.json"
    gcs.client().bucket(BUCKET).blob(metadata).upload_from_string(b"{}")
    refresh_gcsfs()
    assert _post(client, event).status_code == 200  # after the model is published

    launched, running, published = decisions(log_buffer)
    assert launched["action"] == "launched" and launched["ids"]["job_name"] == job_name(PARAMS)
    assert running["action"] == published["action"] == "skipped"
    # the complete version was never pointed at (the stub job wrote no LATEST): repaired
    assert snapshots.latest_version(f"gs://{BUCKET}", "default") == PARAMS.run_id
    assert len(grpc_stub.launch_requests) == 1 and grpc_stub.flex_jobs_started == 1
    param = grpc_stub.launch_requests[0].launch_parameter
    assert param.job_name == job_name(PARAMS)
    assert param.container_spec_gcs_path == "gs://simrec-staging/flex/load.json"
    assert dict(param.parameters) == {
        "similarities": f"gs://{BUCKET}/similarities/default/{PARAMS.run_id}",
        "models_root": f"gs://{BUCKET}",
        "tenant": "default",
        "model_version": PARAMS.run_id,
    }


def test_dataflow_launch_redelivery_of_an_older_night_never_moves_latest_back(
    gcp_env, gcs, grpc_stub, log_buffer
) -> None:
    bucket = gcs.client().bucket(BUCKET)
    newer = dataclasses.replace(PARAMS, date=RUN_DATE + dt.timedelta(days=1))
    for params in (PARAMS, newer):
        meta = {"version": params.run_id, "params": params.to_json(),
                "created_at": f"{params.date}T02:00:00Z"}  # fmt: skip
        bucket.blob(f"models/default/{params.run_id}/metadata.json").upload_from_string(
            json.dumps(meta).encode()
        )
    bucket.blob("models/default/LATEST").upload_from_string(newer.run_id.encode())
    refresh_gcsfs()
    name = f"similarities/default/{PARAMS.run_id}/_MANIFEST.json"
    body = {"stage": "similarities", "run_id": PARAMS.run_id, "tenant": "default",
            "params": PARAMS.to_json()}  # fmt: skip
    assert _post(_function("dataflow_launch"), _storage_event(gcs, name, json.dumps(body).encode())
                 ).status_code == 200
    [skipped] = decisions(log_buffer)
    assert skipped["action"] == "skipped" and "kept aside" in skipped["reason"]
    assert bucket.blob("models/default/LATEST").download_as_bytes() == newer.run_id.encode()
    assert grpc_stub.launch_requests == []


def test_pubsub_event_payload_roundtrip() -> None:
    """The event the in-process tests deliver carries the payload as Pub/Sub does."""
    event = _nightly()
    payload = json.loads(base64.b64decode(event.data["message"]["data"]))
    assert payload == {"date": RUN_DATE.isoformat()}


# --- how a launched job ended: to the function that launched it ------------------------
def _status_event(job) -> CloudEvent:
    """A Dataflow status event as Eventarc delivers it (attributes and JobEventData as in
    google-cloudevents' dataflow/v1beta3 protos and a captured delivery); the payload is
    the client library's own Job type in proto3 JSON."""
    from google.cloud import dataflow_v1beta3

    payload = json.loads(dataflow_v1beta3.Job.to_json(job, use_integers_for_enums=False))
    return CloudEvent(
        {"type": DATAFLOW_STATUS_CHANGED,
         "source": f"//dataflow.googleapis.com/projects/{PROJECT}/locations/{REGION}",
         "subject": f"jobs/{job.name}", "job": job.name, "id": "d20f9a8d4703f3a4",
         "datacontenttype": "application/json; charset=utf-8",
         "dataschema": DATAFLOW_DATA_SCHEMA},
        {"payload": payload,
         "@type": "type.googleapis.com/google.events.cloud.dataflow.v1beta3.JobEventData"},
    )  # fmt: skip


def test_dataflow_launch_retries_a_failed_load_on_its_status_event_then_alerts(
    gcp_env, gcs, grpc_stub, log_buffer, monkeypatch
) -> None:
    from google.cloud import dataflow_v1beta3

    launch = events = _job_function("dataflow_launch", 2, monkeypatch)
    name = f"similarities/default/{PARAMS.run_id}/_MANIFEST.json"
    body = {"stage": "similarities", "run_id": PARAMS.run_id, "tenant": "default",
            "params": PARAMS.to_json()}  # fmt: skip
    assert _post(launch, _storage_event(gcs, name, json.dumps(body).encode())).status_code == 200
    error = "Workflow failed. Causes: load_pipeline: error: no neighbors/*.parquet"
    for attempt in (0, 1):
        grpc_stub.finish_jobs(dataflow_v1beta3.JobState.JOB_STATE_FAILED)
        job = grpc_stub.job(job_name(PARAMS, attempt))
        assert _status_event(job).data["payload"]["currentState"] == "JOB_STATE_FAILED"
        grpc_stub.job_messages[job.id] = [dataflow_v1beta3.JobMessage(
            message_text=error,
            message_importance=dataflow_v1beta3.JobMessageImportance.JOB_MESSAGE_ERROR,
        )]  # fmt: skip
        refresh_gcsfs()
        assert _post(events, _status_event(job)).status_code == 200
    assert _post(events, _status_event(job)).status_code == 200  # redelivered

    lines = decisions(log_buffer)
    assert [(d["stage"], d["action"]) for d in lines] == [
        ("dataflow_launch", "launched"), ("dataflow_launch", "launched"),
        (STAGE, "failed"), (STAGE, "failed"), (STAGE, "skipped"),
    ]
    first, last = lines[2], lines[3]
    assert first["run_id"] == PARAMS.run_id and first["ids"]["error"] == error
    assert first["ids"]["retry_job_id"] == job_name(PARAMS, 1) and "alert" not in first
    assert last["alert"] == JOB_GAVE_UP_ALERT and last["severity"] == "ERROR"
    assert [r.launch_parameter.job_name for r in grpc_stub.launch_requests] == [
        job_name(PARAMS, 0), job_name(PARAMS, 1)
    ]


def test_cluster_polls_dataproc_workflows_on_the_watch_tick(
    gcp_env, gcs, grpc_stub, log_buffer, monkeypatch
) -> None:
    from google.cloud import dataproc_v1

    from simrec.adapters.gcp.dataproc import dataproc_request_id
    from simrec.stages import cluster

    launch = events = _job_function("cluster", 2, monkeypatch)
    assert _post(launch, _export_manifest_event(gcs)).status_code == 200
    tick = make_pubsub_event(PROJECT, "simrec-job-watch", {})  # Cloud Scheduler's message
    refresh_gcsfs()
    assert _post(events, tick).status_code == 200  # still running: nothing to decide
    [operation] = grpc_stub.operations.values()
    quota = "Insufficient 'CPUS' quota. Requested 12.0, available 8.0."
    grpc_stub.finish_workflow(operation, dataproc_v1.WorkflowMetadata(
        create_cluster=dataproc_v1.ClusterOperation(done=True, error=quota),
        graph=dataproc_v1.WorkflowGraph(nodes=[dimsum_node("BLOCKED")]),
    ), error=quota)  # fmt: skip
    assert _post(events, tick).status_code == 200

    lines = decisions(log_buffer)
    assert [(d["stage"], d["action"]) for d in lines] == [
        ("cluster", "launched"), (STAGE, "ignored"), ("cluster", "launched"),
        (STAGE, "failed"),
    ]
    failed = lines[-1]
    assert failed["ids"]["job_state"] == "the workflow never started its job"
    assert quota in failed["ids"]["error"] and failed["run_id"] == PARAMS.run_id
    retry_id = dataproc_request_id(cluster.request_id(PARAMS, 1))
    assert [r.request_id for r in grpc_stub.instantiate_requests] == [
        dataproc_request_id(cluster.request_id(PARAMS, 0)), retry_id
    ]
    assert failed["ids"]["retry_job_id"] == retry_id


def test_a_redelivered_manifest_starts_no_second_job_but_a_rerun_after_giving_up_does(
    gcp_env, gcs, grpc_stub, log_buffer, monkeypatch
) -> None:
    """While a load runs, a redelivered manifest event starts nothing; once the run gave up,
    the manifest event of the documented recovery (`simrec cloud rerun` re-emits it)
    starts the next attempt under its own job name (jobs.attempt_for_event)."""
    from google.cloud import dataflow_v1beta3

    launch = events = _job_function("dataflow_launch", 1, monkeypatch)
    name = f"similarities/default/{PARAMS.run_id}/_MANIFEST.json"
    body = {"stage": "similarities", "run_id": PARAMS.run_id, "tenant": "default",
            "params": PARAMS.to_json()}  # fmt: skip
    manifest_event = _storage_event(gcs, name, json.dumps(body).encode())
    assert _post(launch, manifest_event).status_code == 200
    refresh_gcsfs()
    assert _post(launch, manifest_event).status_code == 200  # Eventarc delivers it again
    assert grpc_stub.flex_jobs_started == 1
    grpc_stub.finish_jobs(dataflow_v1beta3.JobState.JOB_STATE_FAILED)
    refresh_gcsfs()
    assert _post(events, _status_event(grpc_stub.job(job_name(PARAMS)))).status_code == 200
    refresh_gcsfs()
    assert _post(launch, manifest_event).status_code == 200  # the rerun's re-emitted manifest

    lines = decisions(log_buffer)
    assert [(d["stage"], d["action"]) for d in lines] == [
        ("dataflow_launch", "launched"), ("dataflow_launch", "skipped"),
        (STAGE, "failed"), ("dataflow_launch", "launched"),
    ]
    assert lines[2]["alert"] == JOB_GAVE_UP_ALERT
    assert grpc_stub.flex_jobs_started == 2
    assert lines[3]["ids"]["job_name"] == job_name(PARAMS, 1)


def _audit_event(operation: str, *, last: bool) -> CloudEvent:
    """A Cloud Audit Logs event of the workflow's InstantiateWorkflowTemplate operation, as
    Eventarc delivers it: ``data`` is a LogEntryData (google-cloudevents
    proto/google/events/cloud/audit/v1/data.proto) in proto3 JSON."""
    from simrec.stages.jobs import DATAPROC_SERVICE, INSTANTIATE_METHOD

    template = f"projects/{PROJECT}/regions/{REGION}/workflowTemplates/simrec-dimsum"
    return CloudEvent(
        {"type": AUDIT_LOG_WRITTEN, "id": f"{operation}-{last}",
         "source": f"//cloudaudit.googleapis.com/projects/{PROJECT}/logs/activity",
         "subject": f"{DATAPROC_SERVICE}/{template}", "serviceName": DATAPROC_SERVICE,
         "methodName": INSTANTIATE_METHOD, "resourceName": template},
        {"logName": f"projects/{PROJECT}/logs/cloudaudit.googleapis.com%2Factivity",
         "protoPayload": {"serviceName": DATAPROC_SERVICE, "methodName": INSTANTIATE_METHOD,
                          "resourceName": template, "status": {}},
         "operation": {"id": operation, "producer": DATAPROC_SERVICE, "first": not last,
                       "last": last},
         "resource": {"type": "audited_resource",
                      "labels": {"project_id": PROJECT, "service": DATAPROC_SERVICE}},
         "severity": "NOTICE", "insertId": "x1"},
    )  # fmt: skip


def test_cluster_polls_at_once_on_the_workflows_last_audit_entry(
    gcp_env, gcs, grpc_stub, log_buffer, monkeypatch
) -> None:
    from google.cloud import dataproc_v1

    launch = events = _job_function("cluster", 1, monkeypatch)
    assert _post(launch, _export_manifest_event(gcs)).status_code == 200
    [operation] = grpc_stub.operations.values()
    refresh_gcsfs()
    assert _post(events, _audit_event(operation, last=False)).status_code == 200
    assert grpc_stub.get_operation_requests == []  # the start entry polls nothing
    failed = "Job failed with message [Py4JJavaError: ...]"
    grpc_stub.finish_workflow(operation, dataproc_v1.WorkflowMetadata(
        graph=dataproc_v1.WorkflowGraph(nodes=[dimsum_node("FAILED", "dimsum-x1", failed)]),
    ), error="Workflow failed")  # fmt: skip
    assert _post(events, _audit_event(operation, last=True)).status_code == 200

    lines = decisions(log_buffer)
    assert [(d["stage"], d["action"]) for d in lines] == [
        ("cluster", "launched"), (STAGE, "ignored"), (STAGE, "failed"),
    ]
    assert lines[-1]["ids"]["job_state"] == "job dimsum FAILED"
    assert failed in lines[-1]["ids"]["error"] and lines[-1]["alert"] == JOB_GAVE_UP_ALERT
    assert grpc_stub.get_operation_requests == [operation]


def test_the_watch_expires_job_records_by_their_cloud_storage_update_time(
    gcp_env, gcs, grpc_stub
) -> None:
    """gcsfs lists ``mtime`` from the object's ``updated``: records written now are kept,
    and deleted once RECORD_DAYS have passed."""
    from simrec.stages import jobs

    assert _post(_function("cluster"), _export_manifest_event(gcs)).status_code == 200
    refresh_gcsfs()
    settings = Settings()
    [record] = jobs.running_records(settings, "cluster")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=jobs.RECORD_DAYS, hours=1)
    assert jobs.running_records(settings, "cluster", now=later) == []
    refresh_gcsfs()
    assert jobs.read_record(settings, record.job_id) is None
