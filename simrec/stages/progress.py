"""How far a night's run got: its attempts and the first stage that is not complete.

A run is complete stage by stage, each stage's output signalled by an object written
last: the export manifest (and the day folders it lists), the similarity manifest, the
model version's ``metadata.json``, and LATEST when the publishing policy says it should
name that version. The export handler asks here where to resume, so the documented
recovery (publish the nightly message again) re-runs exactly what is missing, and
``force`` starts a new attempt beside the earlier ones instead of deleting them.

Attempt ``n`` of a night is the run id ``attempt_id(night_id, n)``: its own manifests,
similarity output, model version and job ids. A forced attempt is recorded by an
``_ATTEMPT.json`` marker in its export folder as soon as it starts, so a plain rerun after
a crash resumes that attempt.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Literal

from simrec import publishing, storage
from simrec.config import Settings
from simrec.core import layout
from simrec.core.runs import RunParams, parse_attempt

ATTEMPT_NAME = "_ATTEMPT.json"

Stage = Literal["export", "similarities", "model", "latest"]


def attempts(settings: Settings, params: RunParams) -> list[int]:
    """The attempts of ``params``' night that have started, ascending."""
    fs, root = storage.filesystem(layout.join(settings.data_uri, "exports", params.tenant, "runs"))
    try:
        names = [n.rstrip("/").rsplit("/", 1)[-1] for n in fs.ls(root, detail=False)]
    except FileNotFoundError:
        return []
    found = {parse_attempt(name, params.night_id) for name in names}
    return sorted(a for a in found if a is not None)


def current(settings: Settings, params: RunParams) -> RunParams:
    """``params`` at the night's latest started attempt (0 when none started yet)."""
    started = attempts(settings, params)
    return dataclasses.replace(params, attempt=started[-1] if started else 0)


def start_forced(
    settings: Settings, params: RunParams, request_id: str = ""
) -> tuple[RunParams, bool]:
    """``(params at a new attempt, True)``, its marker written at once; or, when the latest
    attempt was started by this same request (a redelivered message: same
    ``request_id``), ``(params at that attempt, False)``, so a redelivery starts nothing new."""
    started = attempts(settings, params)
    if started and request_id:
        last = dataclasses.replace(params, attempt=started[-1])
        try:
            marker = storage.read_json(_marker(settings, last))
        except (FileNotFoundError, ValueError):
            marker = {}
        if marker.get("request_id") == request_id:
            return last, False
    forced = dataclasses.replace(params, attempt=(started[-1] + 1) if started else 1)
    storage.write_json(
        _marker(settings, forced),
        {
            "run_id": forced.run_id,
            "attempt": forced.attempt,
            "request_id": request_id,
            "requested_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    )
    return forced, True


def _marker(settings: Settings, params: RunParams) -> str:
    return layout.join(
        layout.export_run(settings.data_uri, params.tenant, params.run_id), ATTEMPT_NAME
    )


def missing_days(manifest: dict) -> list[str]:
    """Days an export manifest lists whose folder holds no Parquet file."""
    missing = []
    for day in manifest.get("days", []):
        fs, path = storage.filesystem(day["uri"])
        try:
            files = [f for f in fs.ls(path, detail=False) if f.endswith(".parquet")]
        except FileNotFoundError:
            files = []
        if not files:
            missing.append(str(day.get("date")))
    return missing


def first_incomplete(settings: Settings, params: RunParams) -> Stage | None:
    """The first stage of this attempt whose output is missing; None when all is done."""
    export_uri = layout.export_manifest(settings.data_uri, params.tenant, params.run_id)
    try:
        manifest = storage.read_json(export_uri)
    except (FileNotFoundError, ValueError):
        return "export"
    if missing_days(manifest):
        return "export"
    if not storage.exists(
        layout.similarities_manifest(settings.data_uri, params.tenant, params.run_id)
    ):
        return "similarities"
    candidate = publishing.version_metadata(settings.models_root, params.tenant, params.run_id)
    if candidate is None:
        return "model"
    _, served = publishing.current_latest(settings.models_root, params.tenant)
    move, _ = publishing.decide(served, {"version": params.run_id, **candidate}, params.publish)
    return "latest" if move else None
