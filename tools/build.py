"""``make build``: everything Terraform deploys, under one folder (default ``build/``).

```
build/functions/{export,cluster,dataflow_launch}.zip main.py + requirements.txt + simrec/
build/spark/dimsum_job.py + simrec.zip                  Dataproc main file + --py-files
build/flex/                                             Flex Template image context:
    Dockerfile, metadata.json, requirements.txt, setup.py, load_pipeline.py, simrec/
build/recommend/                                        Cloud Run image context:
    Dockerfile, main.py, requirements.txt, simrec-*.whl (Cython kernel prebuilt)
```

Archives hold no compiled objects (Cloud Functions installs requirements.txt and runs the
pure-Python package) and are reproducible: sorted entries with fixed timestamps, so an
unchanged source gives a byte-identical zip and Terraform redeploys nothing. Only the
recommend wheel is compiled, here, once: nothing compiles at deploy time.

Usage: ``python tools/build.py [--out build] [--skip-wheel]``
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PIPELINE_FUNCTIONS = ("export", "cluster", "dataflow_launch")
EXCLUDED_SUFFIXES = (".so", ".pyd", ".c", ".o", ".pyc", ".pyx", ".html")
EXCLUDED_DIRS = ("__pycache__",)
UI_STATIC = Path("simrec/serving/ui/static")  # the /ui page's files ship, .html included


def _shipped_html(path: Path, root: Path) -> bool:
    """A page of the /ui (not a Cython annotation, the other .html files under simrec/)."""
    return path.relative_to(root).parent == UI_STATIC
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
FLEX_BASE_IMAGE = "gcr.io/dataflow-templates-base/python311-template-launcher-base"
#: The recommend image's base, pinned to a Debian release: the floating ``python:3.11-slim``
#: follows Debian's stable release, so its glibc would change under a prebuilt wheel.
RUN_BASE_IMAGE = "python:3.11-slim-bookworm"
#: glibc of each Debian release (Debian 12 "bookworm" ships glibc 2.36, libc6 2.36-9+deb12u*;
#: Debian 13 "trixie" 2.41).
DEBIAN_GLIBC = {"bookworm": (2, 36), "trixie": (2, 41)}
#: What the image's interpreter accepts: CPython 3.11 on x86_64 with the release's glibc.
IMAGE_PYTHON = (3, 11)
IMAGE_ARCH = "x86_64"
IMAGE_GLIBC = DEBIAN_GLIBC[RUN_BASE_IMAGE.rsplit("-", 1)[1]]
#: The one platform tag the recommend wheel is repaired to (auditwheel refuses if the
#: compiled kernel needs symbols of a newer glibc).
IMAGE_PLATFORM = f"manylinux_{IMAGE_GLIBC[0]}_{IMAGE_GLIBC[1]}_{IMAGE_ARCH}"
#: Exactly what the load pipeline's code imports (tests/unit/test_requirements.py).
FLEX_REQUIREMENTS = (
    "apache-beam[gcp]", "numpy", "pyarrow", "fsspec", "gcsfs", "google-cloud-storage",
    "google-api-core", "google-auth", "pandas", "scipy",
)  # fmt: skip
#: Validation of each load pipeline option in the Flex Template metadata.
FLEX_REGEXES = {
    "similarities": r"^gs://[^/]+/.+$",
    "models_root": r"^gs://[^/]+(/.*)?$",
    "tenant": r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$",
    "model_version": r"^[A-Za-z0-9._-]+$",
    "datastore_project": r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$",
    "datastore_namespace": r"^[A-Za-z0-9._-]{0,100}$",
}
REQUIRED_OPTIONS = ("similarities", "models_root")


#: The entry points the deployments name (Dataproc's main file, the Flex Template's
#: ``FLEX_TEMPLATE_PYTHON_PY_FILE``): each only calls ``main()`` of a job module of the
#: package, which ships with it (``simrec.zip``, the template's ``simrec/``).
SPARK_ENTRY = "spark/dimsum_job.py"
LOAD_ENTRY = "beam/load_pipeline.py"
#: Where the load pipeline's ``PipelineOptions`` (the template's parameters) are declared.
LOAD_MODULE = "simrec/jobs/beam_load.py"


class BuildError(RuntimeError):
    """A source the build needs is missing or malformed."""


# --- helpers ----------------------------------------------------------------------------
def package_files(root: Path = REPO) -> Iterator[tuple[Path, str]]:
    """``(file, archive name)`` of the simrec package, sources and data, sorted."""
    base = root / "simrec"
    for path in sorted(base.rglob("*")):
        if not path.is_file() or any(part in EXCLUDED_DIRS for part in path.parts):
            continue
        if path.name.startswith(".") or (
            path.name.endswith(EXCLUDED_SUFFIXES) and not _shipped_html(path, root)
        ):
            continue
        yield path, path.relative_to(root).as_posix()


def write_zip(target: Path, entries: list[tuple[Path | bytes, str]]) -> Path:
    """A reproducible zip: entries sorted by name, fixed timestamps and permissions."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for source, name in sorted(entries, key=lambda e: e[1]):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = source if isinstance(source, bytes) else source.read_bytes()
            archive.writestr(info, data)
    return target


