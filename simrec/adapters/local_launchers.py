"""The embedded default's job launchers: the same job files, run on this machine.

The Spark job runs as ``python spark/dimsum_job.py`` on Spark ``local[*]``; the Beam
load as ``python beam/load_pipeline.py`` on Beam's local runner. Both are separate
processes, as on Dataproc and Dataflow, and block until the job ends (the local
dispatcher then delivers the objects they wrote as storage events).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from simrec import paths, storage
from simrec.adapters.launch_ports import LaunchResult
from simrec.core import layout
from simrec.core.runs import RunParams


class JobFailed(RuntimeError):
    """A local job exited non-zero; the message carries the tail of its log."""


def _run(cmd: list[str], log_path: Path, job_id: str, env: dict[str, str]) -> float:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    if proc.returncode != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-25:]
        raise JobFailed(
            f"job {job_id} failed with exit code {proc.returncode}; log {log_path}:\n"
            + "\n".join(tail)
        )
    return time.perf_counter() - started


def _job_env() -> dict[str, str]:
    """The job's Python workers must be this interpreter: it has simrec and pyarrow."""
    return {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}


class LocalSparkLauncher:
    """Runs the similarity job locally: the PySpark job, or the single-machine engine."""

    def __init__(self, master: str = "local[*]", engine: str = "spark", log_dir: str = "") -> None:
        self.master = master
        self.engine = engine
        self.log_dir = Path(log_dir or ".")

    def submit(
        self, *, export_manifest_uri: str, output_uri: str, params: RunParams, request_id: str
    ) -> LaunchResult:
        manifest = layout.join(output_uri, layout.MANIFEST_NAME)
        if storage.exists(manifest):
            return LaunchResult(request_id, "exists", {"manifest": manifest})
        if self.engine == "local":
            from simrec.similarity_output import run_local_similarity

            started = time.perf_counter()
            run_local_similarity(export_manifest_uri, output_uri, params)
            elapsed = time.perf_counter() - started
        else:
            cmd = [
                sys.executable,
                str(paths.spark_job()),
                "--export-manifest", export_manifest_uri,
                "--output", output_uri,
                "--master", self.master,
            ]
            elapsed = _run(cmd, self.log_dir / f"{request_id}-spark.log", request_id, _job_env())
        return LaunchResult(
            request_id, "succeeded", {"engine": self.engine, "seconds": round(elapsed, 3)}
        )


class LocalBeamLauncher:
    """Runs the Beam load pipeline on Beam's local runner, as a separate process."""

    def __init__(self, datastore_project: str = "", datastore_namespace: str = "",
                 log_dir: str = "", catalog: str = "") -> None:
        self.datastore_project = datastore_project
        self.datastore_namespace = datastore_namespace
        self.catalog = catalog  # item catalog published with each model (optional)
        self.log_dir = Path(log_dir or ".")

    def launch(
        self,
        *,
        similarities_uri: str,
        models_root: str,
        tenant: str,
        model_version: str,
        job_name: str,
    ) -> LaunchResult:
        # A complete version is never launched again: the load stage decides that (and
        # settles LATEST) through simrec.publishing before calling any launcher.
        cmd = [
            sys.executable,
            str(paths.beam_pipeline()),
            "--similarities", similarities_uri,
            "--models_root", models_root,
            "--tenant", tenant,
            "--model_version", model_version,
        ]
        if self.catalog:
            cmd += ["--catalog", self.catalog]
        if self.datastore_project:
            cmd += ["--datastore_project", self.datastore_project]
            if self.datastore_namespace:
                cmd += ["--datastore_namespace", self.datastore_namespace]
        elapsed = _run(cmd, self.log_dir / f"{job_name}-beam.log", job_name, _job_env())
        return LaunchResult(
            job_name, "succeeded", {"model_version": model_version, "seconds": round(elapsed, 3)}
        )
