"""dataflow_launch: a similarity manifest appeared -> load it and publish the model."""

from __future__ import annotations

from simrec import storage
from simrec.adapters.launch_ports import BeamLauncher
from simrec.config import Settings
from simrec.core import layout
from simrec.core.runs import RunParams
from simrec.deploy_contract import DATAFLOW_JOB_PREFIX
from simrec.stages.decisions import LAUNCH_ACTIONS, Decision

STAGE = "dataflow_launch"


def job_name(params: RunParams) -> str:
    """Dataflow job names: [a-z]([-a-z0-9]*[a-z0-9])?, at most 63 characters here; the
    prefix is the one the failure alert matches (terraform/contract.json)."""
    return f"{DATAFLOW_JOB_PREFIX}{params.key}"[:63].rstrip("-")


def on_object_finalized(
    bucket: str, name: str, settings: Settings, launcher: BeamLauncher
) -> Decision:
    kind = layout.classify_object(name)
    if kind is None or kind[0] != "similarities":
        return Decision(STAGE, "ignored", reason=f"not a similarity manifest: {name}")
    _, tenant, run_id = kind
    manifest_uri = storage.object_uri(bucket, name)
    manifest = storage.read_json(manifest_uri)
    params = RunParams.from_json(manifest["params"])
    result = launcher.launch(
        similarities_uri=manifest_uri.rsplit("/", 1)[0],
        models_root=settings.models_root,
        tenant=tenant,
        model_version=run_id,
        job_name=job_name(params),
    )
    return Decision(
        STAGE,
        LAUNCH_ACTIONS[result.state],
        reason="model version already published" if result.state == "exists" else "",
        run_id=run_id,
        tenant=tenant,
        ids={"job_name": result.job_id, **result.details},
    )
