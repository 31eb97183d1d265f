"""``simrec run``: one nightly run on this machine, with a progress display and a summary."""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudevents.http import CloudEvent
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from simrec import publishing, storage
from simrec.config import Settings
from simrec.core import baskets, layout, tenancy
from simrec.core.runs import RunParams
from simrec.local.dispatcher import NIGHTLY_TOPIC, Delivery, LocalCloud
from simrec.stages import jobs
from simrec.stages import progress as run_progress
from simrec.stages.requests import run_params
from simrec.storage import snapshots

SUMMARY_NAME = "summary.json"

_STAGES = {
    "export": "export           BigQuery SQL on DuckDB -> day partitions",
    "cluster": "cluster          DIMSUM similarity job",
    "dataflow_launch": "dataflow_launch  Beam load -> serving model",
}


@dataclass(frozen=True)
class Workdir:
    """A local deployment: the bucket folder, logs and the run summary."""

    root: Path

    @property
    def bucket(self) -> Path:
        return self.root / "bucket"

    @property
    def summary(self) -> Path:
        return self.root / SUMMARY_NAME

    @property
    def log(self) -> Path:
        return self.root / "logs" / "functions.jsonl"


def local_settings(workdir: Workdir, **overrides) -> Settings:
    """Settings of the embedded default in a work folder; CLI flags override env."""
    values = {k: v for k, v in overrides.items() if v is not None}
    values.setdefault("reports_uri", str(workdir.root))  # summary.json, evaluation/ (/ui)
    return Settings(backend="local", data_uri=str(workdir.bucket), models_uri="", **values)


def _relevant(function: str, event: CloudEvent) -> bool:
    """Whether a delivery is the one that makes ``function`` act (for the display)."""
    if function == "export":
        return True
    wanted = {"cluster": "export", "dataflow_launch": "similarities"}.get(function)
    if wanted is None:
        return False
    kind = layout.classify_object(str(event.get("subject", "")).removeprefix("objects/"))
    return kind is not None and kind[0] == wanted


class RunLocked(RuntimeError):
    """Another run of the same tenant holds the work folder."""


@contextmanager
def run_lock(settings: Settings, tenant: str) -> Iterator[None]:
    """Serialise runs per tenant and work folder: a second one is refused at once.

    ``flock`` on ``<bucket>/.locks/<tenant>.lock``: released by the kernel when the
    holder exits, even killed, so a crash never leaves a stale lock; it is per open
    file, so it excludes a second run in the same process as well as in another one.
    """
    path = Path(settings.data_uri) / ".locks" / f"{tenancy.check_tenant(tenant)}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLocked(
                f"another run of tenant {tenant!r} is using {settings.data_uri} (lock {path}); "
                "wait for it to end, then run again"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_pipeline(
    settings: Settings,
    params: RunParams,
    console: Console | None = None,
    force: bool = False,
    publish: bool = False,
) -> dict[str, Any]:
    """Publish the nightly message and let the local cloud run the chain.

    The chain resumes at the run's first incomplete stage; ``force`` recomputes it as a
    new attempt beside the served model (never deleting it); ``publish`` serves the run
    even when it is an older night than the served model.
    """
    with run_lock(settings, params.tenant):
        return _run_chain(settings, params, console or Console(stderr=True), force, publish)


