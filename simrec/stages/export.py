"""export: select a run's window of events, validate them, write day partitions, then
the manifest. Shared by the cloud function (BigQuery) and the embedded default (DuckDB).

The manifest is the only signal the next stage acts on, so it is written last and only
after the counts add up; a failed export leaves no manifest (a stale one of the same run
is removed first). Rerunning the same ``RunParams`` rewrites the same day partitions,
rejects and manifest.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from simrec import publishing, storage
from simrec.adapters.ports import ExportResult, Warehouse
from simrec.config import Settings
from simrec.core import layout
from simrec.core.runs import RunParams
from simrec.sql import SCHEMAS
from simrec.stages import progress
from simrec.stages.decisions import Action, Decision
from simrec.stages.requests import run_params

STAGE = "export"


def build_manifest(
    params: RunParams,
    result: ExportResult,
    *,
    source: str,
    schema: str,
    data_root: str,
    export_s: float,
    created_at: dt.datetime,
) -> dict[str, Any]:
    """The export manifest of docs/architecture.md."""
    return {
        "stage": STAGE,
        "run_id": params.run_id,
        "tenant": params.tenant,
        "params": params.to_json(),
        "source": {"schema": schema, "table": source},
        "days": [
            {
                "date": day.isoformat(),
                "uri": layout.export_day(data_root, params.tenant, day),
                "rows": rows,
            }
            for day, rows in sorted(result.days.items())
        ],
        "counts": {
            "rows_read": result.rows_read,
            "rows_valid": result.rows_valid,
            "rows_rejected": result.rows_rejected,
            "rejected_by_reason": dict(result.rejected_by_reason),
        },
        "rejects_uri": result.rejects_uri,
        "created_at": created_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "timings": {"export_s": round(export_s, 3), **result.timings},
    }


def run_export(
    params: RunParams,
    warehouse: Warehouse,
    source: str,
    schema: str,
    data_root: str,
    *,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Export one run's window and write its manifest last; return the manifest.

    Raises (and writes no manifest) when the source is missing or malformed or the
    warehouse's counts do not add up.
    """
    if schema not in SCHEMAS:
        raise ValueError(f"unknown events schema {schema!r}; expected one of {SCHEMAS}")
    if not source:
        raise ValueError("no events source configured (SIMREC_EVENTS_SOURCE)")
    manifest_uri = layout.export_manifest(data_root, params.tenant, params.run_id)
    storage.remove(manifest_uri)  # a failed rerun must not leave the old "complete" signal
    start = time.perf_counter()
    result = warehouse.export(params, source, schema, data_root)
    result.check(params)
    manifest = build_manifest(
        params,
        result,
        source=source,
        schema=schema,
        data_root=data_root,
        export_s=time.perf_counter() - start,
        created_at=now or dt.datetime.now(dt.UTC),
    )
    missing = progress.missing_days(manifest)
    if missing:  # e.g. another process replaced the day folders meanwhile
        raise RuntimeError(
            f"export of run {params.run_id}: day folder(s) {', '.join(missing)} are missing "
            "after the export; no manifest written"
        )
    storage.write_json(manifest_uri, manifest)
    return manifest


def on_message(
    payload: dict[str, Any],
    settings: Settings,
    warehouse: Warehouse,
    today: dt.date,
    message_id: str = "",
) -> Decision:
    """The nightly message -> the first stage of the run that is not complete.

    Export when this attempt has no (valid) export manifest; otherwise re-emit the
    manifest of the last complete stage (rewriting it: a new generation, hence a new
    storage event) so the next stage runs, or settle LATEST; a complete run is skipped.
    ``"force": true`` starts a new attempt from the export, beside the earlier ones
    (nothing served is removed); its redelivery (same ``message_id``) resumes that
    attempt. A redelivered message while a stage runs re-emits an event whose job ids
    (derived from run id + attempt) find the running job.
    """
    params = run_params(payload, settings, today)
    stage: progress.Stage | None = "export"
    if payload.get("force"):
        params, new = progress.start_forced(settings, params, message_id)
        if not new:
            stage = progress.first_incomplete(settings, params)
    else:
        params = progress.current(settings, params)
        stage = progress.first_incomplete(settings, params)
    manifest_uri = layout.export_manifest(settings.data_uri, params.tenant, params.run_id)
    ids = {"manifest": manifest_uri, "attempt": params.attempt}

    def decision(action: Action, reason: str = "", **extra: Any) -> Decision:
        return Decision(STAGE, action, reason=reason, run_id=params.run_id,
                        tenant=params.tenant, ids={**ids, **extra})

    if stage is None:
        return decision("skipped", "run complete: export manifest, similarities and model exist")
    if stage == "similarities":
        _reemit(manifest_uri, params)
        return decision("resumed", "similarities missing: re-emitted the export manifest")
    if stage == "model":
        sims = layout.similarities_manifest(settings.data_uri, params.tenant, params.run_id)
        _reemit(sims, params)
        return decision("resumed", "model missing: re-emitted the similarity manifest")
    if stage == "latest":
        published = publishing.settle_latest(
            settings.models_root, params.tenant, params.run_id, publish=params.publish
        )
        return decision("resumed", published.reason, latest=published.latest)
    manifest = run_export(
        params, warehouse, settings.events_source, settings.events_schema, settings.data_uri
    )
    return decision(
        "exported",
        rows_valid=manifest["counts"]["rows_valid"],
        rows_rejected=manifest["counts"]["rows_rejected"],
        days=len(manifest["days"]),
    )


def _reemit(uri: str, params: RunParams) -> None:
    """Rewrite a stage's manifest so its storage event fires again; the request's
    ``publish`` reaches the later stages through the manifest's params."""
    manifest = storage.read_json(uri)
    manifest["params"] = {**manifest.get("params", {}), "publish": params.publish}
    storage.write_json(uri, manifest)
