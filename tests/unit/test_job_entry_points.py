"""spark/ and beam/ hold only the files Dataproc and the Flex Template name: each imports
the ``main`` of one job module of the package and calls it, so the job's logic ships (and
is tested) as part of simrec, and an installed package runs it (``python -m``)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENTRY_POINTS = {
    "spark/dimsum_job.py": "simrec.jobs.spark_similarity",
    "beam/load_pipeline.py": "simrec.jobs.beam_load",
}


@pytest.mark.parametrize(("entry", "module"), sorted(ENTRY_POINTS.items()))
def test_entry_point_only_calls_the_job_modules_main(entry: str, module: str) -> None:
    tree = ast.parse((REPO / entry).read_text())
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    from_package = [n for n in imports if isinstance(n, ast.ImportFrom)]
    assert [(n.module, [a.name for a in n.names]) for n in from_package] == [(module, ["main"])]
    assert {a.name for n in imports if isinstance(n, ast.Import) for a in n.names} <= {"sys"}
    defined = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert not defined, f"{entry} defines {[n.name for n in defined]}: move it to {module}"
    assert callable(importlib.import_module(module).main)


def test_every_file_of_spark_and_beam_is_a_named_entry_point() -> None:
    files = {p.relative_to(REPO).as_posix() for d in ("spark", "beam") for p in
             (REPO / d).glob("*.py")}  # fmt: skip
    assert files == set(ENTRY_POINTS)


def test_the_installed_package_runs_the_spark_job_from_anywhere(tmp_path: Path) -> None:
    """``python -m`` from a folder with no checkout: what the local launcher runs."""
    done = subprocess.run(
        [sys.executable, "-m", ENTRY_POINTS["spark/dimsum_job.py"], "--help"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--export-manifest" in done.stdout
