"""The nightly request (Scheduler -> Pub/Sub -> export) turned into a run's parameters."""

from __future__ import annotations

import datetime as dt
from typing import Any

from simrec.config import Settings
from simrec.core import layout, tenancy
from simrec.core.runs import RunParams
from simrec.stages.cloudevents import BadEvent

#: Model parameters a request may set, with their types (the rest are the deployment's).
MODEL_FIELDS: dict[str, type] = {"threshold": float, "top_k": int, "seed": int}
#: How a request asks to carry the run out: ``publish`` reaches RunParams, ``force`` is
#: read by the export stage.
CONTROL_FIELDS = ("force", "publish")
_ALLOWED = {"tenant", "date", "window_days", *MODEL_FIELDS, *CONTROL_FIELDS}


def run_params(payload: dict[str, Any], settings: Settings, today: dt.date) -> RunParams:
    """Payload fields override the deployment's settings; ``date`` defaults to today (UTC).

    The run covers the ``window_days`` days before ``date``.
    """
    unknown = set(payload) - _ALLOWED
    if unknown:
        raise BadEvent(f"unknown field(s) in request: {', '.join(sorted(unknown))}")

    def get(name: str, kind: type, default: Any) -> Any:
        value = payload.get(name, default)
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise BadEvent(f"field {name!r} must be {kind.__name__}, got {value!r}") from None

    try:
        date = dt.date.fromisoformat(str(payload["date"])) if payload.get("date") else today
    except ValueError:
        raise BadEvent(f"field 'date' must be YYYY-MM-DD, got {payload['date']!r}") from None
    tenant = get("tenant", str, settings.tenant)
    try:
        tenancy.check_tenant(tenant)
    except layout.BadName as exc:
        raise BadEvent(str(exc)) from None
    window_days = get("window_days", int, settings.window_days)
    if not 1 <= window_days <= 3650:
        raise BadEvent("field 'window_days' must be between 1 and 3650")
    overrides = {
        name: get(name, kind, getattr(settings.model, name))
        for name, kind in MODEL_FIELDS.items()
        if name in payload
    }
    try:
        model = settings.model.replace(**overrides)
    except ValueError as exc:  # ModelParams's own message names the field
        raise BadEvent(f"field {str(exc).split()[0]!r}: {exc}") from None
    for name in CONTROL_FIELDS:
        if not isinstance(payload.get(name, False), bool):
            raise BadEvent(f"field {name!r} must be true or false, got {payload[name]!r}")
    return RunParams(
        tenant=tenant, date=date, window_days=window_days, model=model,
        publish=bool(payload.get("publish", False)),
    )
