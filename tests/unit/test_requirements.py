"""Dependencies: each function's requirements.txt lists exactly what its code imports, and
the serving core installs and imports without the pipeline's extras.

A function's imports are measured, not listed by hand: a subprocess imports its main.py
(from its own folder, as Cloud Functions does) and the modules its Google Cloud backend
builds, then every third-party module any loaded simrec module imports, at module level,
inside a function or through ``simrec.extras.require`` (the GCP clients are imported on
first use). The distributions of
those modules must be the requirements, no more, no fewer (what those libraries import
in turn is theirs to declare: pip installs it).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from simrec.stages import routes

REPO = Path(__file__).resolve().parents[2]
FUNCTIONS = (*routes.FUNCTIONS, "recommend")
#: What each function loads on Google Cloud besides main.py: the pipeline functions
#: build the GCP adapters (simrec.adapters.build_adapters with backend "gcp"); the
#: recommend image runs simrec.serving.server, whose models may be in Datastore.
CLOUD_MODULES = {
    **{name: ("simrec.adapters.gcp",) for name in routes.FUNCTIONS},
    "recommend": ("simrec.serving.server", "simrec.serving.datastore_backend"),
}
#: Every function reads gs:// objects through fsspec, which loads gcsfs by protocol.
PROTOCOLS = ("gs",)

PROBE = textwrap.dedent("""
    import ast, importlib, json, sys
    from importlib import metadata
    sys.path[:0] = [".", {repo!r}]
    import fsspec
    importlib.import_module({entry!r})
    for name in {modules!r}:
        importlib.import_module(name)
    for protocol in {protocols!r}:
        fsspec.get_filesystem_class(protocol)

    def first_party(name):
        return name == {entry!r} or name.split(".")[0] == "simrec"

    def imported_by(module):
        tree = ast.parse(open(module.__file__).read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                yield from (alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield node.module
                yield from (f"{{node.module}}.{{alias.name}}" for alias in node.names)
            elif (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "require"
                  and node.args and isinstance(node.args[0], ast.Constant)):
                yield node.args[0].value  # simrec.extras.require("module", "extra")

    direct = set()
    for name in sorted(n for n in list(sys.modules) if first_party(n)):
        file = getattr(sys.modules[name], "__file__", None) or ""
        if not file.endswith(".py"):
            continue
        for target in imported_by(sys.modules[name]):
            top = target.split(".")[0]
            if first_party(target) or top in sys.stdlib_module_names or top == "__future__":
                continue
            try:
                importlib.import_module(target)
            except ImportError:
                if target not in sys.modules and target.rsplit(".", 1)[0] in sys.modules:
                    continue  # `from package import name` of a name that is no module
                raise
            direct.add(target)
    direct |= {{f"{{fsspec.get_filesystem_class(p).__module__}}" for p in {protocols!r}}}

    files = {{getattr(sys.modules[n], "__file__", None) or "" for n in direct}} - {{""}}
    print(json.dumps(sorted(files)))
""")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def owners() -> dict[str, str]:
    """Installed file (real path) -> the distribution that installed it. The recorded
    paths are joined to each distribution's resolved folder, not resolved one by one
    (tens of thousands of files: seconds of system calls for nothing)."""
    out = {}
    for dist in metadata.distributions():
        base = str(Path(dist.locate_file("")).resolve())
        name = canonical(dist.metadata["Name"])
        for file in dist.files or ():
            if file.suffix in (".py", ".so"):
                out[os.path.normpath(os.path.join(base, file))] = name
    return out


def distributions(files: list[str]) -> set[str]:
    table = owners()
    return {table[str(Path(f).resolve())] for f in files if str(Path(f).resolve()) in table}


@cache
def probe(folder: Path, entry: str = "main", modules: tuple[str, ...] = ()) -> set[str]:
    """The distributions whose modules the code of ``folder/entry.py`` (and ``modules``)
    imports."""
    code = PROBE.format(repo=str(REPO), entry=entry, modules=modules, protocols=PROTOCOLS)
    proc = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return distributions(json.loads(proc.stdout.splitlines()[-1]))


def requirements(function: str) -> dict[str, Requirement]:
    lines = (REPO / "functions" / function / "requirements.txt").read_text().splitlines()
    reqs = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    return {canonical(r.name): r for r in reqs}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_requirements_are_exactly_what_the_function_imports(function: str) -> None:
    needed = probe(REPO / "functions" / function, "main", CLOUD_MODULES[function])
    listed = set(requirements(function))
    assert not needed - listed, f"functions/{function}/requirements.txt misses {needed - listed}"
    assert not listed - needed, f"functions/{function}/requirements.txt: unused {listed - needed}"


@cache
def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_function_requirements_are_project_dependencies() -> None:
    """Each function's requirements are declared by the package (core or an extra)."""
    declared = {canonical(Requirement(r).name) for r in project()["dependencies"]}
    for group in project()["optional-dependencies"].values():
        declared |= {canonical(Requirement(r).name) for r in group}
    for function in FUNCTIONS:
        assert set(requirements(function)) <= declared, function


def closure(names: set[str]) -> set[str]:
    """The installed distributions that installing ``names`` brings (their metadata)."""
    seen: set[str] = set()
    todo = [Requirement(n) for n in names]
    while todo:
        req = todo.pop()
        key = f"{canonical(req.name)}[{','.join(sorted(req.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        envs = [{"extra": e} for e in req.extras] or [{"extra": ""}]
        try:
            requires = metadata.requires(req.name) or ()
        except metadata.PackageNotFoundError:  # not installed here: nothing of it to load
            continue
        for text in requires:
            dep = Requirement(text)
            if dep.marker is None or any(dep.marker.evaluate(env) for env in envs):
                todo.append(dep)
    return {key.split("[", 1)[0] for key in seen}


def optional_only() -> set[str]:
    """Distributions the extras bring and the core install does not."""
    core = closure({Requirement(r).name for r in project()["dependencies"]})
    extras = {r for group in project()["optional-dependencies"].values() for r in group}
    return closure({str(Requirement(r)).split(";")[0] for r in extras}) - core


SERVING = ("simrec.serving", "simrec.serving.api", "simrec.serving.server", "simrec.cli")

#: A subprocess in which the files of the given distributions cannot be imported, as if
#: only the core were installed; then the serving core is imported and its CLI parsed.
CORE_ONLY = textwrap.dedent("""
    import importlib, importlib.abc, json, os, sys
    BLOCKED = set(json.loads(sys.stdin.read()))

    class Uninstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    if spec.origin and os.path.realpath(spec.origin) in BLOCKED:
                        raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                    return None
            return None

    sys.meta_path.insert(0, Uninstalled())
    for name in {modules!r}:
        importlib.import_module(name)
    from simrec import cli
    from simrec.serving import datastore_backend
    try:
        cli.main(["serve", "--help"])
    except SystemExit as exit:
        assert exit.code == 0, exit.code
    try:
        datastore_backend.default_client_factory("p")(None)
    except ImportError as exc:
        print(json.dumps({{"error": str(exc), "type": type(exc).__name__}}))
""")


def test_the_serving_core_imports_without_any_extra() -> None:
    blocked = optional_only()
    assert {"pyspark", "apache-beam", "duckdb", "optuna", "google-cloud-datastore"} <= blocked
    files = [path for path, dist in owners().items() if dist in blocked]
    proc = subprocess.run([sys.executable, "-c", CORE_ONLY.format(modules=SERVING)],
                          input=json.dumps(files), capture_output=True, text=True, cwd=REPO,
                          timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "usage: simrec serve" in proc.stdout
    # A group the code needs and the install lacks: one line naming the extra.
    error = json.loads(proc.stdout.splitlines()[-1])
    assert error == {"type": "MissingExtra", "error": "google.cloud.datastore is not installed: "
                     "it is in simrec's 'gcp' extra (pip install 'simrec[gcp]')"}  # fmt: skip


def test_importing_the_serving_core_loads_no_spark_or_beam() -> None:
    code = (f"import importlib, json, sys\nfor m in {SERVING!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted(sys.modules)))")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=300, check=True)  # fmt: skip
    loaded = json.loads(proc.stdout)
    assert "simrec.serving.api" in loaded
    assert not [m for m in loaded if m.split(".")[0] in ("pyspark", "apache_beam", "py4j")]


def test_each_require_names_the_extra_that_lists_its_distribution() -> None:
    calls = []
    for path in sorted((REPO / "simrec").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "require"
                    and len(node.args) == 2):  # fmt: skip
                calls.append((path.name, *(ast.literal_eval(a) for a in node.args)))
    assert len(calls) >= 3
    groups = project()["optional-dependencies"]
    for where, module, extra in calls:
        dist = distributions([importlib.import_module(module).__file__]).pop()
        assert dist in {canonical(Requirement(r).name) for r in groups[extra]}, (where, module)


def test_make_installs_every_extra() -> None:
    [line] = [ln for ln in (REPO / "Makefile").read_text().splitlines()
              if ln.startswith("EXTRAS ?=")]  # fmt: skip
    assert set(line.split("=", 1)[1].strip().split(",")) == set(project()["optional-dependencies"])


def test_flex_template_requirements_are_exactly_what_the_load_pipeline_imports() -> None:
    spec = importlib.util.spec_from_file_location("simrec_build", REPO / "tools" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    listed = {canonical(Requirement(r).name) for r in build.FLEX_REQUIREMENTS}
    assert listed == probe(REPO / "beam", "load_pipeline")


def _imports(path: Path) -> set[tuple[str, bool]]:
    """Absolute imports in a file (every form the probe follows), each with whether it
    must be a module (``from m import x``: ``m.x`` may be a module or just a name)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {(alias.name, True) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add((node.module, True))
            names |= {(f"{node.module}.{alias.name}", False) for alias in node.names}
        elif (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "require"
              and node.args and isinstance(node.args[0], ast.Constant)):  # fmt: skip
            names.add((node.args[0].value, True))
    return names


def test_every_third_party_import_is_a_declared_dependency() -> None:
    """What the package and its entry points import is in the core or an extra."""
    declared = {canonical(Requirement(r).name) for r in project()["dependencies"]}
    for group in project()["optional-dependencies"].values():
        declared |= {canonical(Requirement(r).name) for r in group}
    first_party = {"simrec", "main", "dimsum_job", "load_pipeline", "__future__"}
    sources = [p for folder in ("simrec", "spark", "beam", "functions")
               for p in sorted((REPO / folder).rglob("*.py"))]  # fmt: skip
    undeclared, checked = set(), set()
    for path in sources:
        for name, module in _imports(path):
            if name.split(".")[0] in first_party | set(sys.stdlib_module_names):
                continue
            try:
                spec = importlib.util.find_spec(name)
            except ModuleNotFoundError:  # ``from module import name`` of a non-package
                if module:
                    raise
                continue
            if spec is None and not module:
                continue
            assert spec is not None, f"{path.relative_to(REPO)} imports {name}: not installed"
            dist = distributions([spec.origin or ""])
            checked.add(name)
            undeclared |= {f"{d} ({path.relative_to(REPO)}: {name})" for d in dist - declared}
    assert {"google.cloud.bigquery", "pyspark.sql", "apache_beam", "duckdb"} <= checked
    assert not undeclared, sorted(undeclared)


def test_constraints_pin_every_declared_dependency_within_its_range() -> None:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.strip().split("==", 1)
            pins[canonical(name)] = version
    declared = [Requirement(r) for r in project()["dependencies"]]
    declared += [Requirement(r) for g in project()["optional-dependencies"].values() for r in g]
    for req in declared:
        pin = pins.get(canonical(req.name))
        assert pin, f"{req.name} is not pinned in constraints.txt"
        assert req.specifier.contains(pin), (str(req), pin)