def copy_package(dest: Path) -> None:
    for path, name in package_files():
        out = dest / name
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out)


def pinned(names: tuple[str, ...]) -> list[str]:
    """``name==version`` from constraints.txt (extras kept), in the given order."""
    versions = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.strip().split("==", 1)
            versions[name.lower().replace("_", "-")] = version
    out = []
    for requirement in names:
        bare = requirement.split("[", 1)[0].lower()
        if bare not in versions:
            raise BuildError(f"{bare} is not pinned in constraints.txt")
        out.append(f"{requirement}=={versions[bare]}")
    return out


# --- functions ----------------------------------------------------------------------------
def build_functions(out: Path) -> list[Path]:
    built = []
    for name in PIPELINE_FUNCTIONS:
        folder = REPO / "functions" / name
        for required in ("main.py", "requirements.txt"):
            if not (folder / required).is_file():
                raise BuildError(f"functions/{name}/{required} is missing")
        entries: list[tuple[Path | bytes, str]] = [
            (folder / "main.py", "main.py"),
            (folder / "requirements.txt", "requirements.txt"),
            *package_files(),
        ]
        built.append(write_zip(out / "functions" / f"{name}.zip", entries))
    return built


# --- Spark job ----------------------------------------------------------------------------
def _source(relative: str) -> Path:
    path = REPO / relative
    if not path.is_file():
        raise BuildError(f"{relative} is missing")
    return path


def build_spark(out: Path) -> list[Path]:
    job = _source(SPARK_ENTRY)
    folder = out / "spark"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(job, folder / job.name)
    return [folder / job.name, write_zip(folder / "simrec.zip", list(package_files()))]


# --- Flex Template --------------------------------------------------------------------------
def pipeline_options(source: Path) -> list[dict]:
    """The options a ``PipelineOptions`` subclass of ``source`` adds, read from its
    ``parser.add_argument`` calls (without importing Beam)."""
    tree = ast.parse(source.read_text())
    options = []
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        if not any(getattr(b, "id", getattr(b, "attr", "")) == "PipelineOptions"
                   for b in cls.bases):  # fmt: skip
            continue
        for call in ast.walk(cls):
            if not isinstance(call, ast.Call) or getattr(call.func, "attr", "") != "add_argument":
                continue
            flag = ast.literal_eval(call.args[0])
            kwargs = {k.arg: k.value for k in call.keywords if k.arg}
            options.append({
                "name": flag.lstrip("-"),
                "help": ast.literal_eval(kwargs["help"]) if "help" in kwargs else "",
                "choices": ast.literal_eval(kwargs["choices"]) if "choices" in kwargs else None,
                "default": ast.literal_eval(kwargs["default"]) if "default" in kwargs else None,
            })  # fmt: skip
    if not options:
        raise BuildError(f"no PipelineOptions subclass with options in {source}")
    return options


