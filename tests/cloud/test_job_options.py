"""One translation of the settings per job (simrec.adapters.job_options), checked against
what the jobs declare: the Flex Template metadata (built by tools/build.py from the
pipeline's options), the Dataproc workflow template (Terraform), the Dataflow launch
environment type of google-cloud-dataflow-client; and no setting is read by nothing."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

import pytest
from google.cloud import dataflow_v1beta3

from simrec.adapters import job_options
from simrec.adapters.job_options import (
    LOAD_DEFAULTED_PARAMETERS,
    LOAD_ENVIRONMENT_SETTINGS,
    LOAD_RUN_PARAMETERS,
    LOAD_SETTING_PARAMETERS,
    SPARK_TEMPLATE_PARAMETERS,
    load_job_options,
    spark_job_options,
)
from simrec.adapters.launch_ports import LoadRequest
from simrec.adapters.local_launchers import LocalBeamLauncher, LocalSparkLauncher
from simrec.config import Settings
from simrec.core.params import NAMES

REPO = Path(__file__).resolve().parents[2]
RUN = {"similarities_uri": "gs://d/similarities/t/r", "models_root": "gs://m",
       "tenant": "t", "model_version": "r"}  # fmt: skip
#: A value for every setting a job option comes from (none is the default).
EVERY_SETTING = {
    "datastore_project": "ds-project", "datastore_namespace": "shop-ns",
    "catalog_uri": "gs://d/catalog.parquet",
    "dataflow_service_account": "l@p.iam.gserviceaccount.com",
    "dataflow_max_workers": 9, "dataflow_machine_type": "e2-standard-8",
    "dataflow_network": "vpc", "dataflow_subnetwork": "regions/europe-west1/subnetworks/s",
    "staging_uri": "gs://staging", "spark_master": "local[2]",
}  # fmt: skip


def _flex_metadata() -> dict:
    spec = importlib.util.spec_from_file_location("simrec_build_tool", REPO / "tools/build.py")
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return build.flex_metadata(REPO / build.LOAD_MODULE)


def test_flex_template_parameters_are_each_accounted_for() -> None:
    declared = {p["name"] for p in _flex_metadata()["parameters"]}
    known = set(LOAD_RUN_PARAMETERS) | set(LOAD_SETTING_PARAMETERS) | set(LOAD_DEFAULTED_PARAMETERS)
    assert declared == known


def test_every_flex_parameter_with_a_setting_is_passed_when_the_setting_is_set() -> None:
    settings = Settings(**EVERY_SETTING)
    options = load_job_options(settings, **RUN)
    declared = {p["name"] for p in _flex_metadata()["parameters"]}
    for name in declared - set(LOAD_DEFAULTED_PARAMETERS):
        assert name in options.parameters, f"Flex Template parameter {name} is not passed"
    for option, setting in LOAD_SETTING_PARAMETERS.items():
        assert options.parameters[option] == str(getattr(settings, setting))
    assert set(options.parameters) <= declared  # Dataflow refuses undeclared parameters


def test_unset_settings_pass_no_empty_parameter() -> None:
    options = load_job_options(Settings(datastore_namespace="orphan"), **RUN)
    assert set(options.parameters) == set(LOAD_RUN_PARAMETERS)  # namespace needs a project


def test_launch_environment_uses_the_client_types_field_names() -> None:
    fields = set(dataflow_v1beta3.FlexTemplateRuntimeEnvironment.meta.fields)
    assert set(LOAD_ENVIRONMENT_SETTINGS) <= fields
    settings = Settings(**EVERY_SETTING)
    environment = load_job_options(settings, **RUN).environment
    for field_name, setting in LOAD_ENVIRONMENT_SETTINGS.items():
        assert environment[field_name] == getattr(settings, setting)
    assert environment["temp_location"] == "gs://staging/tmp"
    built = dataflow_v1beta3.FlexTemplateRuntimeEnvironment(**environment)
    assert (built.max_workers, built.subnetwork) == (9, EVERY_SETTING["dataflow_subnetwork"])


def _dataproc_template() -> dict:
    from tests.cloud.test_terraform import module  # parses terraform/ with python-hcl2

    return module("modules/dataproc").resource("google_dataproc_workflow_template", "dimsum")


def test_every_dataproc_template_parameter_is_filled_and_replaces_its_flag() -> None:
    template = _dataproc_template()
    [job] = template["jobs"]
    args = job["pyspark_job"][0]["args"]
    declared = {p["name"]: p["fields"] for p in template["parameters"]}
    assert set(declared) == set(SPARK_TEMPLATE_PARAMETERS)
    for name, fields in declared.items():
        [path] = fields
        index = int(re.fullmatch(r"jobs\['[^']+'\]\.pysparkJob\.args\[(\d+)\]", path).group(1))
        assert args[index - 1] == SPARK_TEMPLATE_PARAMETERS[name], f"{name} replaces {path}"
    options = spark_job_options(Settings(), export_manifest_uri="gs://d/m.json", output_uri="gs://d/o")
    assert options.template_parameters() == {"EXPORT_MANIFEST": "gs://d/m.json", "OUTPUT": "gs://d/o"}


def test_local_launchers_run_the_jobs_with_the_same_options(monkeypatch, tmp_path) -> None:
    """The local command lines are exactly the options the cloud launchers send."""
    from simrec.adapters import local_launchers

    commands: list[list[str]] = []
    monkeypatch.setattr(local_launchers, "_run", lambda cmd, *a: commands.append(cmd) or 0.0)
    monkeypatch.setattr(local_launchers, "_emit", lambda event: None)
    settings = Settings(**EVERY_SETTING, data_uri=str(tmp_path), engine="spark")
    LocalBeamLauncher(settings, str(tmp_path)).launch(LoadRequest(
        similarities_uri=RUN["similarities_uri"], models_root=str(tmp_path), tenant="t",
        model_version="r", job_name="simrec-load-t-r",
    ))  # fmt: skip
    expected = load_job_options(settings, **{**RUN, "models_root": str(tmp_path)})
    assert commands[-1] == [sys.executable, "-m", "simrec.jobs.beam_load", *expected.argv()]
    LocalSparkLauncher(settings, str(tmp_path)).submit(
        export_manifest_uri="gs://d/m.json", output_uri=str(tmp_path / "out"), params=None,
        request_id="rid",
    )  # fmt: skip
    spark = spark_job_options(settings, export_manifest_uri="gs://d/m.json",
                              output_uri=str(tmp_path / "out"))  # fmt: skip
    assert commands[-1] == [sys.executable, "-m", "simrec.jobs.spark_similarity", *spark.argv(),
                            "--master", "local[2]"]  # fmt: skip


# --- no setting is read by nothing ------------------------------------------------------------
CONSUMER_DIRS = ("simrec", "functions", "beam", "spark")
_SETTINGS_NAMES = ("settings", "config", "s")  # serving binds `s = settings or Settings()`


def _is_settings(node: ast.expr) -> bool:
    """``settings.x``, ``self.settings.x``, ``self._settings.x``, ``s.x``: a Settings object."""
    return ast.unparse(node).split(".")[-1].lstrip("_") in _SETTINGS_NAMES


def _config_properties() -> dict[str, set[str]]:
    """Settings property -> the fields it reads (``models_root`` reads ``models_uri``...)."""
    tree = ast.parse((REPO / "simrec" / "config.py").read_text())
    [cls] = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings"]
    out = {}
    for fn in (n for n in cls.body if isinstance(n, ast.FunctionDef) and n.decorator_list):
        out[fn.name] = {n.attr for n in ast.walk(fn) if isinstance(n, ast.Attribute)
                        and isinstance(n.value, ast.Name) and n.value.id == "self"}  # fmt: skip
    # Settings.model reads every ModelParams field by name (getattr over params.NAMES).
    out["model"] = out.get("model", set()) | set(NAMES)
    for name, fields in out.items():  # a property reading another reads what it reads
        fields |= set().union(*(out.get(f, set()) for f in fields if f != name))
    return out


def settings_read() -> dict[str, set[str]]:
    """Setting -> the files that read it, outside simrec/config.py."""
    properties = _config_properties()
    tables = {
        "simrec/adapters/job_options.py": {*LOAD_SETTING_PARAMETERS.values(),
                                           *LOAD_ENVIRONMENT_SETTINGS.values()},
    }  # fmt: skip
    reads: dict[str, set[str]] = {}
    for path in sorted(p for d in CONSUMER_DIRS for p in (REPO / d).rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel == "simrec/config.py":
            continue
        names = set(tables.get(rel, ()))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and _is_settings(node.value):
                names |= {node.attr} | properties.get(node.attr, set())
        for name in names & set(Settings.model_fields):
            reads.setdefault(name, set()).add(rel)
    return reads


def test_no_setting_is_read_by_nothing() -> None:
    reads = settings_read()
    unread = sorted(set(Settings.model_fields) - set(reads))
    assert not unread, f"settings no code reads: {unread}"


def test_the_scan_sees_the_translation_tables() -> None:
    """The scan counts job_options' tables: without them the Dataflow settings are unread."""
    reads = settings_read()
    assert "simrec/adapters/job_options.py" in reads["dataflow_max_workers"]
    assert reads["weight_browsed"]  # through Settings.weights
    assert job_options.__file__.endswith("job_options.py")


@pytest.mark.parametrize("setting", sorted(EVERY_SETTING))
def test_every_setting_of_the_table_is_a_real_field(setting: str) -> None:
    assert setting in Settings.model_fields


def test_a_failed_local_job_reports_its_own_error_line(tmp_path) -> None:
    """A job that says `error: ...` is reported by that line, not by its log's frames."""
    import sys

    from simrec.adapters.local_launchers import JobFailed, _run

    script = (
        "import sys; print('\\tat org.example.Frame(Frame.java:1)'); "
        "print('error: the similarity job failed: disk full', file=sys.stderr); sys.exit(1)"
    )
    with pytest.raises(JobFailed) as failed:
        _run([sys.executable, "-c", script], tmp_path / "job.log", "job-1", {})
    message = str(failed.value)
    assert "\n" not in message and "Frame.java" not in message
    assert message.startswith(
        "job job-1 failed with exit code 1: the similarity job failed: disk full"
    )
