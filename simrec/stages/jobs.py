"""A launched job ended -> one decision, a retry, and after the last attempt an alert.

The launching stages (cluster, dataflow_launch) return as soon as their job is started,
and record it under ``jobs/<job id>.json`` (:func:`record_launch`). How a job ends then
reaches the function that launched it (routing: :mod:`simrec.stages.routes`), which
hands it to this module:

- **Dataflow** (to dataflow_launch): Eventarc's direct event
  ``google.cloud.dataflow.job.v1beta3.statusChanged`` (the Job resource, ``currentState``
  ``JOB_STATE_*``); the error text comes from the job's messages (the event carries none).
- **Dataproc** (to cluster): Dataproc emits no Eventarc direct event (google-cloudevents
  defines none for it). Its outcome is the ``InstantiateWorkflowTemplate`` operation,
  which "completes when the entire workflow is finished" with ``WorkflowMetadata``
  (create-cluster error, each job node's state and error) and ``error``: so cluster
  polls the operation of every workflow still recorded as running. That also sees a
  workflow that failed before its job ran (cluster creation: quota, image, network),
  which no job metric shows. Two
  things make it poll: the Admin Activity audit log entry Dataproc writes when that
  long-running operation ends (an Eventarc Cloud Audit Logs trigger, ``operation.last``),
  at once; and a Cloud Scheduler tick on a Pub/Sub topic, because Dataproc's audit page
  says LRO methods *usually* log their end: the tick bounds the delay when one is missing.

A job that ends FAILED or CANCELLED (or a workflow that did not complete its job) is one
logged ``failed`` decision with the run id and the job's error. While attempts are left
(``job_max_attempts``) the stage is run again for the same manifest with the next
attempt, whose job ids derive from :func:`simrec.core.runs.attempt_key`; after the last
one the decision carries ``alert`` (:data:`~simrec.stages.decisions.JOB_GAVE_UP_ALERT`),
which the log-based alert matches. A job's record is marked when its end is handled, so
a redelivered event or a second tick decides nothing twice.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from cloudevents.http import CloudEvent

from simrec import storage
from simrec.adapters.launch_ports import JobOutcome, LaunchResult
from simrec.config import Settings
from simrec.core import layout
from simrec.core.runs import RunParams
from simrec.deploy_contract import JOB_END_STAGE
from simrec.stages.cloudevents import audit_entry, dataflow_job
from simrec.stages.decisions import JOB_GAVE_UP_ALERT, LAUNCH_ACTIONS, Decision

#: The stage of every job-end decision (the alerts tell it apart: terraform/contract.json).
STAGE = JOB_END_STAGE
RUNNING, SUCCEEDED, FAILED = "RUNNING", "SUCCEEDED", "FAILED"
#: Dataflow terminal states (google.dataflow.v1beta3.JobState) and what they mean here.
DATAFLOW_SUCCEEDED = frozenset({"JOB_STATE_DONE"})
DATAFLOW_FAILED = frozenset({"JOB_STATE_FAILED", "JOB_STATE_CANCELLED"})
#: Label every load job carries (simrec.adapters.job_options.LOAD_LABELS): a job with it
#: but without a record is ours, recorded a moment later: retry the delivery.
OWN_JOB_LABEL = ("simrec-stage", "load")
#: The audited method whose operation is a workflow run (Dataproc audit logging: an LRO).
DATAPROC_SERVICE = "dataproc.googleapis.com"
INSTANTIATE_METHOD = "google.cloud.dataproc.v1.WorkflowTemplateService.InstantiateWorkflowTemplate"
#: Days a job record is kept after its last write; the watch deletes older ones.
RECORD_DAYS = 30


class RecordMissing(RuntimeError):
    """A simrec job's event arrived before its launch record: the delivery is retried."""


