"""Where the project's entry points live, for the local launchers and dispatcher."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The checkout holding ``functions/``, ``spark/`` and ``beam/``.

    ``SIMREC_HOME`` overrides; otherwise the folder above the (editable) package.
    """
    env = os.environ.get("SIMREC_HOME")
    root = Path(env) if env else Path(__file__).resolve().parents[1]
    if not (root / "spark" / "dimsum_job.py").exists():
        raise FileNotFoundError(
            f"no simrec checkout at {root}: set SIMREC_HOME to the repository folder"
        )
    return root


def spark_job() -> Path:
    return project_root() / "spark" / "dimsum_job.py"


def beam_pipeline() -> Path:
    return project_root() / "beam" / "load_pipeline.py"


def function_source(name: str) -> Path:
    return project_root() / "functions" / name / "main.py"
