"""Ports for starting the heavy jobs: the Spark similarity job and the Beam load.

Each has a local implementation (a subprocess on this machine) and a Google Cloud one
(a Dataproc workflow template, a Dataflow Flex Template). Launches carry an idempotency
key derived from the run, so a redelivered event never starts a second job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from simrec.core.runs import RunParams


@dataclass(frozen=True)
class LaunchResult:
    """What a launch did: started a job, found one already there, or ran it to the end."""

    job_id: str
    state: Literal["started", "exists", "succeeded"]
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class JobOutcome:
    """How a launched job ended (or that it has not yet): ``detail`` says how (the job
    state, or that a workflow never started its job), ``error`` the job's own error."""

    state: Literal["running", "succeeded", "failed"]
    detail: str = ""
    error: str = ""


class SparkLauncher(Protocol):
    def submit(
        self, *, export_manifest_uri: str, output_uri: str, params: RunParams, request_id: str
    ) -> LaunchResult: ...

    def workflow_outcome(self, job_id: str, operation: str) -> JobOutcome: ...


@dataclass(frozen=True)
class LoadRequest:
    """One load to launch: a run's similarities into a model version of a tenant, as the
    job named ``job_name`` (the launch's idempotency key)."""

    similarities_uri: str
    models_root: str
    tenant: str
    model_version: str
    job_name: str

    def run(self) -> dict[str, str]:
        """The run's part, what simrec.adapters.job_options.load_job_options takes."""
        return {"similarities_uri": self.similarities_uri, "models_root": self.models_root,
                "tenant": self.tenant, "model_version": self.model_version}  # fmt: skip


class BeamLauncher(Protocol):
    def launch(self, request: LoadRequest) -> LaunchResult: ...

    def job_error(self, job_id: str, job_name: str) -> str: ...
