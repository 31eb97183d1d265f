"""dataflow_launch: a similarity manifest appeared -> load it and publish the model."""

from __future__ import annotations

import hashlib

from simrec import publishing
from simrec.adapters.launch_ports import BeamLauncher, LoadRequest
from simrec.config import Settings
from simrec.core.runs import RunParams, attempt_key
from simrec.deploy_contract import DATAFLOW_JOB_PREFIX
from simrec.stages import jobs
from simrec.stages.decisions import Action, Decision

STAGE = "dataflow_launch"


JOB_NAME_MAX = 63


def job_name(params: RunParams, attempt: int = 0) -> str:
    """Dataflow job names: [a-z]([-a-z0-9]*[a-z0-9])?, at most 63 characters here.

    A longer name keeps a readable prefix plus a hash of the whole name, so attempts
    and runs never share a name (plain truncation would cut the ``-retry<n>`` suffix). The
    prefix is the one the failure alert matches (terraform/contract.json).
    """
    full = f"{DATAFLOW_JOB_PREFIX}{attempt_key(params.key, attempt)}"
    if len(full) <= JOB_NAME_MAX:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:12]
    return f"{full[: JOB_NAME_MAX - len(digest) - 1].rstrip('-')}-{digest}"


def on_object_finalized(
    bucket: str, name: str, settings: Settings, launcher: BeamLauncher,
    attempt: int | None = None,
) -> Decision:
    """Launch the load of a similarity run, unless its model version is complete.

    Both outcomes are decided from the published state, through the one publishing
    policy: a complete version is not loaded again (LATEST is settled, e.g. after a crash
    between metadata and LATEST), and a launch that fails after the version became
    complete (a load process killed after publishing) is a success. ``attempt``: None for
    the manifest's event (``jobs.attempt_for_event`` decides); the retries of
    simrec.stages.jobs count up.
    """
    manifest = jobs.manifest_at(bucket, name, "similarities")
    if manifest is None:
        return Decision(STAGE, "ignored", reason=f"not a similarity manifest: {name}")
    tenant, run_id, params, manifest_uri = (
        manifest.tenant, manifest.run_id, manifest.params, manifest.uri
    )
    models_root = settings.models_root

    def published(action: Action, reason: str) -> Decision:
        settled = publishing.settle_latest(models_root, tenant, run_id, publish=params.publish)
        return Decision(
            STAGE, action, reason=f"{reason}; {settled.reason}", run_id=run_id, tenant=tenant,
            ids={"model_version": run_id, "latest": settled.latest},
        )

    if publishing.is_complete(models_root, tenant, run_id):
        return published("skipped", "model version already published")
    if attempt is None:
        attempt = jobs.attempt_for_event(settings, lambda n: job_name(params, n))
    if attempt is None:
        return jobs.busy(STAGE, "load", run_id, tenant)
    name_of_job = job_name(params, attempt)
    try:
        result = launcher.launch(LoadRequest(
            similarities_uri=manifest_uri.rsplit("/", 1)[0], models_root=models_root,
            tenant=tenant, model_version=run_id, job_name=name_of_job,
        ))  # fmt: skip
    except Exception as exc:
        if not publishing.is_complete(models_root, tenant, run_id):
            raise
        return published("succeeded", f"the load ended with an error after publishing: {exc}")
    return jobs.launched(
        settings, STAGE, bucket, name, params, attempt, result, run_id=run_id, tenant=tenant,
        exists="model version already published", ids={"job_name": result.job_id},
    )  # fmt: skip