def flex_metadata(source: Path) -> dict:
    parameters = []
    for option in pipeline_options(source):
        name = option["name"]
        help_text = option["help"] or name
        if option["default"] is not None:
            help_text += f" (default: {option['default']})"
        if option["choices"]:
            regex = "^(" + "|".join(option["choices"]) + ")$"
        else:
            regex = FLEX_REGEXES.get(name, r"^.+$")
        parameters.append({
            "name": name,
            "label": name.replace("_", " ").capitalize(),
            "helpText": help_text[0].upper() + help_text[1:],
            "isOptional": name not in REQUIRED_OPTIONS,
            "regexes": [regex],
        })  # fmt: skip
    return {
        "name": "simrec-load",
        "description": "simrec load: neighbor lists -> Cloud Datastore and the serving "
        "model snapshot (models/<tenant>/<version>, then LATEST).",
        "parameters": parameters,
        "sdkInfo": {"language": "PYTHON"},
    }


FLEX_DOCKERFILE = f"""\
# Dataflow Flex Template of the simrec load pipeline (built by tools/build.py).
FROM {FLEX_BASE_IMAGE}

ARG WORKDIR=/template
WORKDIR ${{WORKDIR}}
COPY requirements.txt setup.py load_pipeline.py ./
COPY simrec ./simrec

# The launcher runs load_pipeline.py (main() of simrec.jobs.beam_load); setup.py ships
# the simrec package to the workers.
ENV FLEX_TEMPLATE_PYTHON_PY_FILE=${{WORKDIR}}/load_pipeline.py
ENV FLEX_TEMPLATE_PYTHON_REQUIREMENTS_FILE=${{WORKDIR}}/requirements.txt
ENV FLEX_TEMPLATE_PYTHON_SETUP_FILE=${{WORKDIR}}/setup.py
ENV PYTHONPATH=${{WORKDIR}}
ENV PIP_NO_DEPS=False

RUN pip install --no-cache-dir -r requirements.txt
"""


def build_flex(out: Path) -> list[Path]:
    pipeline = _source(LOAD_ENTRY)
    options = _source(LOAD_MODULE)
    folder = out / "flex"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copyfile(pipeline, folder / pipeline.name)
    copy_package(folder)
    requirements = pinned(FLEX_REQUIREMENTS)
    (folder / "requirements.txt").write_text(
        "# Load pipeline runtime (launcher and workers); versions from constraints.txt.\n"
        + "\n".join(requirements) + "\n"
    )  # fmt: skip
    worker_requirements = [r for r in requirements if not r.startswith("apache-beam")]
    (folder / "setup.py").write_text(
        '"""Ships the pure-Python simrec package to the Dataflow workers."""\n\n'
        "from setuptools import find_packages, setup\n\n"
        "setup(\n"
        '    name="simrec-load",\n'
        '    version="0.1.0",\n'
        '    packages=find_packages(include=["simrec", "simrec.*"]),\n'
        '    package_data={"simrec": ["**/*.sql", "**/*.json"]},\n'
        f"    install_requires={worker_requirements!r},\n"
        ")\n"
    )
    (folder / "Dockerfile").write_text(FLEX_DOCKERFILE)
    metadata = folder / "metadata.json"
    metadata.write_text(json.dumps(flex_metadata(options), indent=2) + "\n")
    return [folder / "Dockerfile", metadata]


# --- recommend (Cloud Run image with the prebuilt kernel) -----------------------------------
RECOMMEND_DOCKERFILE = f"""\
# The recommend service on Cloud Run (built by tools/build.py). The simrec wheel carries
# the compiled Cython kernel, so nothing compiles in this image or at deploy time.
FROM {RUN_BASE_IMAGE}

WORKDIR /app
COPY requirements.txt main.py ./
COPY wheels/ /tmp/wheels/
RUN pip install --no-cache-dir -r requirements.txt \\
    && pip install --no-cache-dir --no-deps /tmp/wheels/*.whl \\
    && rm -rf /tmp/wheels

ENV PORT=8080
# The production server of simrec/serving/server.py (uvicorn event loop; chosen by
# bench/http_load.py), the same one `simrec serve` runs. WORKERS: one per vCPU.
CMD exec python -m simrec.serving.server --host=0.0.0.0 --port=$PORT
"""


