"""dataflow_launch: a similarity manifest appeared -> load it and publish the model."""

from __future__ import annotations

import hashlib

from simrec import storage
from simrec.adapters.launch_ports import BeamLauncher
from simrec.config import Settings
from simrec.core import layout
from simrec.core.runs import RunParams, attempt_key
from simrec.stages import jobs
from simrec.stages.decisions import LAUNCH_ACTIONS, Decision

STAGE = "dataflow_launch"


JOB_NAME_MAX = 63


def job_name(params: RunParams, attempt: int = 0) -> str:
    """Dataflow job names: [a-z]([-a-z0-9]*[a-z0-9])?, at most 63 characters here.

    A longer name keeps a readable prefix plus a hash of the whole name, so attempts
    and runs never share a name (plain truncation would cut the ``-retry<n>`` suffix).
    """
    full = f"simrec-load-{attempt_key(params.key, attempt)}"
    if len(full) <= JOB_NAME_MAX:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:12]
    return f"{full[: JOB_NAME_MAX - len(digest) - 1].rstrip('-')}-{digest}"


def on_object_finalized(
    bucket: str, name: str, settings: Settings, launcher: BeamLauncher, attempt: int = 0
) -> Decision:
    """``attempt``: 0 for the manifest's event; the retries of simrec.stages.jobs count up."""
    kind = layout.classify_object(name)
    if kind is None or kind[0] != "similarities":
        return Decision(STAGE, "ignored", reason=f"not a similarity manifest: {name}")
    _, tenant, run_id = kind
    manifest_uri = storage.object_uri(bucket, name)
    manifest = storage.read_json(manifest_uri)
    params = RunParams.from_json(manifest["params"])
    name_of_job = job_name(params, attempt)
    ended = jobs.read_record(settings, name_of_job)
    if ended is not None and ended.state != jobs.RUNNING:
        # A redelivered manifest event after this attempt ended: simrec.stages.jobs owns the
        # run now (it retried as the next attempt, or gave up); Dataflow would start a job.
        return Decision(
            STAGE, "skipped", reason=f"job {name_of_job} already ended ({ended.state})",
            run_id=run_id, tenant=tenant, ids={"job_name": name_of_job},
        )  # fmt: skip
    result = launcher.launch(
        similarities_uri=manifest_uri.rsplit("/", 1)[0],
        models_root=settings.models_root,
        tenant=tenant,
        model_version=run_id,
        job_name=name_of_job,
    )
    if result.state != "exists":
        jobs.record_launch(settings, STAGE, bucket, name, params, attempt, result)
    return Decision(
        STAGE,
        LAUNCH_ACTIONS[result.state],
        reason="model version already published" if result.state == "exists" else "",
        run_id=run_id,
        tenant=tenant,
        ids={"job_name": result.job_id, **result.details},
    )
