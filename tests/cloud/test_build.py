"""``make build`` (tools/build.py): the artifacts Terraform deploys contain what they must."""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.build  # builds or installs the deploy artifacts: minutes
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


def test_dataproc_main_file_runs_the_packaged_job(built, tmp_path) -> None:
    """Dataproc's main file runs with nothing but the shipped zip on the path (as
    ``--py-files`` puts it), from any folder: the job is the package's."""
    spark = built / "spark"
    env = {**os.environ, "PYTHONPATH": str(spark / "simrec.zip")}
    done = subprocess.run([sys.executable, str(spark / "dimsum_job.py"), "--help"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--export-manifest" in done.stdout and "--plan" in done.stdout
    with zipfile.ZipFile(spark / "simrec.zip") as archive:
        assert "simrec/jobs/spark_similarity.py" in archive.namelist()


def test_flex_template_main_file_runs_the_packaged_pipeline(built, tmp_path) -> None:
    """The template's main file, with only the template folder on the path (its
    PYTHONPATH), reaches the package's pipeline: bad input is its one-line error."""
    flex = built / "flex"
    env = {**os.environ, "PYTHONPATH": str(flex)}
    done = subprocess.run([sys.executable, str(flex / "load_pipeline.py")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 2
    assert "load_pipeline: error: --similarities is required" in done.stderr
    assert (flex / build_tool.LOAD_MODULE).is_file()


def _load_options() -> list[argparse.Action]:
    """The options the load pipeline's PipelineOptions subclass really registers."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from simrec.jobs import beam_load

    subclasses = [
        obj for obj in vars(beam_load).values()
        if isinstance(obj, type) and issubclass(obj, PipelineOptions)
        and obj is not PipelineOptions and obj.__module__ == beam_load.__name__
    ]  # fmt: skip
    assert subclasses, "no PipelineOptions subclass in simrec.jobs.beam_load"
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


def test_recommend_image_ships_the_prebuilt_kernel(built, monkeypatch) -> None:
    """The wheel with the kernel, installed without dependencies, and the production
    server (simrec.serving.server, not functions-framework) as the image's command."""
    from simrec.serving import server

    folder = built / "recommend"
    [wheel] = (folder / "wheels").glob("simrec-*.whl")
    assert wheel.name.endswith(f"-cp311-cp311-{build_tool.IMAGE_PLATFORM}.whl"), wheel.name
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert any(re.fullmatch(r"simrec/core/_scoring\.cpython-311-x86_64-linux-gnu\.so", n)
               for n in names)  # fmt: skip
    # The /ui page's files (package data; .html is otherwise left out of the build).
    ui = {f"simrec/serving/ui/static/{f}" for f in ("index.html", "app.js", "style.css")}
    assert ui <= set(names), ui - set(names)
    dockerfile = (folder / "Dockerfile").read_text()
    assert "--no-deps /tmp/wheels/*.whl" in dockerfile
    [cmd] = [line for line in dockerfile.splitlines() if line.startswith("CMD ")]
    exec_, python, dash_m, target, *flags = cmd.removeprefix("CMD ").split()
    assert (exec_, python, dash_m, target) == ("exec", "python", "-m", "simrec.serving.server")
    assert "functions-framework" not in dockerfile
    # Its flags are the server's own, and select the production server on Cloud Run's $PORT.
    served: dict = {}
    monkeypatch.setattr(server, "serve", lambda settings, **kw: served.update(kw))
    monkeypatch.setenv("PORT", "9999")
    monkeypatch.delenv("WORKERS", raising=False)
    assert server.main([f.replace("$PORT", "9999") for f in flags]) == 0
    assert served == {"host": "0.0.0.0", "port": 9999, "workers": 1,
                      "server": server.PRODUCTION_SERVER}  # fmt: skip
    assert f"FROM {build_tool.RUN_BASE_IMAGE}\n" in dockerfile
    assert (folder / "main.py").read_bytes() == (REPO / "functions/recommend/main.py").read_bytes()


def test_build_reports_a_missing_source(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(build_tool, "REPO", tmp_path)
    with pytest.raises(build_tool.BuildError, match="spark/dimsum_job.py is missing"):
        build_tool.build_spark(tmp_path / "out")


# --- the wheel against the image's interpreter ------------------------------------------------
def _image_tags() -> set[str]:
    """Every tag the image's pip accepts: packaging's order for CPython 3.11 with the
    platforms packaging derives from a glibc (manylinux_<major>_<minor> from the running
    glibc down, the legacy manylinux aliases, then linux_<arch>), for the IMAGE's glibc."""
    from packaging import tags

    major, minor = build_tool.IMAGE_GLIBC
    arch = build_tool.IMAGE_ARCH
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    platforms = []
    for glibc_minor in range(minor, 4, -1):
        platforms.append(f"manylinux_{major}_{glibc_minor}_{arch}")
        if glibc_minor in legacy:
            platforms.append(f"{legacy[glibc_minor]}_{arch}")
    platforms.append(f"linux_{arch}")
    version = build_tool.IMAGE_PYTHON
    abi = f"cp{version[0]}{version[1]}"
    found = [*tags.cpython_tags(version, [abi], platforms),
             *tags.compatible_tags(version, abi, platforms)]  # fmt: skip
    return {str(t) for t in found}


def _glibc_needed(data: bytes) -> tuple[int, int]:
    """The newest GLIBC_x.y symbol version a shared object requires."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.gnuversions import GNUVerNeedSection

    newest = (0, 0)
    elf = ELFFile(io.BytesIO(data))
    for section in elf.iter_sections():
        if isinstance(section, GNUVerNeedSection):
            for _, auxiliaries in section.iter_versions():
                for aux in auxiliaries:
                    match = re.fullmatch(r"GLIBC_(\d+)\.(\d+)(?:\.\d+)?", aux.name)
                    if match:
                        newest = max(newest, (int(match.group(1)), int(match.group(2))))
    return newest


def test_recommend_wheel_is_accepted_by_the_image_interpreter(built) -> None:
    """The wheel's tags are among those CPython 3.11 on the image's glibc accepts, and its
    kernel needs no symbol of a newer glibc (a linux_x86_64 tag alone would promise nothing)."""
    from packaging.utils import parse_wheel_filename

    [wheel] = (built / "recommend" / "wheels").glob("simrec-*.whl")
    _, _, _, wheel_tags = parse_wheel_filename(wheel.name)
    assert {str(t) for t in wheel_tags} <= _image_tags(), wheel.name
    assert build_tool.IMAGE_GLIBC == build_tool.DEBIAN_GLIBC["bookworm"] == (2, 36)
    with zipfile.ZipFile(wheel) as archive:
        objects = [n for n in archive.namelist() if n.endswith(".so")]
        assert objects
        for name in objects:
            assert name.endswith(".cpython-311-x86_64-linux-gnu.so"), name
            assert _glibc_needed(archive.read(name)) <= build_tool.IMAGE_GLIBC, name


def test_the_image_base_is_pinned_to_a_debian_release() -> None:
    """A floating tag (python:3.11-slim) moves to the next Debian release and its glibc."""
    release = build_tool.RUN_BASE_IMAGE.rsplit("-", 1)[1]
    assert f"python:3.11-slim-{release}" == build_tool.RUN_BASE_IMAGE
    assert build_tool.DEBIAN_GLIBC[release] == build_tool.IMAGE_GLIBC
    assert build_tool.IMAGE_PLATFORM == "manylinux_2_36_x86_64"


def test_the_wheel_is_refused_from_another_interpreter(monkeypatch) -> None:
    monkeypatch.setattr(build_tool, "IMAGE_PYTHON", (3, 12))
    with pytest.raises(build_tool.BuildError, match=r"CPython 3\.12 on x86_64"):
        build_tool.build_wheel(Path("/nonexistent"))
