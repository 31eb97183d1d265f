"""cluster: an export manifest appeared -> start the similarity job for that run."""

from __future__ import annotations

from simrec import storage
from simrec.adapters.launch_ports import SparkLauncher
from simrec.config import Settings
from simrec.core import layout
from simrec.core.runs import RunParams
from simrec.stages.decisions import LAUNCH_ACTIONS, Decision

STAGE = "cluster"


def on_object_finalized(
    bucket: str, name: str, settings: Settings, launcher: SparkLauncher
) -> Decision:
    kind = layout.classify_object(name)
    if kind is None or kind[0] != "export":
        return Decision(STAGE, "ignored", reason=f"not an export manifest: {name}")
    _, tenant, run_id = kind
    manifest_uri = storage.object_uri(bucket, name)
    manifest = storage.read_json(manifest_uri)
    params = RunParams.from_json(manifest["params"])
    if params.run_id != run_id or params.tenant != tenant:
        return Decision(
            STAGE, "failed", reason="manifest params do not match its path",
            run_id=run_id, tenant=tenant,
        )
    output = layout.similarities(settings.data_uri, tenant, run_id)
    result = launcher.submit(
        export_manifest_uri=manifest_uri,
        output_uri=output,
        params=params,
        request_id=f"simrec-dimsum-{params.key}",
    )
    return Decision(
        STAGE,
        LAUNCH_ACTIONS[result.state],
        reason="similarities already exist" if result.state == "exists" else "",
        run_id=run_id,
        tenant=tenant,
        ids={"request_id": result.job_id, "output": output, **result.details},
    )