def _run_chain(
    settings: Settings, params: RunParams, console: Console, force: bool, publish: bool
) -> dict[str, Any]:
    timings: dict[str, float] = {}
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        tasks = {
            name: progress.add_task(text, total=1, start=False, status="waiting")
            for name, text in _STAGES.items()
        }

        def on_deliver(function: str, event: CloudEvent) -> None:
            if _relevant(function, event):
                progress.start_task(tasks[function])
                progress.update(tasks[function], status="running")

        def on_done(delivery: Delivery) -> None:
            action = getattr(delivery.result, "action", "")
            if action and action != "ignored" and delivery.function in tasks:
                # A job's end is delivered to the function that launched it: its time adds up.
                seconds = timings.get(delivery.function, 0.0) + delivery.seconds
                timings[delivery.function] = round(seconds, 3)
                if jobs.retried(delivery.result):
                    action = f"retried after attempt {delivery.result.ids.get('attempt')} failed"
                progress.update(tasks[delivery.function], completed=1, status=action)

        cloud = LocalCloud(settings, on_deliver=on_deliver, on_done=on_done)
        started = time.perf_counter()
        # The Scheduler's payload; everything else comes from the deployment's settings.
        deliveries = cloud.publish(
            NIGHTLY_TOPIC, nightly_payload(params.tenant, params.date, force, publish)
        )
        timings["total"] = round(time.perf_counter() - started, 3)
        for name, task in tasks.items():
            if name not in timings:  # never triggered: its input did not change
                progress.update(task, completed=1, status="not triggered")
    # The run's outcome is its final one: a failed attempt that was retried is not it.
    failed = [
        d for d in deliveries.acted()
        if getattr(d.result, "action", "") == "failed" and not jobs.retried(d.result)
    ]  # fmt: skip
    if failed:
        reasons = "; ".join(f"{d.function}: {d.result.reason}" for d in failed)
        raise RuntimeError(f"the run failed: {reasons}")
    # The attempt the export stage chose (a forced rerun is a new one).
    params = run_progress.current(settings, dataclasses.replace(params, publish=publish))
    return build_summary(settings, params, timings, deliveries.acted())


def nightly_payload(
    tenant: str, date: dt.date, force: bool = False, publish: bool = False
) -> dict[str, Any]:
    """The nightly message (Scheduler, ``simrec run``, ``simrec cloud rerun``); everything
    else comes from the deployment's settings."""
    payload: dict[str, Any] = {"tenant": tenant, "date": date.isoformat()}
    if force:
        payload["force"] = True
    if publish:
        payload["publish"] = True
    return payload


def build_summary(
    settings: Settings, params: RunParams, timings: dict[str, float], acted: list[Delivery]
) -> dict[str, Any]:
    """Rows read and rejected, users, items, pairs, model version, stage timings."""
    export = storage.read_json(
        layout.export_manifest(settings.data_uri, params.tenant, params.run_id)
    )
    sims_uri = layout.similarities_manifest(settings.data_uri, params.tenant, params.run_id)
    sims = storage.read_json(sims_uri) if storage.exists(sims_uri) else {}
    latest = snapshots.latest_version(settings.models_root, params.tenant)
    model_meta = publishing.version_metadata(settings.models_root, params.tenant, params.run_id)
    version = params.run_id if model_meta is not None else None
    model_meta = model_meta or {}
    counts = sims.get("counts", {})
    return {
        "run_id": params.run_id,
        "tenant": params.tenant,
        "date": params.date.isoformat(),
        "window": [params.start_date.isoformat(), params.end_date.isoformat()],
        "params": params.to_json(),
        "rows": export["counts"],
        "future_rows": export.get("future", {}),
        "days_with_events": len(export.get("days", [])),
        "users": counts.get("users"),
        "users_kept": counts.get("users_kept"),
        "items": counts.get("items"),
        "cells": counts.get("cells"),
        "emitted_pairs": counts.get("emitted_pairs"),
        "pairs": counts.get("pairs"),
        "neighbor_rows": counts.get("neighbor_rows"),
        "bought_together": sims.get("bought_together"),  # simrec.core.baskets.summary
        "engine": sims.get("engine"),
        "tuning": sims.get("tuning"),
        "model_version": version,
        "attempt": params.attempt,
        "latest": latest,
        "model_items": model_meta.get("counts", {}).get("items"),
        "rejects_uri": export.get("rejects_uri"),
        "stage_timings_s": timings,
        "job_timings_s": sims.get("timings", {}),
        "retries": [
            {key: d.result.ids.get(key) for key in ("stage", "job_id", "attempt", "error",
                                                   "retry_job_id")}  # fmt: skip
            for d in acted
            if jobs.retried(d.result)
        ],
        "decisions": [
            {
                "function": d.function,
                "stage": getattr(d.result, "stage", None),  # a job's end: jobs.STAGE
                "action": getattr(d.result, "action", None),
                "reason": getattr(d.result, "reason", None),
                "seconds": round(d.seconds, 3),
            }
            for d in acted
        ],
    }