@dataclass(frozen=True)
class JobRecord:
    """One launched job: enough to find the run and to run its stage again."""

    job_id: str  # Dataproc request id / Dataflow job name
    stage: str  # the stage that launched it: cluster or dataflow_launch
    bucket: str  # the manifest whose event launched it
    name: str
    tenant: str
    run_id: str
    date: str  # the run date (what `simrec cloud rerun --date` takes)
    attempt: int  # 0 = first
    operation: str = ""  # Dataproc: the workflow's operation name
    state: str = RUNNING
    error: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRecord:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def record_launch(
    settings: Settings, stage: str, bucket: str, name: str, params: RunParams, attempt: int,
    result: LaunchResult,
) -> JobRecord:  # fmt: skip
    """Record a job a stage launched. A redelivered launch finds the record and keeps it:
    a job's end, once handled, is never reopened (and launchers only ever create records,
    which ``roles/storage.objectCreator`` allows)."""
    existing = read_record(settings, result.job_id)
    if existing is not None:
        return existing
    record = JobRecord(
        job_id=result.job_id, stage=stage, bucket=bucket, name=name, tenant=params.tenant,
        run_id=params.run_id, date=params.date.isoformat(), attempt=attempt,
        operation=str(result.details.get("operation", "")),
    )  # fmt: skip
    save(settings, record)
    return record


@dataclass(frozen=True)
class Manifest:
    """What a launching stage starts from: the manifest its run's previous stage wrote."""

    uri: str
    tenant: str
    run_id: str
    params: RunParams


def manifest_at(bucket: str, name: str, kind: str) -> Manifest | None:
    """The ``kind`` manifest (simrec.core.layout.classify_object) at ``bucket``/``name``;
    None for any other object."""
    found = layout.classify_object(name)
    if found is None or found[0] != kind:
        return None
    _, tenant, run_id = found
    uri = layout.object_uri(bucket, name)
    return Manifest(uri, tenant, run_id, RunParams.from_json(storage.read_json(uri)["params"]))


def busy(stage: str, job: str, run_id: str, tenant: str, **ids: str) -> Decision:
    """A redelivered manifest event while an attempt runs (or after it succeeded): the run
    belongs to this module, the stage does nothing."""
    return Decision(
        stage, "skipped", reason=f"a {job} job of this run is running or succeeded",
        run_id=run_id, tenant=tenant, ids=ids,
    )  # fmt: skip


def launched(
    settings: Settings, stage: str, bucket: str, name: str, params: RunParams, attempt: int,
    result: LaunchResult, *, run_id: str, tenant: str, exists: str, ids: dict[str, str],
) -> Decision:  # fmt: skip
    """A stage's decision on its launch, the job recorded for its end; ``exists``: why
    nothing was launched when the output already exists (nothing is recorded then)."""
    if result.state != "exists":
        record_launch(settings, stage, bucket, name, params, attempt, result)
    return Decision(
        stage, LAUNCH_ACTIONS[result.state], reason=exists if result.state == "exists" else "",
        run_id=run_id, tenant=tenant, ids={**ids, **result.details},
    )  # fmt: skip


def save(settings: Settings, record: JobRecord) -> None:
    storage.write_json(layout.job_record(settings.data_uri, record.job_id), asdict(record))


def read_record(settings: Settings, job_id: str) -> JobRecord | None:
    uri = layout.job_record(settings.data_uri, job_id)
    return JobRecord.from_json(storage.read_json(uri)) if storage.exists(uri) else None


def attempt_for_event(settings: Settings, job_id: Callable[[int], str]) -> int | None:
    """The attempt a manifest's event starts, from the run's job records (``job_id(n)``:
    the job id of attempt ``n``): 0 for a new run; None while an attempt runs or after one
    succeeded (a redelivery: this module owns the run); after the last
    attempt failed (the run gave up), the next one, so the documented recovery
    (``simrec cloud rerun``, which re-emits the manifest) starts a fresh job."""
    attempt, last = 0, None
    while (record := read_record(settings, job_id(attempt))) is not None:
        last, attempt = record, attempt + 1
    if last is None:
        return 0
    return None if last.state in (RUNNING, SUCCEEDED) else attempt


