"""cluster: an export manifest appeared -> start the similarity job for that run."""

from __future__ import annotations

from simrec import storage
from simrec.adapters.launch_ports import SparkLauncher
from simrec.config import Settings
from simrec.core import layout
from simrec.core.runs import RunParams, attempt_key
from simrec.stages import jobs
from simrec.stages.decisions import LAUNCH_ACTIONS, Decision

STAGE = "cluster"


def request_id(params: RunParams, attempt: int = 0) -> str:
    return f"simrec-dimsum-{attempt_key(params.key, attempt)}"


def on_object_finalized(
    bucket: str, name: str, settings: Settings, launcher: SparkLauncher,
    attempt: int | None = None,
) -> Decision:
    """``attempt``: None for the manifest's event (``jobs.attempt_for_event`` decides); the
    retries of simrec.stages.jobs count up."""
    kind = layout.classify_object(name)
    if kind is None or kind[0] != "export":
        return Decision(STAGE, "ignored", reason=f"not an export manifest: {name}")
    _, tenant, run_id = kind
    manifest_uri = layout.object_uri(bucket, name)
    manifest = storage.read_json(manifest_uri)
    params = RunParams.from_json(manifest["params"])
    if params.run_id != run_id or params.tenant != tenant:
        return Decision(
            STAGE, "failed", reason="manifest params do not match its path",
            run_id=run_id, tenant=tenant,
        )
    output = layout.similarities(settings.data_uri, tenant, run_id)
    if attempt is None:
        attempt = jobs.attempt_for_event(settings, lambda n: request_id(params, n))
    if attempt is None:
        return Decision(
            STAGE, "skipped", reason="a similarity job of this run is running or succeeded",
            run_id=run_id, tenant=tenant, ids={"output": output},
        )  # fmt: skip
    result = launcher.submit(
        export_manifest_uri=manifest_uri,
        output_uri=output,
        params=params,
        request_id=request_id(params, attempt),
    )
    if result.state != "exists":
        jobs.record_launch(settings, STAGE, bucket, name, params, attempt, result)
    return Decision(
        STAGE,
        LAUNCH_ACTIONS[result.state],
        reason="similarities already exist" if result.state == "exists" else "",
        run_id=run_id,
        tenant=tenant,
        ids={"request_id": result.job_id, "output": output, **result.details},
    )
