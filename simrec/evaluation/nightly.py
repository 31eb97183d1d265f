"""Per-shop tuning in the nightly run (``tune_holdout_days`` > 0; issue 15.4).

The similarity job (either engine, before it computes the window's model) holds out the
window's last ``tune_holdout_days`` days, fits the configured model and each candidate of
:data:`GRID` on the days before them, scores each on the held-out days with the offline
protocol (:class:`simrec.evaluation.evaluate.Evaluator`: the date split, the serving
recommender, NDCG@10 over the held-out users, seeded), and trains on the whole window with
the winner. The choice, every candidate's validation metrics and the winner's bootstrap
interval and paired difference to the configured model are the record :func:`tune`
returns (keys :data:`RECORD_KEYS`), which the similarity manifest, the run summary and
the evaluation report carry under ``tuning``.

Rules, each defined here once:

* The grid changes one quality parameter of the configured model at a time (a small
  grid: one model fit each). Only parameters the run's engine implements: the Spark job
  leaves out :data:`simrec.core.params.LOCAL_ENGINE_ONLY`. ``user_alpha`` only when the
  configured weighting is ``power`` (elsewhere it changes nothing).
* The configured model is candidate 0 and a candidate must beat the best so far
  strictly, so ties keep the configured model (or the earlier candidate): deterministic.
* Too little held-out evidence (no split, or fewer than :data:`MIN_USERS` scored users)
  is not a failure: the record says ``skipped`` and why, and the configured model trains.
  Any other error fails the job, which writes no manifest: the served model stays.
* The run id hashes ``tune_holdout_days`` (a ModelParams field), not the choice: the
  choice is a deterministic function of the window's events and the parameters.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import Any

import numpy as np
import pandas as pd

from simrec.core.params import LOCAL_ENGINE_ONLY, ModelParams
from simrec.core.runs import RunParams
from simrec.evaluation.evaluate import DEFAULT_QUERY_ITEMS, Evaluator
from simrec.evaluation.split import COLUMNS, scored_users, temporal_split

#: ``(parameter, value)`` changes tried, each on its own, against the configured model.
GRID: tuple[tuple[str, float], ...] = (
    ("cell_cap_percentile", 0.0),
    ("cell_cap_percentile", 90.0),
    ("user_alpha", 0.5),
    ("user_alpha", 0.9),
    ("shrinkage", 5.0),
    ("shrinkage", 50.0),
    ("bm25_b", 0.75),
    ("popularity_discount", 0.2),
)
#: The metric the choice is made by, and its cut-off.
METRIC, K = "ndcg", 10
#: Fewest scored held-out users a choice is made on; below, the configured model trains.
MIN_USERS = 50
#: Most held-out users scored (a seeded sample, ``ModelParams.seed``): bounds the cost.
MAX_USERS = 2000
#: The engines a run may use (``Settings.engine``).
ENGINES = ("local", "spark")
TUNED, SKIPPED = "tuned", "skipped"
#: The keys of a tuning record (the manifest's, summary's and report's ``tuning``).
RECORD_KEYS = (
    "status", "reason", "holdout_days", "engine", "metric", "k", "seed", "split",
    "protocol", "candidates", "chosen", "validation", "timings_s",
)  # fmt: skip


def candidates(
    model: ModelParams, engine: str, grid: tuple[tuple[str, float], ...] = GRID
) -> list[tuple[dict[str, float], ModelParams]]:
    """``(changes, params)`` of the configured model (no change) then each grid point the
    engine supports that changes something, in grid order."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    found: list[tuple[dict[str, float], ModelParams]] = [({}, model)]
    for name, value in grid:
        if engine == "spark" and name in LOCAL_ENGINE_ONLY:
            continue
        if name == "user_alpha" and model.user_weighting != "power":
            continue
        if getattr(model, name) == value:
            continue
        found.append(({name: value}, model.replace(**{name: value})))
    return found


def window_events(events: pd.DataFrame) -> pd.DataFrame:
    """A run's exported events (``user_id, sku, action, ts``, UTC) as the protocol's
    ``user_id, sku, action, day`` (the event's UTC day, as the export partitions it)."""
    ts = pd.to_datetime(events["ts"], utc=True).dt.tz_localize(None)
    out = events[["user_id", "sku", "action"]].copy()
    out["day"] = ts.dt.floor("D").astype("datetime64[s]")
    return out[list(COLUMNS)].reset_index(drop=True)