def _updated(info: dict[str, Any]) -> dt.datetime | None:
    """When an object was last written, from its listing: ``mtime`` (local: POSIX seconds;
    gcsfs: a datetime parsed from the object's ``updated``)."""
    mtime = info.get("mtime")
    if isinstance(mtime, dt.datetime):
        return mtime if mtime.tzinfo else mtime.replace(tzinfo=dt.UTC)
    if isinstance(mtime, (int, float)):
        return dt.datetime.fromtimestamp(mtime, dt.UTC)
    return None


def running_records(
    settings: Settings, stage: str, now: dt.datetime | None = None
) -> list[JobRecord]:
    """The records of ``stage`` still RUNNING. Records last written more than
    :data:`RECORD_DAYS` ago are deleted unread (no nightly job runs that long, and no event
    about it is redelivered that late), so a tick reads a bounded number of records however
    long the deployment lives: the data bucket's lifecycle rules (storage module) do not
    cover ``jobs/``."""
    root = layout.job_records(settings.data_uri)
    if not storage.exists(root):
        return []
    fs, path = storage.filesystem(root)
    fs.invalidate_cache(path)  # a warm instance must see records written since its last tick
    cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=RECORD_DAYS)
    found = []
    for info in sorted(fs.ls(path, detail=True), key=lambda i: i["name"]):
        name = info["name"]
        if info.get("type") != "file" or not name.endswith(".json"):
            continue
        updated = _updated(info)
        if updated is not None and updated < cutoff:
            fs.rm(name)
            continue
        with fs.open(name, "rb") as f:
            record = JobRecord.from_json(json.load(f))
        if record.stage == stage and record.state == RUNNING:
            found.append(record)
    return found


# --- deciding -----------------------------------------------------------------------------
def retried(decision: object) -> bool:
    """Whether a decision is a job's failed attempt that was retried: not the run's end
    (the retry's own outcome follows, as another decision)."""
    return (
        isinstance(decision, Decision) and decision.stage == STAGE
        and decision.action == "failed" and not decision.alert
    )  # fmt: skip


def _retry(record: JobRecord, settings: Settings, adapters: Any) -> Decision:
    """Run the record's stage again for its manifest, as the next attempt."""
    from simrec.stages import cluster, load

    attempt = record.attempt + 1
    if record.stage == cluster.STAGE:
        return cluster.on_object_finalized(
            record.bucket, record.name, settings, adapters.spark, attempt=attempt
        ).log()
    if record.stage == load.STAGE:
        return load.on_object_finalized(
            record.bucket, record.name, settings, adapters.beam, attempt=attempt
        ).log()
    raise ValueError(f"job record {record.job_id} names an unknown stage {record.stage!r}")


def _output_complete(record: JobRecord, settings: Settings) -> bool:
    """Whether the record's stage already wrote its complete output (its last object)."""
    from simrec import publishing
    from simrec.stages import cluster, load

    if record.stage == cluster.STAGE:
        return storage.exists(
            layout.similarities_manifest(settings.data_uri, record.tenant, record.run_id)
        )
    if record.stage == load.STAGE:
        return publishing.is_complete(settings.models_root, record.tenant, record.run_id)
    return False


