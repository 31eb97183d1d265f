"""The embedded default's job launchers: the same job files, run on this machine.

The Spark job runs as ``python -m simrec.jobs.spark_similarity`` on Spark ``local[*]``;
the Beam load as ``python -m simrec.jobs.beam_load`` on Beam's local runner: the job
modules of the installed package that ``spark/`` and ``beam/`` call. Both are separate
processes, as on Dataproc and Dataflow, and block until the job ends (the local
dispatcher then delivers the objects they wrote as storage events). Their options come
from :mod:`simrec.adapters.job_options`, as the cloud launchers' do.

A job that fails does not raise: as on Google Cloud, the launch succeeded and the job's
end is an event. The Beam launcher emits the Dataflow ``statusChanged`` event, the Spark
launcher the job-watch tick that makes the ``cluster`` function poll the workflow
(:mod:`simrec.stages.jobs`); the outcome and its error are kept in
``<log_dir>/<job id>.outcome.json`` for that handler to read, as Dataflow keeps job
messages and Dataproc the workflow operation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from cloudevents.http import CloudEvent

from simrec import storage
from simrec.adapters.job_options import LOAD_LABELS, load_job_options, spark_job_options
from simrec.adapters.launch_ports import JobOutcome, LaunchResult, LoadRequest
from simrec.config import Settings
from simrec.core import layout
from simrec.core.runs import RunParams
from simrec.stages.cloudevents import JOB_WATCH, make_dataflow_event, make_pubsub_event

#: The local topics' prefix, as Terraform names topics (``<prefix>-<role>``).
LOCAL_PREFIX = "simrec"
JOB_WATCH_TOPIC = f"{LOCAL_PREFIX}-{JOB_WATCH}"
#: Events the local jobs emitted (as Dataflow or Cloud Scheduler would send them), which
#: the local dispatcher (:mod:`simrec.local.dispatcher`) delivers on its next ``drain``.
OUTBOX: list[CloudEvent] = []

#: How each job is started after the interpreter (``python -m <module>``).
SPARK_JOB = ("-m", "simrec.jobs.spark_similarity")
BEAM_LOAD = ("-m", "simrec.jobs.beam_load")

#: What the local launchers report for a job: Dataflow's terminal job states.
DONE, FAILED = "JOB_STATE_DONE", "JOB_STATE_FAILED"


class JobFailed(RuntimeError):
    """A local job exited non-zero; the message carries the tail of its log."""


def _run(cmd: list[str], log_path: Path, job_id: str, env: dict[str, str]) -> float:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    if proc.returncode != 0:
        lines = log_path.read_text(errors="replace").splitlines()
        said = [line for line in lines if line.startswith("error: ")]
        if said:  # the job's own one-line error (simrec.jobs.spark_similarity): that, not frames
            raise JobFailed(
                f"job {job_id} failed with exit code {proc.returncode}: "
                f"{said[-1][len('error: '):]} (log {log_path})"
            )
        raise JobFailed(
            f"job {job_id} failed with exit code {proc.returncode}; log {log_path}:\n"
            + "\n".join(lines[-25:])
        )
    return time.perf_counter() - started


def _job_env() -> dict[str, str]:
    """The job's Python workers must be this interpreter: it has simrec and pyarrow."""
    return {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}


def _job_env() -> dict[str, str]:
    """The job's Python workers must be this interpreter: it has simrec and pyarrow."""
    return {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}


def _emit(event: CloudEvent) -> None:
    OUTBOX.append(event)


class _Outcomes:
    """``<log_dir>/<job id>.outcome.json``: how each local job ended, and its error."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir

    def path(self, job_id: str) -> Path:
        return self.log_dir / f"{job_id}.outcome.json"

    def write(self, job_id: str, state: str, error: str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.path(job_id).write_text(json.dumps({"state": state, "error": error}))

    def read(self, job_id: str) -> dict[str, str]:
        try:
            return json.loads(self.path(job_id).read_text())
        except FileNotFoundError:
            return {}


def _run_job(work, job_id: str) -> tuple[str, str, float]:
    """``(state, error, seconds)`` of running ``work``: any failure is the job's."""
    started = time.perf_counter()
    try:
        work()
    except Exception as exc:  # the job failed: reported as its end state, not raised
        return FAILED, f"{type(exc).__name__}: {exc}", time.perf_counter() - started
    return DONE, "", time.perf_counter() - started


