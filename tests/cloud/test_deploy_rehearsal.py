"""Deploy rehearsal: what ``make deploy`` ships, installed and run the way Google Cloud does.

- ``make build`` writes the artifacts (into a temporary BUILD_DIR).
- Each function's archive is unpacked into a fresh virtual environment holding only what
  its own requirements.txt installs (pip, with constraints.txt), as Cloud Build does for a
  Cloud Functions source; the handler is imported and invoked through functions-framework
  with the CloudEvents Eventarc delivers (binary content mode), on the gcp backend against
  the GCS emulator, the recording BigQuery fake and the gRPC stub of Dataproc/Dataflow.
- The recommend image's context holds every file its Dockerfile copies; its requirements
  and wheel install into a fresh environment (pip checks the wheel's tags against this
  interpreter, the image's CPython 3.11 on glibc 2.36) and the service answers over HTTP.
- The Flex Template's requirements install in a clean environment, its pipeline imports and
  its setup.py packages the pipeline code (what the launcher stages for the workers).
The environments are built in parallel, once per run.
"""

from __future__ import annotations

import ast
import json
import os
import shlex
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cloudevents.http import CloudEvent

from simrec.config import Settings
from simrec.core import layout
from simrec.stages.cloudevents import STORAGE_FINALIZED, make_pubsub_event
from simrec.stages.load import job_name
from tests.cloud.wire import BUCKET, EVENTS_TABLE, PROJECT, gcp_settings_env, refresh_gcsfs

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.build  # builds or installs the deploy artifacts: minutes
FUNCTIONS = ("export", "cluster", "dataflow_launch")
#: The GCP adapter each function's stage builds (its client libraries are imported lazily).
ADAPTERS = {"export": "bigquery", "cluster": "dataproc", "dataflow_launch": "dataflow"}
PIP = ["-m", "pip", "install", "-q", "--no-compile", "--disable-pip-version-check"]

INVOKE = """
import importlib, json, sys
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent
from functions_framework import create_app

spec = json.loads(sys.argv[1])
client = create_app(target=spec["target"], source="main.py",
                    signature_type="cloudevent").test_client()
codes = []
for event in spec["events"]:
    headers, body = to_binary(CloudEvent(event["attributes"], event["data"]))
    codes.append(client.post("/", headers=headers, data=body).status_code)
for module, names in spec["imports"]:
    imported = importlib.import_module(module)
    for name in names:
        getattr(imported, name) if hasattr(imported, name) else importlib.import_module(
            f"{module}.{name}")
import simrec
print(json.dumps({"codes": codes, "simrec": simrec.__file__, "prefix": sys.prefix}))
"""


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    assert done.returncode == 0, f"{shlex.join(cmd)}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done


def _venv(folder: Path, *installs: list[str]) -> Path:
    """A fresh virtual environment (no system site packages) with ``installs`` run by its
    pip, each with the repository's constraints."""
    _run([sys.executable, "-m", "venv", str(folder)])
    python = folder / "bin" / "python"
    for args in installs:
        _run([str(python), *PIP, "-c", str(REPO / "constraints.txt"), *args])
    return python


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory) -> dict[str, Path]:
    """``make build`` into a temporary BUILD_DIR, then one fresh environment per artifact."""
    root = tmp_path_factory.mktemp("rehearsal")
    build = root / "build"
    # -o: the project venv is what runs this test; make must not try to reinstall it.
    _run(["make", "-o", ".venv/.installed", "build", f"BUILD_DIR={build}", f"PY={sys.executable}"],
         cwd=REPO)  # fmt: skip
    sources = {}
    for name in FUNCTIONS:
        sources[name] = root / "src" / name
        with zipfile.ZipFile(build / "functions" / f"{name}.zip") as archive:
            archive.extractall(sources[name])
    [wheel] = (build / "recommend" / "wheels").glob("simrec-*.whl")
    jobs = {
        "flex": [["-r", str(build / "flex" / "requirements.txt")]],
        "recommend": [["-r", str(build / "recommend" / "requirements.txt")],
                      ["--no-deps", str(wheel)]],  # fmt: skip
        **{name: [["-r", str(sources[name] / "requirements.txt")]] for name in FUNCTIONS},
    }
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {k: pool.submit(_venv, root / "venv" / k, *v) for k, v in jobs.items()}
        pythons = {k: f.result() for k, f in futures.items()}
    return {"build": build, **{f"src:{k}": v for k, v in sources.items()},
            **{f"python:{k}": v for k, v in pythons.items()}}  # fmt: skip


