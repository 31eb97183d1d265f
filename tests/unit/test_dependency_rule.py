"""The dependency rule of docs/architecture.md, checked on the real imports."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import simrec.core

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_CORE = ("pyspark", "apache_beam", "google.cloud", "flask", "werkzeug",
                     "functions_framework", "gcsfs", "duckdb")


def _modules_after(imports: list[str]) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for m in {imports!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)
    return set(json.loads(out.stdout))


def test_core_imports_no_cloud_spark_beam_or_web_library():
    modules = [f"simrec.core.{m.name}" for m in pkgutil.iter_modules(simrec.core.__path__)]
    # Namespace-package .pth files create empty ``google``/``google.cloud`` at start-up.
    loaded = _modules_after(modules) - _modules_after([])
    bad = sorted(m for m in loaded if m.startswith(FORBIDDEN_IN_CORE))
    assert len(modules) >= 10
    assert not bad, f"simrec.core pulls in {bad}"


def test_no_entry_point_imports_another():
    for main in sorted(REPO.glob("functions/*/main.py")):
        tree = ast.parse(main.read_text())
        imported = {
            (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names
        }
        others = [m for m in imported if m.split(".")[0] in ("functions", "main", "spark", "beam",
                                                               "dimsum_job", "load_pipeline")]
        assert not others, f"{main} imports {others}"