def check_wheel_interpreter() -> None:
    """The wheel is compiled by this interpreter: it must be the image's (CPython 3.11 on
    x86_64), or the image refuses the wheel (wrong cp tag) or cannot load the kernel."""
    have = (sys.implementation.name, sys.version_info[:2], platform.machine())
    want = ("cpython", IMAGE_PYTHON, IMAGE_ARCH)
    if have != want:
        raise BuildError(
            f"the recommend wheel must be compiled by the image's interpreter (CPython "
            f"{'.'.join(map(str, IMAGE_PYTHON))} on {IMAGE_ARCH}, {RUN_BASE_IMAGE}); this is "
            f"{have[0]} {'.'.join(map(str, have[1]))} on {have[2]}: run make build from a "
            f"Python {'.'.join(map(str, IMAGE_PYTHON))} venv (PYTHON=python3.11 make clean build)"
        )


def build_wheel(dest: Path) -> Path:
    """``pip wheel`` of a clean copy of the project (no in-place objects, no shared
    ``build/`` folder) by the image's Python, then ``auditwheel repair`` to exactly the
    image's platform tag (``IMAGE_PLATFORM``): a kernel that needs a newer glibc than the
    image's fails here, not at deploy."""
    check_wheel_interpreter()
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="simrec-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("pyproject.toml", "setup.py", "README.md"):
            shutil.copyfile(REPO / name, src / name)
        for path in sorted((REPO / "simrec").rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and (
                not path.name.endswith((".so", ".c", ".pyc", ".o", ".html"))
                or _shipped_html(path, REPO)
            ):
                out = src / path.relative_to(REPO)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, out)
        raw = Path(tmp) / "raw"
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
             "--disable-pip-version-check", "-q", "-w", str(raw), str(src)],
            check=True,
        )  # fmt: skip
        [wheel] = raw.glob("simrec-*.whl")
        auditwheel = shutil.which("auditwheel", path=f"{Path(sys.executable).parent}:"
                                  f"{os.environ.get('PATH', '')}")  # fmt: skip
        if not auditwheel:
            raise BuildError("auditwheel is not installed (pip install -e '.[build]'): without it "
                             "the wheel's tag says nothing about the glibc it needs")  # fmt: skip
        repaired = Path(tmp) / "repaired"
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        proc = subprocess.run(
            [auditwheel, "repair", "--plat", IMAGE_PLATFORM, "--only-plat", "-w", str(repaired),
             str(wheel)],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise BuildError(f"auditwheel repair to {IMAGE_PLATFORM} ({RUN_BASE_IMAGE}) "
                             f"failed:\n{proc.stderr[-2000:]}")  # fmt: skip
        [wheel] = repaired.glob("simrec-*.whl")
        for old in dest.glob("simrec-*.whl"):
            old.unlink()
        return Path(shutil.copy2(wheel, dest / wheel.name))


def build_recommend(out: Path, skip_wheel: bool = False) -> list[Path]:
    folder = out / "recommend"
    folder.mkdir(parents=True, exist_ok=True)
    source = REPO / "functions" / "recommend"
    for name in ("main.py", "requirements.txt"):
        shutil.copyfile(source / name, folder / name)
    (folder / "Dockerfile").write_text(RECOMMEND_DOCKERFILE)
    built = [folder / "Dockerfile"]
    if not skip_wheel:
        built.append(build_wheel(folder / "wheels"))
    return built


def build(out: Path, skip_wheel: bool = False) -> list[Path]:
    out = out if out.is_absolute() else REPO / out
    return [
        *build_functions(out),
        *build_spark(out),
        *build_flex(out),
        *build_recommend(out, skip_wheel),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", default="build", help="output folder (default: build)")
    parser.add_argument("--skip-wheel", action="store_true", help="do not compile the wheel")
    args = parser.parse_args(argv)
    try:
        for path in build(Path(args.out), args.skip_wheel):
            print(path)
    except BuildError as exc:
        print(f"build: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