def _lazy_imports(adapter: str) -> list[tuple[str, list[str]]]:
    """``from X import a, b`` statements of simrec/adapters/gcp/<adapter>.py, at any depth
    (the client libraries are imported inside the functions that use them)."""
    tree = ast.parse((REPO / "simrec" / "adapters" / "gcp" / f"{adapter}.py").read_text())
    found = [
        (n.module, [a.name for a in n.names]) for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("google")
    ]  # fmt: skip
    assert found, adapter
    return [(f"simrec.adapters.gcp.{adapter}", []), *found]


def _gcp_env(fake_bigquery, gcs, grpc_stub) -> dict[str, str]:
    """The deployment's settings on the gcp backend, pointed at the local stand-ins."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        **gcp_settings_env(fake_bigquery.url, grpc_stub.endpoint),
        "SIMREC_MODELS_URI": f"gs://{BUCKET}",
        # The emulator without credentials, for google-cloud-storage and gcsfs (fsspec
        # reads FSSPEC_<PROTOCOL>_<ARG>).
        "STORAGE_EMULATOR_HOST": gcs.url,
        "FSSPEC_GS_TOKEN": "anon",
        "FSSPEC_GS_PROJECT": PROJECT,
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
    }


def _event(event: CloudEvent) -> dict:
    return {"attributes": dict(event.get_attributes()), "data": event.get_data()}


def _storage_event(gcs, name: str, content: bytes) -> dict:
    """Upload to the emulator; its object resource is the event data (as Eventarc sends)."""
    blob = gcs.client().bucket(BUCKET).blob(name)
    blob.upload_from_string(content)
    blob.reload()
    return {"attributes": {"type": STORAGE_FINALIZED, "specversion": "1.0",
                           "source": f"//storage.googleapis.com/projects/_/buckets/{BUCKET}",
                           "subject": f"objects/{name}", "id": str(blob.generation)},
            "data": dict(blob._properties)}  # fmt: skip


def _invoke(rehearsal, name: str, env: dict[str, str], events: list[dict]) -> tuple[dict, list]:
    spec = {"target": name, "events": events, "imports": _lazy_imports(ADAPTERS[name])}
    done = _run([str(rehearsal[f"python:{name}"]), "-c", INVOKE, json.dumps(spec)],
                cwd=rehearsal[f"src:{name}"], env=env, timeout=300)  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    decisions = [json.loads(line) for line in done.stderr.splitlines()
                 if line.startswith("{") and '"action"' in line]  # fmt: skip
    # The handler ran from the archive's own simrec, in the fresh environment.
    assert Path(result["simrec"]).is_relative_to(rehearsal[f"src:{name}"])
    assert Path(result["prefix"]) == rehearsal[f"python:{name}"].parents[1]
    return result, decisions


def _params():
    import datetime as dt

    from simrec.stages.requests import run_params

    date = dt.date(2024, 3, 1)
    return date, run_params({"date": date.isoformat()}, Settings(window_days=3), date)


def test_each_environment_holds_only_its_own_requirements(rehearsal) -> None:
    for name in FUNCTIONS:
        python = rehearsal[f"python:{name}"]
        cfg = (python.parents[1] / "pyvenv.cfg").read_text()
        assert "include-system-site-packages = false" in cfg
        done = _run([str(python), "-m", "pip", "list", "--format=json"])
        installed = {p["name"].lower().replace("_", "-") for p in json.loads(done.stdout)}
        assert "simrec" not in installed and "pyspark" not in installed
        assert "apache-beam" not in installed and "duckdb" not in installed


def test_export_function_runs_from_its_archive(rehearsal, fake_bigquery, gcs, grpc_stub) -> None:
    date, params = _params()
    fake_bigquery.tables[EVENTS_TABLE] = ["user_id", "sku", "action", "ts"]
    fake_bigquery.counts = [(params.days()[0].isoformat(), None, 4), (None, "empty_sku", 1)]
    # The fake executes nothing: stand in for its EXPORT DATA of the one day with rows (the
    # export stage checks that every day its manifest lists exists before writing it).
    day = layout.export_day(f"gs://{BUCKET}", "default", params.days()[0])
    part = layout.join(day, "part-000000000000.parquet").removeprefix(f"gs://{BUCKET}/")
    gcs.client().bucket(BUCKET).blob(part).upload_from_string(b"PAR1")
    nightly = _event(make_pubsub_event(PROJECT, "nightly", {"date": date.isoformat()}))
    result, decisions = _invoke(rehearsal, "export", _gcp_env(fake_bigquery, gcs, grpc_stub),
                                [nightly, nightly])  # fmt: skip
    assert result["codes"] == [200, 200], decisions
    # The redelivery finds the export complete: it resumes the run (re-emits the manifest).
    assert [d["action"] for d in decisions] == ["exported", "resumed"]
    assert "re-emitted the export manifest" in decisions[1]["reason"]
    assert len(fake_bigquery.jobs) == 1
    refresh_gcsfs()
    assert gcs.client().bucket(BUCKET).blob(
        layout.export_manifest(f"gs://{BUCKET}", "default", params.run_id)
        .removeprefix(f"gs://{BUCKET}/")).exists()  # fmt: skip


def test_cluster_function_runs_from_its_archive(rehearsal, fake_bigquery, gcs, grpc_stub) -> None:
    _, params = _params()
    manifest = {"stage": "export", "run_id": params.run_id, "tenant": "default",
                "params": params.to_json()}  # fmt: skip
    event = _storage_event(gcs, f"exports/default/runs/{params.run_id}/_MANIFEST.json",
                           json.dumps(manifest).encode())  # fmt: skip
    result, decisions = _invoke(rehearsal, "cluster", _gcp_env(fake_bigquery, gcs, grpc_stub),
                                [event])  # fmt: skip
    assert result["codes"] == [200]
    assert [d["action"] for d in decisions] == ["launched"]
    assert grpc_stub.workflows_started == 1


def test_dataflow_launch_function_runs_from_its_archive(
    rehearsal, fake_bigquery, gcs, grpc_stub
) -> None:
    _, params = _params()
    manifest = {"stage": "similarities", "run_id": params.run_id, "tenant": "default",
                "params": params.to_json()}  # fmt: skip
    event = _storage_event(gcs, f"similarities/default/{params.run_id}/_MANIFEST.json",
                           json.dumps(manifest).encode())  # fmt: skip
    env = _gcp_env(fake_bigquery, gcs, grpc_stub)
    result, decisions = _invoke(rehearsal, "dataflow_launch", env, [event])
    assert result["codes"] == [200]
    assert [d["action"] for d in decisions] == ["launched"]
    assert grpc_stub.launch_requests[0].launch_parameter.job_name == job_name(params)


def _copied(dockerfile: Path) -> list[str]:
    """Sources of the Dockerfile's COPY lines (relative to its build context)."""
    sources = []
    for line in dockerfile.read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "COPY":
            sources += [p for p in parts[1:-1] if not p.startswith("--")]
    assert sources, dockerfile
    return sources


