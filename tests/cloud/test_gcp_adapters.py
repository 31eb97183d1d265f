"""Google Cloud adapters over a real wire: the real GAPIC / BigQuery clients talk to
loopback stubs (tests/cloud/wire.py) that record what the cloud would receive."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from google.cloud import dataflow_v1beta3

from simrec import sql as export_sql
from simrec import storage
from simrec.adapters import build_adapters
from simrec.adapters.gcp import BigQueryWarehouse, DataprocWorkflowLauncher, FlexTemplateLauncher
from simrec.adapters.gcp.bigquery import ExportTimeout, export_script, job_id
from simrec.adapters.gcp.dataproc import dataproc_request_id
from simrec.adapters.launch_ports import LoadRequest
from simrec.config import Settings
from simrec.core import layout
from simrec.core.runs import RunParams
from simrec.core.snapshot import METADATA_NAME
from simrec.stages import load
from simrec.stages.export import run_export
from tests.cloud.wire import (
    BUCKET,
    EVENTS_TABLE,
    PROJECT,
    REGION,
    dataflow_clients,
    dataflow_messages_client,
    dataproc_client,
    dimsum_node,
)

PARAMS = RunParams(tenant="shop-1", date=dt.date(2024, 3, 1), window_days=3)
TABLE = EVENTS_TABLE
ROOT = f"gs://{BUCKET}"
TEMPLATE = "gs://simrec-staging/flex/load.json"


def _gcp_settings(**overrides) -> Settings:
    values = {
        "backend": "gcp", "gcp_project": PROJECT, "gcp_region": REGION,
        "dataproc_workflow_template": "simrec-dimsum", "flex_template_uri": TEMPLATE,
        "dataflow_service_account": "loader@simrec-test.iam.gserviceaccount.com",
        "staging_uri": "gs://simrec-staging", "datastore_project": "ds-project",
    }  # fmt: skip
    return Settings(**{**values, **overrides})


# --- Dataproc ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "given",
    ["simrec-dimsum-default-2024-03-01-1a2b3c4d", "a" * 80, "run with spaces/and:colons", "ok"],
)
def test_dataproc_request_id_follows_dataproc_rules(given: str) -> None:
    rid = dataproc_request_id(given)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", rid)
    assert dataproc_request_id(given) == rid  # deterministic
    if re.fullmatch(r"[A-Za-z0-9_-]{1,40}", given):
        assert rid == given


def test_dataproc_request_ids_of_different_runs_differ() -> None:
    a = dataproc_request_id(f"simrec-dimsum-{PARAMS.key}")
    other = RunParams(tenant="shop-1", date=dt.date(2024, 3, 1), window_days=4)
    assert a != dataproc_request_id(f"simrec-dimsum-{other.key}")


def test_dataproc_instantiate_request_and_redelivery(grpc_stub, tmp_path) -> None:
    launcher = DataprocWorkflowLauncher(_gcp_settings(), client=dataproc_client(grpc_stub))
    output = str(tmp_path / "similarities" / PARAMS.run_id)
    manifest = f"{ROOT}/exports/shop-1/runs/{PARAMS.run_id}/_MANIFEST.json"
    first = launcher.submit(
        export_manifest_uri=manifest, output_uri=output, params=PARAMS,
        request_id=f"simrec-dimsum-{PARAMS.key}",
    )  # fmt: skip
    second = launcher.submit(
        export_manifest_uri=manifest, output_uri=output, params=PARAMS,
        request_id=f"simrec-dimsum-{PARAMS.key}",
    )  # fmt: skip

    assert first.state == second.state == "started"
    assert len(grpc_stub.instantiate_requests) == 2
    request = grpc_stub.instantiate_requests[0]
    assert request.name == (
        f"projects/{PROJECT}/regions/{REGION}/workflowTemplates/simrec-dimsum"
    )
    assert dict(request.parameters) == {"EXPORT_MANIFEST": manifest, "OUTPUT": output}
    assert request.request_id == first.job_id == second.job_id
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", request.request_id)
    # The redelivery carries the same request id: Dataproc (and the stub) dedupe it.
    assert grpc_stub.instantiate_requests[1].request_id == request.request_id
    assert grpc_stub.duplicates == [request.request_id]
    assert grpc_stub.workflows_started == 1
    assert first.details["operation"] == second.details["operation"]


def test_dataproc_skips_a_run_whose_similarities_exist(grpc_stub, tmp_path) -> None:
    launcher = DataprocWorkflowLauncher(_gcp_settings(), client=dataproc_client(grpc_stub))
    output = str(tmp_path / "sims")
    storage.write_json(layout.join(output, layout.MANIFEST_NAME), {"stage": "similarities"})
    result = launcher.submit(
        export_manifest_uri="gs://b/m.json", output_uri=output, params=PARAMS, request_id="x"
    )
    assert result.state == "exists"
    assert grpc_stub.instantiate_requests == []


def test_gcp_backend_builds_lazy_adapters_without_credentials() -> None:
    adapters = build_adapters(Settings(backend="gcp", gcp_project=PROJECT))
    assert isinstance(adapters.warehouse, BigQueryWarehouse)
    assert isinstance(adapters.spark, DataprocWorkflowLauncher)
    assert isinstance(adapters.beam, FlexTemplateLauncher)
    assert adapters.spark._client is None and adapters.beam._flex is None


# --- Dataflow ---------------------------------------------------------------------------
def _flex_launcher(stub, **overrides) -> FlexTemplateLauncher:
    flex, jobs = dataflow_clients(stub)
    return FlexTemplateLauncher(
        _gcp_settings(**overrides), flex_client=flex, jobs_client=jobs,
        messages_client=dataflow_messages_client(stub),
    )  # fmt: skip


def _launch(launcher: FlexTemplateLauncher, models_root: str):
    return launcher.launch(LoadRequest(
        similarities_uri=f"{ROOT}/similarities/shop-1/{PARAMS.run_id}",
        models_root=models_root,
        tenant="shop-1",
        model_version=PARAMS.run_id,
        job_name=load.job_name(PARAMS),
    ))


def test_flex_template_launch_request(grpc_stub, tmp_path) -> None:
    result = _launch(_flex_launcher(grpc_stub), str(tmp_path))
    assert result.state == "started"
    assert len(grpc_stub.launch_requests) == 1
    request = grpc_stub.launch_requests[0]
    assert (request.project_id, request.location) == (PROJECT, REGION)
    param = request.launch_parameter
    assert param.job_name == load.job_name(PARAMS) == result.job_id
    assert re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", param.job_name)
    assert param.container_spec_gcs_path == TEMPLATE
    assert dict(param.parameters) == {
        "similarities": f"{ROOT}/similarities/shop-1/{PARAMS.run_id}",
        "models_root": str(tmp_path),
        "tenant": "shop-1",
        "model_version": PARAMS.run_id,
        "datastore_project": "ds-project",
    }
    env = param.environment
    assert env.service_account_email == "loader@simrec-test.iam.gserviceaccount.com"
    assert env.temp_location == "gs://simrec-staging/tmp"
    assert env.staging_location == "gs://simrec-staging/staging"
    # Cost limits from the settings (defaults here); no network unless one is set.
    assert (env.max_workers, env.machine_type) == (2, "n1-standard-2")
    assert (env.network, env.subnetwork) == ("", "")
    assert dict(env.additional_user_labels) == {"simrec-stage": "load"}
    # The active-job check ran first, by name.
    listed = grpc_stub.list_requests[0]
    assert listed.filter == dataflow_v1beta3.ListJobsRequest.Filter.ACTIVE
    assert (listed.project_id, listed.location, listed.name) == (PROJECT, REGION, param.job_name)


def test_flex_template_redelivery_finds_the_active_job_and_rerun_after_failure(
    grpc_stub, tmp_path
) -> None:
    launcher = _flex_launcher(grpc_stub)
    assert _launch(launcher, str(tmp_path)).state == "started"
    again = _launch(launcher, str(tmp_path))
    assert again.state == "exists" and again.details["job_state"] == "JOB_STATE_RUNNING"
    assert grpc_stub.flex_jobs_started == 1 and len(grpc_stub.launch_requests) == 1

    grpc_stub.finish_jobs(dataflow_v1beta3.JobState.JOB_STATE_FAILED)  # no model published
    assert _launch(launcher, str(tmp_path)).state == "started"
    assert grpc_stub.flex_jobs_started == 2


def test_flex_template_already_exists_race_is_exists(grpc_stub, tmp_path) -> None:
    launcher = _flex_launcher(grpc_stub)
    assert _launch(launcher, str(tmp_path)).state == "started"
    grpc_stub.hide_jobs_from_list = True  # the second launch gets past the ListJobs check
    raced = _launch(launcher, str(tmp_path))
    assert raced.state == "exists"
    assert len(grpc_stub.launch_requests) == 2 and grpc_stub.flex_jobs_started == 1


def test_flex_template_published_version_launches_nothing(grpc_stub, tmp_path) -> None:
    folder = layout.model_version(str(tmp_path), "shop-1", PARAMS.run_id)
    storage.write_json(layout.join(folder, METADATA_NAME), {"version": PARAMS.run_id})
    result = _launch(_flex_launcher(grpc_stub), str(tmp_path))
    assert result.state == "exists"
    assert grpc_stub.launch_requests == [] and grpc_stub.list_requests == []


def test_flex_template_needs_a_template_uri(grpc_stub, tmp_path) -> None:
    launcher = _flex_launcher(grpc_stub, flex_template_uri="")
    with pytest.raises(ValueError, match="SIMREC_FLEX_TEMPLATE_URI"):
        _launch(launcher, str(tmp_path))


# --- BigQuery ---------------------------------------------------------------------------
def test_export_script_uses_parameters_not_dates() -> None:
    script = export_script(PARAMS, "plain", TABLE, None, ROOT)
    for day in PARAMS.days():
        assert day.isoformat() not in script
    assert "@start_date" in script and "@end_date" in script and "@day" in script
    assert f"'{ROOT}/exports/shop-1'" in script
    assert f"'{ROOT}/exports/shop-1/runs/{PARAMS.run_id}/rejects/part-*.parquet'" in script
    assert script.count("EXPORT DATA") == 2 and "format = 'PARQUET'" in script
    assert script.rstrip().endswith("ORDER BY dt, reason, event_name;")
    # The rejects file holds rejects only, not the rows counted outside the window.
    assert "WHERE reason IN ('missing_user_id'" in script and "IS NOT NULL" not in script


def test_export_script_refuses_unsafe_destinations() -> None:
    with pytest.raises(ValueError, match="gs:// path"):
        export_script(PARAMS, "plain", TABLE, None, "gs://bucket/it's")


def _warehouse(fake, timeout_s: float = 30.0) -> BigQueryWarehouse:
    return BigQueryWarehouse(PROJECT, "EU", timeout_s, endpoint=fake.url)


def _counts(params: RunParams) -> list[tuple[str | None, str | None, int]]:
    first, second = params.days()[0].isoformat(), params.days()[1].isoformat()
    return [(first, None, 5), (second, None, 3), (None, "bad_timestamp", 2),
            (second, "unknown_action", 1)]  # fmt: skip


def _write_days(gcs, params: RunParams) -> None:
    """The fake executes nothing: stand in for the EXPORT DATA of the days with rows."""
    bucket = gcs.client().bucket(BUCKET)
    for day in {d for d, reason, _ in _counts(params) if d and reason is None}:
        bucket.blob(f"exports/{params.tenant}/dt={day}/part-000000000000.parquet"
                    ).upload_from_string(b"PAR1")


def _manifest_uri(params: RunParams = PARAMS) -> str:
    return layout.export_manifest(ROOT, params.tenant, params.run_id)


def test_bigquery_export_job_request_and_manifest(fake_bigquery, gcs) -> None:
    fake_bigquery.tables[TABLE] = ["user_id", "sku", "action", "date"]
    fake_bigquery.counts = _counts(PARAMS)
    bucket = gcs.client().bucket(BUCKET)
    stale_day = PARAMS.days()[2].isoformat()  # no rows in this run: must disappear
    bucket.blob(f"exports/shop-1/dt={stale_day}/part-000.parquet").upload_from_string(b"old")
    bucket.blob("exports/shop-1/dt=2020-01-01/part-000.parquet").upload_from_string(b"keep")
    _write_days(gcs, PARAMS)

    manifest = run_export(PARAMS, _warehouse(fake_bigquery), TABLE, "plain", ROOT)

    assert fake_bigquery.table_gets == [TABLE]
    [insert] = fake_bigquery.inserts
    assert insert["jobReference"]["jobId"] == f"simrec-export-{PARAMS.key}" == job_id(PARAMS)
    assert insert["jobReference"]["location"] == "EU"
    query = insert["configuration"]["query"]
    assert query["useLegacySql"] is False
    assert query["parameterMode"] == "NAMED"
    assert sorted(query["queryParameters"], key=lambda p: p["name"]) == [
        {"name": "end_date", "parameterType": {"type": "DATE"},
         "parameterValue": {"value": PARAMS.end_date.isoformat()}},
        {"name": "start_date", "parameterType": {"type": "DATE"},
         "parameterValue": {"value": PARAMS.start_date.isoformat()}},
    ]  # fmt: skip
    text = query["query"]
    assert f"FROM `{TABLE}`" in text and "CAST(`date` AS STRING)" in text
    assert "EXPORT DATA" in text and f"{ROOT}/exports/shop-1" in text
    assert PARAMS.start_date.isoformat() not in text

    # The manifest is written last, to GCS, from the job's counts.
    stored = json.loads(bucket.blob(_manifest_uri().split(f"{BUCKET}/", 1)[1]).download_as_bytes())
    assert stored == json.loads(json.dumps(manifest))
    assert [d["rows"] for d in stored["days"]] == [5, 3]
    assert stored["counts"]["rows_read"] == 11 and stored["counts"]["rows_rejected"] == 3
    assert stored["counts"]["rejected_by_reason"]["bad_timestamp"] == 2
    assert stored["rejects_uri"] == f"{ROOT}/exports/shop-1/runs/{PARAMS.run_id}/rejects"
    names = {b.name for b in gcs.client().list_blobs(BUCKET)}
    assert f"exports/shop-1/dt={stale_day}/part-000.parquet" not in names
    assert "exports/shop-1/dt=2020-01-01/part-000.parquet" in names  # outside the window


def test_bigquery_redelivery_finds_the_job_instead_of_starting_one(fake_bigquery, gcs) -> None:
    fake_bigquery.tables[TABLE] = ["user_id", "sku", "action", "ts"]
    fake_bigquery.counts = _counts(PARAMS)
    warehouse = _warehouse(fake_bigquery)
    first = warehouse.export(PARAMS, TABLE, "plain", ROOT)
    second = warehouse.export(PARAMS, TABLE, "plain", ROOT)
    assert len(fake_bigquery.inserts) == 2  # the second insert was answered 409
    assert list(fake_bigquery.jobs) == [job_id(PARAMS)]  # exactly one job
    assert first.days == second.days and first.rows_read == second.rows_read == 11


def test_bigquery_failed_job_leaves_no_manifest_and_rerun_succeeds(fake_bigquery, gcs) -> None:
    from google.api_core.exceptions import GoogleAPICallError

    fake_bigquery.tables[TABLE] = ["user_id", "sku", "action", "ts"]
    fake_bigquery.counts = _counts(PARAMS)
    fake_bigquery.outcome = "failed"
    with pytest.raises(GoogleAPICallError, match="simulated failure"):
        run_export(PARAMS, _warehouse(fake_bigquery), TABLE, "plain", ROOT)
    assert not storage.exists(_manifest_uri())

    fake_bigquery.outcome = "done"
    _write_days(gcs, PARAMS)
    manifest = run_export(PARAMS, _warehouse(fake_bigquery), TABLE, "plain", ROOT)
    assert storage.exists(_manifest_uri())
    assert manifest["counts"]["rows_valid"] == 8
    # The failed job keeps its id; the rerun is the run's next attempt id.
    assert list(fake_bigquery.jobs) == [job_id(PARAMS), job_id(PARAMS, 1)]


def test_bigquery_job_over_the_time_budget_raises_and_writes_nothing(fake_bigquery, gcs) -> None:
    fake_bigquery.tables[TABLE] = ["user_id", "sku", "action", "ts"]
    fake_bigquery.outcome = "running"
    with pytest.raises(ExportTimeout, match="still running"):
        run_export(PARAMS, _warehouse(fake_bigquery, timeout_s=1.0), TABLE, "plain", ROOT)
    assert not storage.exists(_manifest_uri())
    assert list(fake_bigquery.jobs) == [job_id(PARAMS)]


def test_bigquery_ga4_reads_the_wildcard_table_without_a_schema_lookup(fake_bigquery, gcs) -> None:
    fake_bigquery.counts = [(PARAMS.days()[0].isoformat(), None, 1)]
    result = _warehouse(fake_bigquery).export(PARAMS, f"{PROJECT}.analytics_1", "ga4", ROOT)
    assert result.rows_valid == 1 and fake_bigquery.table_gets == []
    text = fake_bigquery.inserts[0]["configuration"]["query"]["query"]
    assert f"`{PROJECT}.analytics_1.events_*`" in text and "_TABLE_SUFFIX" in text


def test_bigquery_ga4_counts_ignored_events_and_rows_outside(fake_bigquery, gcs) -> None:
    first = PARAMS.days()[0].isoformat()
    before = (PARAMS.start_date - dt.timedelta(days=1)).isoformat()
    fake_bigquery.counts = [(first, None, None, 4), (first, "ignored_event", "page_view", 7),
                            (before, "before_window", None, 2),
                            (first, "duplicate_event", None, 1)]  # fmt: skip
    result = _warehouse(fake_bigquery).export(PARAMS, f"{PROJECT}.analytics_1", "ga4", ROOT)
    assert result.ignored_events == {"page_view": 7} and result.rows_outside == 2
    assert result.rows_read == 14 and result.rejected_by_reason["duplicate_event"] == 1
    params = fake_bigquery.inserts[0]["configuration"]["query"]["queryParameters"]
    assert {p["name"] for p in params} == set(export_sql.query_parameters(PARAMS, schema="ga4"))
    by_name = {p["name"]: p for p in params}
    assert by_name["duplicate_tolerance_us"]["parameterType"] == {"type": "INT64"}
    assert by_name["time_zone"] == {"name": "time_zone", "parameterType": {"type": "STRING"},
                                    "parameterValue": {"value": "UTC"}}  # fmt: skip


def test_bigquery_refuses_a_column_of_the_wrong_type_by_name(fake_bigquery, gcs) -> None:
    from simrec.core.events import SourceError

    fake_bigquery.tables[TABLE] = [
        "user_id", {"name": "sku", "type": "FLOAT"}, "action", {"name": "ts", "type": "TIMESTAMP"}
    ]  # fmt: skip
    with pytest.raises(SourceError, match=r"column 'sku' \(sku\) is FLOAT"):
        run_export(PARAMS, _warehouse(fake_bigquery), TABLE, "plain", ROOT)
    fake_bigquery.tables[TABLE] = [
        "user_id", {"name": "sku", "type": "STRING", "mode": "REPEATED"}, "action", "ts"
    ]  # fmt: skip
    with pytest.raises(SourceError, match="column 'sku'"):
        run_export(PARAMS, _warehouse(fake_bigquery), TABLE, "plain", ROOT)
    assert fake_bigquery.inserts == []  # refused before any job


def test_bigquery_export_refuses_a_local_data_root(fake_bigquery) -> None:
    with pytest.raises(ValueError, match="gs://"):
        _warehouse(fake_bigquery).export(PARAMS, TABLE, "plain", "/tmp/data")


# --- how a job ended ---------------------------------------------------------------------
def _workflow(stub, tmp_path) -> tuple[DataprocWorkflowLauncher, str]:
    launcher = DataprocWorkflowLauncher(_gcp_settings(), client=dataproc_client(stub))
    result = launcher.submit(
        export_manifest_uri=f"{ROOT}/exports/shop-1/runs/{PARAMS.run_id}/_MANIFEST.json",
        output_uri=str(tmp_path / "sims"), params=PARAMS, request_id="simrec-dimsum-x",
    )  # fmt: skip
    return launcher, result.details["operation"]


def test_dataproc_outcome_of_a_workflow_that_never_started_its_job(grpc_stub, tmp_path) -> None:
    from google.cloud import dataproc_v1

    launcher, operation = _workflow(grpc_stub, tmp_path)
    assert launcher.workflow_outcome("simrec-dimsum-x", operation).state == "running"
    quota = "Insufficient 'CPUS' quota. Requested 12.0, available 8.0."
    grpc_stub.finish_workflow(operation, dataproc_v1.WorkflowMetadata(
        state=dataproc_v1.WorkflowMetadata.State.DONE,
        create_cluster=dataproc_v1.ClusterOperation(done=True, error=quota),
        graph=dataproc_v1.WorkflowGraph(nodes=[dimsum_node("BLOCKED")]),
    ), error=quota)  # fmt: skip
    outcome = launcher.workflow_outcome("simrec-dimsum-x", operation)
    assert outcome.state == "failed"
    assert outcome.detail == "the workflow never started its job"
    assert quota in outcome.error
    assert grpc_stub.get_operation_requests == [operation, operation]


def test_dataproc_outcome_of_a_failed_and_of_a_completed_job(grpc_stub, tmp_path) -> None:
    from google.cloud import dataproc_v1

    launcher, operation = _workflow(grpc_stub, tmp_path)
    failed = "Job failed with message [ValueError: no rows]"
    grpc_stub.finish_workflow(operation, dataproc_v1.WorkflowMetadata(
        graph=dataproc_v1.WorkflowGraph(nodes=[dimsum_node("FAILED", "dimsum-abc", failed)]),
    ), error="Workflow failed")  # fmt: skip
    outcome = launcher.workflow_outcome("simrec-dimsum-x", operation)
    assert (outcome.state, outcome.detail) == ("failed", "job dimsum FAILED")
    assert failed in outcome.error and "Workflow failed" in outcome.error

    grpc_stub.finish_workflow(operation, dataproc_v1.WorkflowMetadata(
        graph=dataproc_v1.WorkflowGraph(nodes=[dimsum_node("COMPLETED", "dimsum-abc")]),
    ))  # fmt: skip
    assert launcher.workflow_outcome("simrec-dimsum-x", operation).state == "succeeded"


def test_flex_job_error_is_the_jobs_error_messages(grpc_stub, tmp_path) -> None:
    launcher = _flex_launcher(grpc_stub)
    result = _launch(launcher, str(tmp_path))
    job_id = result.details["job_id"]
    importance = dataflow_v1beta3.JobMessageImportance
    grpc_stub.job_messages[job_id] = [
        dataflow_v1beta3.JobMessage(message_text="Autoscaling: raised workers to 2",
                                    message_importance=importance.JOB_MESSAGE_BASIC),
        dataflow_v1beta3.JobMessage(message_text="Workflow failed. Causes: load_pipeline: "
                                    "error: no manifest",
                                    message_importance=importance.JOB_MESSAGE_ERROR),
    ]  # fmt: skip
    error = launcher.job_error(job_id, result.job_id)
    assert error == "Workflow failed. Causes: load_pipeline: error: no manifest"
    [request] = grpc_stub.list_messages_requests
    assert (request.project_id, request.location, request.job_id) == (PROJECT, REGION, job_id)
    assert request.minimum_importance == importance.JOB_MESSAGE_ERROR


def test_flex_launch_passes_network_and_catalog_when_set(grpc_stub, tmp_path) -> None:
    subnet = f"regions/{REGION}/subnetworks/simrec"
    launcher = _flex_launcher(grpc_stub, dataflow_network="simrec-vpc", dataflow_subnetwork=subnet,
                              catalog_uri=f"{ROOT}/catalog.parquet", dataflow_max_workers=7,
                              dataflow_machine_type="e2-standard-4")  # fmt: skip
    _launch(launcher, str(tmp_path))
    param = grpc_stub.launch_requests[0].launch_parameter
    assert param.parameters["catalog"] == f"{ROOT}/catalog.parquet"
    env = param.environment
    assert (env.network, env.subnetwork) == ("simrec-vpc", subnet)
    assert (env.max_workers, env.machine_type) == (7, "e2-standard-4")


def test_dataflow_job_names_of_attempts_differ_even_for_long_tenants() -> None:
    from simrec.core.runs import attempt_key

    long = RunParams(tenant="a-very-long-shop-name-" * 3, date=dt.date(2024, 3, 1))
    for params in (PARAMS, long):
        names = [load.job_name(params, attempt) for attempt in range(3)]
        assert len(set(names)) == 3
        for name in names:
            assert re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", name), name
    assert load.job_name(PARAMS, 1) == f"simrec-load-{attempt_key(PARAMS.key, 1)}"
    assert attempt_key(PARAMS.key, 0) == PARAMS.key
    assert job_id(PARAMS, 2) == f"simrec-export-{PARAMS.key}-retry2"  # BigQuery: same rule