class LocalSparkLauncher:
    """Runs the similarity job locally: the PySpark job, or the single-machine engine."""

    def __init__(self, settings: Settings, log_dir: str = "") -> None:
        self.settings = settings
        self.engine = settings.engine
        self.log_dir = Path(log_dir or ".")
        self.outcomes = _Outcomes(self.log_dir)

    def submit(
        self, *, export_manifest_uri: str, output_uri: str, params: RunParams, request_id: str
    ) -> LaunchResult:
        manifest = layout.join(output_uri, layout.MANIFEST_NAME)
        if storage.exists(manifest):
            return LaunchResult(request_id, "exists", {"manifest": manifest})
        options = spark_job_options(
            self.settings, export_manifest_uri=export_manifest_uri, output_uri=output_uri
        )
        if self.engine == "local":
            from simrec.jobs.local_similarity import run_local_similarity

            def work() -> None:
                run_local_similarity(export_manifest_uri, output_uri, params)
        else:
            cmd = [sys.executable, *SPARK_JOB, *options.argv(),
                   "--master", options.local_master]  # fmt: skip

            def work() -> None:
                _run(cmd, self.log_dir / f"{request_id}-spark.log", request_id, _job_env())

        state, error, elapsed = _run_job(work, request_id)
        self.outcomes.write(request_id, state, error)
        _emit(make_pubsub_event("local", JOB_WATCH_TOPIC, {}))  # as Cloud Scheduler's tick
        details = {"engine": self.engine, "seconds": round(elapsed, 3),
                   "operation": f"local/{request_id}", "job_state": state}  # fmt: skip
        return LaunchResult(request_id, "succeeded" if state == DONE else "started", details)

    def workflow_outcome(self, job_id: str, operation: str) -> JobOutcome:
        found = self.outcomes.read(job_id)
        if not found:
            return JobOutcome("running")
        if found["state"] == DONE:
            return JobOutcome("succeeded", DONE)
        return JobOutcome("failed", found["state"], found.get("error", ""))


class LocalBeamLauncher:
    """Runs the Beam load pipeline on Beam's local runner, as a separate process."""

    def __init__(self, settings: Settings, log_dir: str = "") -> None:
        self.settings = settings
        self.log_dir = Path(log_dir or ".")
        self.outcomes = _Outcomes(self.log_dir)

    def launch(self, request: LoadRequest) -> LaunchResult:
        # A complete version is never launched again: the load stage decides that (and
        # settles LATEST) through simrec.publishing before calling any launcher.
        options = load_job_options(self.settings, **request.run())
        job_name, model_version = request.job_name, request.model_version
        cmd = [sys.executable, *BEAM_LOAD, *options.argv()]
        log = self.log_dir / f"{job_name}-beam.log"
        state, error, elapsed = _run_job(lambda: _run(cmd, log, job_name, _job_env()), job_name)
        self.outcomes.write(job_name, state, error)
        job_id = f"local-{job_name}"
        _emit(make_dataflow_event(
            "local", self.settings.gcp_region,
            {"id": job_id, "name": job_name, "type": "JOB_TYPE_BATCH",
             "currentState": state, "labels": dict(LOAD_LABELS)},
        ))  # fmt: skip
        details = {"model_version": model_version, "seconds": round(elapsed, 3),
                   "job_id": job_id, "job_state": state}  # fmt: skip
        return LaunchResult(job_name, "succeeded" if state == DONE else "started", details)

    def job_error(self, job_id: str, job_name: str) -> str:
        return self.outcomes.read(job_name).get("error", "")