@pytest.mark.parametrize("image", ["recommend", "flex"])
def test_each_image_context_holds_what_its_dockerfile_copies(rehearsal, image) -> None:
    context = rehearsal["build"] / image
    for source in _copied(context / "Dockerfile"):
        assert (context / source).exists(), f"build/{image}/{source} is missing from the context"


def test_recommend_image_installs_and_serves(rehearsal, tmp_path) -> None:
    probe = """
import json, simrec.core._scoring
from functions_framework import create_app
client = create_app(target="recommend", source="main.py", signature_type="http").test_client()
print(json.dumps({p: client.get(p).status_code for p in ("/healthz", "/openapi.json")}))
"""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "SIMREC_BACKEND": "local",
           "SIMREC_MODELS_URI": str(tmp_path / "models")}  # fmt: skip
    done = _run([str(rehearsal["python:recommend"]), "-c", probe],
                cwd=rehearsal["build"] / "recommend", env=env, timeout=120)  # fmt: skip
    codes = json.loads(done.stdout.strip().splitlines()[-1])
    # No model published yet: not ready (503), but the service and its kernel run.
    assert codes == {"/healthz": 503, "/openapi.json": 200}


def test_flex_template_requirements_install_and_the_pipeline_imports(rehearsal, tmp_path) -> None:
    python = str(rehearsal["python:flex"])
    flex = rehearsal["build"] / "flex"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(flex)}
    _run([python, "-m", "pip", "check"])
    _run([python, "-c", "import load_pipeline, simrec.core.model_builder"], cwd=tmp_path, env=env)
    _run([python, "setup.py", "-q", "sdist", "-d", str(tmp_path / "dist")], cwd=flex, env=env)
    assert list((tmp_path / "dist").glob("simrec_load-0.1.0.tar.gz")) or list(
        (tmp_path / "dist").glob("simrec-load-0.1.0.tar.gz")
    )
