"""The nightly request (Scheduler -> Pub/Sub -> export) turned into a run's parameters."""

from __future__ import annotations

import datetime as dt
from typing import Any

from simrec.config import Settings
from simrec.core import layout
from simrec.core.runs import RunParams
from simrec.stages.cloudevents import BadEvent

_ALLOWED = {"tenant", "date", "window_days", "threshold", "top_k", "seed", "force", "publish"}
#: How a request asks to carry the run out (read by the export stage, not run_params).
CONTROL_FIELDS = ("force", "publish")


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
        layout.check_name(tenant, "field 'tenant'")
    except layout.BadName as exc:
        raise BadEvent(str(exc)) from None
    window_days = get("window_days", int, settings.window_days)
    threshold = get("threshold", float, settings.threshold)
    top_k = get("top_k", int, settings.top_k)
    if not 1 <= window_days <= 3650:
        raise BadEvent("field 'window_days' must be between 1 and 3650")
    if not 0 <= threshold <= 1:
        raise BadEvent("field 'threshold' must be between 0 and 1")
    if not 1 <= top_k <= 1000:
        raise BadEvent("field 'top_k' must be between 1 and 1000")
    for name in CONTROL_FIELDS:
        if not isinstance(payload.get(name, False), bool):
            raise BadEvent(f"field {name!r} must be true or false, got {payload[name]!r}")
    return RunParams(
        publish=bool(payload.get("publish", False)),
        tenant=tenant,
        date=date,
        window_days=window_days,
        threshold=threshold,
        top_k=top_k,
        seed=get("seed", int, settings.seed),
        max_items_per_user=settings.max_items_per_user,
        min_items_per_user=settings.min_items_per_user,
        weights=settings.weights,
        half_life_days=settings.half_life_days,
        user_weighting=settings.user_weighting,
        user_alpha=settings.user_alpha,
        shrinkage=settings.shrinkage,
    )