def failure_summary(settings: Settings, params: RunParams, error: str) -> dict[str, Any]:
    """The summary of a failed run: the error, and the export's counts when it got that
    far (an export without valid events leaves them in its failure report). The counts
    are those of the night's latest attempt: the one a forced rerun started."""
    from simrec.stages.export import failed_report_uri

    params = run_progress.current(settings, params)
    summary: dict[str, Any] = {
        "run_id": params.run_id, "tenant": params.tenant, "date": params.date.isoformat(),
        "window": [params.start_date.isoformat(), params.end_date.isoformat()],
        "params": params.to_json(), "status": "failed", "error": error,
    }  # fmt: skip
    report = failed_report_uri(settings.data_uri, params)
    manifest = layout.export_manifest(settings.data_uri, params.tenant, params.run_id)
    for uri in (report, manifest):
        if storage.exists(uri):
            found = storage.read_json(uri)
            summary.update(rows=found["counts"], rejects_uri=found.get("rejects_uri"))
            break
    return summary


def run_warnings(rows: dict[str, Any], future: dict[str, Any], date_from_data: bool) -> list[str]:
    """What a user should look at although the run went through: a window chosen from
    the data that leaves out most rows, and rows dated in the future."""
    warnings = []
    outside = rows.get("rows_outside", 0)
    if date_from_data and outside * 2 > rows["rows_read"]:
        sides = ", ".join(f"{s['rows']:,} {side} ({s['first']}..{s['last']})"
                          for side, s in rows["outside_window"].items() if s["rows"])  # fmt: skip
        warnings.append(
            f"the window chosen from the data leaves out {outside:,} of {rows['rows_read']:,} "
            f"rows: {sides}; choose the run date with --date YYYY-MM-DD (the window is the "
            "window_days days before it)"
        )
    if future.get("rows"):
        warnings.append(
            f"{future['rows']:,} rows are dated after today (up to {future['last']}): check "
            "the source's clock or timestamp unit; they are left out unless --date covers them"
        )
    return warnings


def print_summary(summary: dict[str, Any], console: Console) -> None:
    rows = summary.get("rows")
    table = Table(title=f"simrec run {summary['run_id']} ({summary['tenant']})", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    table.add_row("window", " .. ".join(summary["window"]))
    if rows is None:
        console.print(table)
        return
    table.add_row("rows read", f"{rows['rows_read']:,}")
    table.add_row("rows valid", f"{rows['rows_valid']:,}")
    rejected = ", ".join(f"{k} {v:,}" for k, v in rows["rejected_by_reason"].items() if v)
    detail = f" ({rejected})" if rejected else ""
    table.add_row("rows rejected", f"{rows['rows_rejected']:,}{detail}")
    if rows.get("rows_ignored"):
        names = ", ".join(f"{k} {v:,}" for k, v in rows["ignored_events"].items())
        table.add_row("rows of ignored events", f"{rows['rows_ignored']:,} ({names})")
    for side, span in rows.get("outside_window", {}).items():
        if span["rows"]:
            table.add_row(f"rows {side} the window",
                          f"{span['rows']:,} ({span['first']} .. {span['last']})")  # fmt: skip
    if summary.get("status") == "failed":
        console.print(table)
        return
    for key in ("users", "users_kept", "items", "cells", "emitted_pairs", "pairs"):
        value = summary.get(key)
        table.add_row(key.replace("_", " "), "-" if value is None else f"{value:,}")
    if summary.get("bought_together"):  # says so when it fell back to days
        table.add_row("bought together", baskets.describe(summary["bought_together"]))
    table.add_row("engine", str(summary.get("engine")))
    from simrec.evaluation.nightly import describe  # pandas: the local extra's

    table.add_row("tuning", describe(summary.get("tuning")))
    table.add_row("model version", str(summary.get("model_version")))
    for retry in summary.get("retries", []):
        table.add_row(
            f"retried {retry['stage']}",
            f"attempt {retry['attempt']} {retry['job_id']} failed -> {retry['retry_job_id']}",
        )
    if summary.get("latest") != summary.get("model_version"):
        table.add_row("served (LATEST)", str(summary.get("latest")))
    for stage, seconds in summary["stage_timings_s"].items():
        table.add_row(f"time {stage}", f"{seconds:.1f} s")
    console.print(table)


def default_run_date(newest_event: dt.date | None, today: dt.date) -> dt.date:
    """The day after the newest event, so a historical file just works."""
    return newest_event + dt.timedelta(days=1) if newest_event else today


def prepare(settings: Settings, date: dt.date) -> RunParams:
    return run_params({"date": date.isoformat()}, settings, today=date)


