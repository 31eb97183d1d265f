"""``make build`` (tools/build.py): the artifacts Terraform deploys contain what they must."""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("simrec_build_tool", REPO / "tools" / "build.py")
build_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_tool)

FUNCTIONS = ("export", "cluster", "dataflow_launch")
COMPILED = (".so", ".pyd", ".c", ".o", ".pyc")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("build")
    build_tool.build(out)
    return out


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if "==" in line:
            name, version = line.strip().split("==", 1)
            pins[name.lower().replace("_", "-")] = version
    return pins


def _requirements(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, version = line.split("==", 1)
            out[name.split("[", 1)[0].lower()] = version
    return out


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_archive_holds_main_requirements_and_pure_package(built, name) -> None:
    with zipfile.ZipFile(built / "functions" / f"{name}.zip") as archive:
        names = set(archive.namelist())
        assert archive.read("main.py") == (REPO / "functions" / name / "main.py").read_bytes()
        requirements = archive.read("requirements.txt").decode()
    for needed in ("simrec/__init__.py", "simrec/config.py", "simrec/sql/export_events.sql",
                   "simrec/adapters/gcp/__init__.py", "simrec/stages/decisions.py"):  # fmt: skip
        assert needed in names
    assert not [n for n in names if n.endswith(COMPILED) or "__pycache__" in n]
    pins = _requirements(requirements)
    constraints = _constraints()
    assert {k: constraints[k] for k in pins} == pins  # pinned as in constraints.txt
    client = {"export": "google-cloud-bigquery", "cluster": "google-cloud-dataproc",
              "dataflow_launch": "google-cloud-dataflow-client"}[name]  # fmt: skip
    assert {"functions-framework", "pydantic-settings", "gcsfs", client} <= set(pins)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_archive_imports_on_its_own(built, name, tmp_path) -> None:
    """Unzipped as Cloud Functions does, main.py and its GCP adapters import from the
    archive's own simrec (no compiled kernel needed)."""
    with zipfile.ZipFile(built / "functions" / f"{name}.zip") as archive:
        archive.extractall(tmp_path)
    code = (
        "import sys; sys.path.insert(0, '.'); import main, simrec, simrec.adapters.gcp; "
        f"assert callable(main.{name}); print(simrec.__file__)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).resolve().is_relative_to(tmp_path.resolve())


def test_function_archives_are_reproducible(tmp_path) -> None:
    first = build_tool.build_functions(tmp_path / "a")
    second = build_tool.build_functions(tmp_path / "b")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_spark_job_package(built) -> None:
    spark = built / "spark"
    assert (spark / "dimsum_job.py").read_bytes() == (REPO / "spark/dimsum_job.py").read_bytes()
    with zipfile.ZipFile(spark / "simrec.zip") as archive:
        names = set(archive.namelist())
    assert {"simrec/__init__.py", "simrec/core/dimsum.py", "simrec/core/runs.py"} <= names
    assert not [n for n in names if n.endswith(COMPILED)]


def _load_options() -> list[argparse.Action]:
    """The options beam/load_pipeline.py's PipelineOptions subclass really registers."""
    import load_pipeline
    from apache_beam.options.pipeline_options import PipelineOptions

    subclasses = [
        obj for obj in vars(load_pipeline).values()
        if isinstance(obj, type) and issubclass(obj, PipelineOptions)
        and obj is not PipelineOptions and obj.__module__ == load_pipeline.__name__
    ]  # fmt: skip
    assert subclasses, "no PipelineOptions subclass in load_pipeline"
    parser = argparse.ArgumentParser()
    for cls in subclasses:
        cls._add_argparse_args(parser)
    return [a for a in parser._actions if a.dest != "help"]


def test_flex_template_metadata_lists_every_pipeline_option(built) -> None:
    metadata = json.loads((built / "flex" / "metadata.json").read_text())
    parameters = {p["name"]: p for p in metadata["parameters"]}
    options = _load_options()
    assert set(parameters) == {a.dest for a in options}
    for parameter in parameters.values():
        assert set(parameter) == {"name", "label", "helpText", "isOptional", "regexes"}
        assert parameter["label"] and parameter["helpText"]
        for regex in parameter["regexes"]:
            re.compile(regex)
    assert parameters["similarities"]["isOptional"] is False
    assert parameters["models_root"]["isOptional"] is False
    assert parameters["tenant"]["isOptional"] is True
    samples = {"similarities": "gs://b/similarities/default/2024-03-01-1a2b3c4d",
               "models_root": "gs://models", "tenant": "default",
               "model_version": "2024-03-01-1a2b3c4d", "datastore_project": "my-project"}
    for name, value in samples.items():  # fmt: skip
        assert re.fullmatch(parameters[name]["regexes"][0], value), name
    for action in options:
        if action.choices:
            regex = parameters[action.dest]["regexes"][0]
            assert all(re.fullmatch(regex, c) for c in action.choices)
            assert not re.fullmatch(regex, "bogus")


def test_flex_template_image_context(built) -> None:
    flex = built / "flex"
    dockerfile = (flex / "Dockerfile").read_text()
    assert f"FROM {build_tool.FLEX_BASE_IMAGE}" in dockerfile
    assert "FLEX_TEMPLATE_PYTHON_PY_FILE=${WORKDIR}/load_pipeline.py" in dockerfile
    assert "FLEX_TEMPLATE_PYTHON_SETUP_FILE" in dockerfile
    assert (flex / "load_pipeline.py").read_bytes() == (REPO / "beam/load_pipeline.py").read_bytes()
    assert (flex / "simrec" / "core" / "model_builder.py").is_file()
    assert not [p for p in (flex / "simrec").rglob("*") if p.name.endswith(COMPILED)]
    pins = _requirements((flex / "requirements.txt").read_text())
    assert pins["apache-beam"] == _constraints()["apache-beam"]
    compile((flex / "setup.py").read_text(), "setup.py", "exec")


def test_recommend_image_ships_the_prebuilt_kernel(built) -> None:
    folder = built / "recommend"
    [wheel] = (folder / "wheels").glob("simrec-*.whl")
    assert re.search(r"-cp311-cp311-(manylinux_\d+_\d+_x86_64|linux_x86_64)\.whl$", wheel.name)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert any(re.fullmatch(r"simrec/core/_scoring\.cpython-311-x86_64-linux-gnu\.so", n)
               for n in names)  # fmt: skip
    dockerfile = (folder / "Dockerfile").read_text()
    assert "--no-deps /tmp/wheels/*.whl" in dockerfile
    assert "python -m simrec.serving.server" in dockerfile  # the production server
    assert (folder / "main.py").read_bytes() == (REPO / "functions/recommend/main.py").read_bytes()


def test_build_reports_a_missing_source(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(build_tool, "REPO", tmp_path)
    with pytest.raises(build_tool.BuildError, match="spark/dimsum_job.py is missing"):
        build_tool.build_spark(tmp_path / "out")
