"""cluster: an export manifest appeared -> start the similarity job for that run."""

from __future__ import annotations

from simrec.adapters.launch_ports import SparkLauncher
from simrec.config import Settings
from simrec.core import layout
from simrec.core.runs import RunParams, attempt_key
from simrec.stages import jobs
from simrec.stages.decisions import Decision

STAGE = "cluster"


def request_id(params: RunParams, attempt: int = 0) -> str:
    return f"simrec-dimsum-{attempt_key(params.key, attempt)}"


def on_object_finalized(
    bucket: str, name: str, settings: Settings, launcher: SparkLauncher,
    attempt: int | None = None,
) -> Decision:
    """``attempt``: None for the manifest's event (``jobs.attempt_for_event`` decides); the
    retries of simrec.stages.jobs count up."""
    manifest = jobs.manifest_at(bucket, name, "export")
    if manifest is None:
        return Decision(STAGE, "ignored", reason=f"not an export manifest: {name}")
    tenant, run_id, params, manifest_uri = (
        manifest.tenant, manifest.run_id, manifest.params, manifest.uri
    )
    if params.run_id != run_id or params.tenant != tenant:
        return Decision(
            STAGE, "failed", reason="manifest params do not match its path",
            run_id=run_id, tenant=tenant,
        )
    output = layout.similarities(settings.data_uri, tenant, run_id)
    if attempt is None:
        attempt = jobs.attempt_for_event(settings, lambda n: request_id(params, n))
    if attempt is None:
        return jobs.busy(STAGE, "similarity", run_id, tenant, output=output)
    result = launcher.submit(
        export_manifest_uri=manifest_uri,
        output_uri=output,
        params=params,
        request_id=request_id(params, attempt),
    )
    return jobs.launched(
        settings, STAGE, bucket, name, params, attempt, result, run_id=run_id, tenant=tenant,
        exists="similarities already exist", ids={"request_id": result.job_id, "output": output},
    )  # fmt: skip