def tune(
    events: pd.DataFrame,
    model: ModelParams,
    end_date: dt.date,
    engine: str,
    *,
    grid: tuple[tuple[str, float], ...] = GRID,
    max_users: int = MAX_USERS,
) -> tuple[ModelParams, dict[str, Any]]:
    """The parameters to train the window with, and the record of how they were chosen.

    ``events``: the window's ``user_id, sku, action, day``; ``end_date``: its last day.
    """
    holdout = model.tune_holdout_days
    if holdout < 1:
        raise ValueError("tuning is off (tune_holdout_days = 0)")
    t0 = time.perf_counter()
    record: dict[str, Any] = dict.fromkeys(RECORD_KEYS)
    record.update(holdout_days=holdout, engine=engine, metric=METRIC, k=K, seed=model.seed,
                  candidates=[], chosen={"changes": {}, "params": model.to_json()})  # fmt: skip
    options = candidates(model, engine, grid)
    try:
        split = temporal_split(events, holdout_days=holdout, end_date=end_date)
        users = scored_users(split)
    except ValueError as exc:  # an empty window or held-out period, nothing before it
        return model, _skipped(record, f"no validation split: {exc}", t0)
    record["split"] = split.describe()
    if users < MIN_USERS:
        return model, _skipped(
            record, f"only {users:,} held-out users to score (< {MIN_USERS:,})", t0
        )
    ev = Evaluator(split, K, DEFAULT_QUERY_ITEMS, max_users, seed=model.seed)
    record["protocol"] = ev.info
    best = 0
    for i, (changes, params) in enumerate(options):
        scores = ev.evaluate(params)["metrics"]
        record["candidates"].append({"changes": changes, "metrics": scores})
        if scores[METRIC] > record["candidates"][best]["metrics"][METRIC]:
            best = i
    changes, chosen = options[best]
    record.update(
        status=TUNED,
        reason=f"best {METRIC}@{K} of {len(options)} candidate(s)",
        chosen={"changes": changes, "params": chosen.to_json()},
        validation={
            "metrics": record["candidates"][best]["metrics"],
            "intervals": ev.intervals(chosen),
            "configured": record["candidates"][0]["metrics"],
            "vs_configured": ev.compare(chosen, model)[METRIC],
        },
        timings_s=round(time.perf_counter() - t0, 3),
    )
    return chosen, record


def tuned_run(
    exported: pd.DataFrame, params: RunParams, engine: str
) -> tuple[RunParams, dict[str, Any] | None]:
    """The similarity job's step: the run's parameters with the chosen model, and the
    record (``None``, parameters unchanged, when tuning is off). ``exported``: the
    window's events as exported (``user_id, sku, action, ts``)."""
    if not params.model.tune_holdout_days:
        return params, None
    model, record = tune(window_events(exported), params.model, params.end_date, engine)
    return dataclasses.replace(params, model=model), record


def _skipped(record: dict[str, Any], reason: str, t0: float) -> dict[str, Any]:
    record.update(status=SKIPPED, reason=reason, timings_s=round(time.perf_counter() - t0, 3))
    return record


def describe(record: dict[str, Any] | None) -> str:
    """The record in one line (the run summary's ``tuning`` row)."""
    if not record:
        return "off"
    if record["status"] != TUNED:
        return f"{record['status']}: {record['reason']}; configured parameters"
    changes = record["chosen"]["changes"]
    chosen = ", ".join(f"{k}={v:g}" for k, v in changes.items()) or "configured parameters"
    v = record["validation"]
    d = v["vs_configured"]
    low, high = (np.nan if x is None else x for x in (d["low"], d["high"]))
    return (
        f"{chosen} ({len(record['candidates'])} candidates, last {record['holdout_days']} "
        f"day(s)): {METRIC}@{record['k']} {v['metrics'][METRIC]:.4f} vs configured "
        f"{v['configured'][METRIC]:.4f}, difference {d['difference']:+.4f} "
        f"[{low:+.4f}, {high:+.4f}]"
    )