def on_job_ended(
    record: JobRecord, outcome: JobOutcome, settings: Settings, adapters: Any
) -> Decision | None:
    """The decision for a job that ended; None while it runs or when it succeeded."""
    where = {"run_id": record.run_id, "tenant": record.tenant}
    if record.state != RUNNING:
        return Decision(STAGE, "skipped", reason=f"job {record.job_id} already handled "
                        f"({record.state})", **where)  # fmt: skip
    if outcome.state == "running":
        return None
    if outcome.state == "succeeded":
        save(settings, replace(record, state=SUCCEEDED))
        return None
    if _output_complete(record, settings):
        # The job wrote its complete output, then failed (killed while exiting, say): the
        # output is what counts, so this is a success and nothing is retried.
        save(settings, replace(record, state=SUCCEEDED))
        return Decision(STAGE, "succeeded", reason=f"{record.stage} job {record.job_id} "
                        f"ended {outcome.detail} after its output was complete", **where)
    number, limit = record.attempt + 1, settings.job_max_attempts
    ids: dict[str, Any] = {
        "job_id": record.job_id, "stage": record.stage, "job_state": outcome.detail,
        "error": outcome.error, "attempt": number, "max_attempts": limit,
    }  # fmt: skip
    what = f"{record.stage} job {record.job_id} ended: {outcome.detail}: {outcome.error}"
    if number < limit:
        # Retry first: should the relaunch fail, the record still says RUNNING and the
        # redelivered event (or the next tick) tries again, under the same attempt key.
        retry = _retry(record, settings, adapters)
        save(settings, replace(record, state=FAILED, error=outcome.error))
        ids["retry_job_id"] = retry.ids.get("request_id") or retry.ids.get("job_name", "")
        return Decision(STAGE, "failed", reason=f"{what}; retrying (attempt {number + 1} of "
                        f"{limit})", ids=ids, **where)  # fmt: skip
    save(settings, replace(record, state=FAILED, error=outcome.error))
    return Decision(
        STAGE, "failed", alert=JOB_GAVE_UP_ALERT, ids=ids, **where,
        reason=f"{what}; gave up after {limit} attempt(s): fix the cause, then rerun the "
        f"night with `simrec cloud rerun --date {record.date} --tenant {record.tenant}`",
    )  # fmt: skip


def on_dataflow_event(event: CloudEvent, settings: Settings, adapters: Any) -> Decision:
    job = dataflow_job(event)
    name, state = str(job["name"]), str(job["currentState"])
    if state not in DATAFLOW_SUCCEEDED | DATAFLOW_FAILED:
        return Decision(STAGE, "ignored", reason=f"Dataflow job {name} is {state}")
    record = read_record(settings, name)
    if record is None:
        if (job.get("labels") or {}).get(OWN_JOB_LABEL[0]) == OWN_JOB_LABEL[1]:
            raise RecordMissing(f"no launch record for simrec job {name} yet")
        return Decision(STAGE, "ignored", reason=f"not a simrec job: {name}")
    if state in DATAFLOW_SUCCEEDED:
        outcome = JobOutcome("succeeded", state)
    else:
        outcome = JobOutcome("failed", state, adapters.beam.job_error(str(job.get("id", "")), name))
    decision = on_job_ended(record, outcome, settings, adapters)
    return decision or Decision(STAGE, "ignored", reason=f"Dataflow job {name} is {state}",
                                run_id=record.run_id, tenant=record.tenant)  # fmt: skip


def on_watch_tick(settings: Settings, adapters: Any) -> Decision:
    """Poll every workflow still recorded as running; one decision per one that failed."""
    from simrec.stages import cluster

    records = running_records(settings, cluster.STAGE)
    decisions = []
    for record in records:
        outcome = adapters.spark.workflow_outcome(record.job_id, record.operation)
        decision = on_job_ended(record, outcome, settings, adapters)
        if decision is not None:
            decisions.append(decision)
    for decision in decisions[:-1]:  # the handler logs the one it returns
        decision.log()
    if decisions:
        return decisions[-1]
    return Decision(STAGE, "ignored", reason=f"{len(records)} workflow(s) watched, none failed")


def on_audit_event(event: CloudEvent, settings: Settings, adapters: Any) -> Decision:
    """A workflow operation's last audit entry: poll the running workflows now."""
    entry = audit_entry(event)
    payload, operation = entry["protoPayload"], entry.get("operation") or {}
    method = payload.get("methodName", "")
    if payload.get("serviceName") != DATAPROC_SERVICE or method != INSTANTIATE_METHOD:
        return Decision(STAGE, "ignored", reason=f"not a workflow run: {method}")
    if not operation.get("last"):
        return Decision(STAGE, "ignored", reason=f"workflow {operation.get('id', '')} started")
    return on_watch_tick(settings, adapters)

