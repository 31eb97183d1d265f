"""``simrec evaluate`` and ``simrec tune``: parsers and commands (registered by simrec.cli).

The model's settings come from ``SIMREC_*`` (simrec.config.Settings), as for a run; the
flags choose the split and the protocol.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from simrec.config import Settings


def _out() -> Console:
    """stdout, at least 120 columns wide so the metric tables fit when piped."""
    return Console(width=max(120, Console().width))


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _thresholds(text: str) -> list[float]:
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not values or any(not 0 <= t <= 1 for t in values):
        raise argparse.ArgumentTypeError("thresholds must be numbers in [0, 1]")
    return values


def _split_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--events", required=True, help="events file/folder: CSV, CSV.gz or Parquet")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--holdout-days", type=_positive, help="hold out the last N days (30)")
    group.add_argument("--split-date", type=_date, help="hold out this day and after")
    p.add_argument(
        "--window-days", type=_positive,
        help="training days before the split (default: SIMREC_WINDOW_DAYS)",
    )
    p.add_argument("--all-history", action="store_true", help="train on every day before it")
    p.add_argument("--k", type=_positive, default=10, help="recommendations per user")
    p.add_argument("--max-users", type=_positive, help="evaluate a seeded sample of users")
    p.add_argument("--query-items", type=_positive, default=20, help="items per user query")
    p.add_argument("--seed", type=int, default=0, help="seed of the user sample / search")


def _prepare(
    args: argparse.Namespace, console: Console, protocol: str = "date"
) -> tuple[Any, Any, Any, Settings]:
    from simrec.evaluation.events import load_events
    from simrec.evaluation.split import choose_split

    settings = Settings()
    with console.status(f"reading {args.events}"):
        events, counts = load_events(
            str(Path(args.events).resolve()), settings.events_schema, settings.export_rules
        )
    if counts["dropped"]:
        console.print(f"dropped {counts['dropped']:,} of {counts['rows']:,} invalid rows")
    window = None if args.all_history else (args.window_days or settings.window_days)
    holdout = None if args.split_date else (args.holdout_days or 30)
    split, why = choose_split(
        events,
        protocol,
        holdout_days=holdout,
        split_date=args.split_date,
        window_days=window,
        holdout_events=getattr(args, "holdout_events", 1),
    )
    console.print(f"protocol: {why}")
    return events, split, settings.model, settings


def _metrics_table(
    title: str,
    rows: dict[str, dict[str, float]],
    k: int,
    extra=None,
    intervals: dict[str, dict[str, list]] | None = None,
) -> Table:
    """One row per model; with ``intervals``, the NDCG's bootstrap interval beside it."""
    from simrec.evaluation.report import METRIC_COLUMNS, format_interval

    table = Table(title=f"{title} (metrics @{k})")
    table.add_column("model", no_wrap=True)
    short = {"hit_rate": "hit", "precision": "prec", "coverage": "cov", "mean_popularity": "pop"}
    for c in METRIC_COLUMNS:
        table.add_column(short.get(c, c), justify="right")
        if intervals is not None and c == "ndcg":
            table.add_column("ndcg 95% CI", justify="right", no_wrap=True)
    if extra:
        table.add_column(extra[0], justify="right")
    for name, m in rows.items():
        cells = []
        for c in METRIC_COLUMNS:
            cells.append(f"{m[c]:.4f}")
            if intervals is not None and c == "ndcg":
                cells.append(format_interval(intervals.get(name, {}).get("ndcg")))
        if extra:
            value = extra[1].get(name)
            cells.append("-" if value is None else f"{value:,}")
        table.add_row(name, *cells)
    return table


def _held_out(split: dict[str, Any]) -> str:
    """What the split holds out, for a table title."""
    if split.get("protocol") == "per-user":
        return f"each user's last {split['holdout_events']} event(s) held out"
    return f"held out from {split['split_date']}"


def comparison_line(result: dict[str, Any]) -> str:
    """The paired comparison of the configured model with the best peer, in one line."""
    from simrec.evaluation.metrics import interval_side
    from simrec.evaluation.report import format_interval

    c = result["comparison"]
    d = c["differences"]["ndcg"]
    side = interval_side(d["low"], d["high"]) or "no interval"
    return (
        f"configured - best peer ({c['best_peer']}): ndcg@{result['k']} "
        f"{d['difference']:+.4f}, {c['level']:.0%} interval "
        f"{format_interval([d['low'], d['high']])} "
        f"({side}; paired bootstrap over users, {c['resamples']:,} resamples, seed {c['seed']})"
    )


def cmd_evaluate(args: argparse.Namespace) -> int:
    from simrec.evaluation.evaluate import DEFAULT_THRESHOLDS, run_evaluation
    from simrec.evaluation.report import render

    console = Console(stderr=True)
    _, split, config, settings = _prepare(args, console, args.protocol)
    console.print(f"split: {json.dumps(split.describe())}")
    with console.status("evaluating") as status:
        result = run_evaluation(
            split,
            config,
            k=args.k,
            thresholds=args.thresholds or DEFAULT_THRESHOLDS,
            query_items=args.query_items,
            max_users=args.max_users,
            seed=args.seed,
            engine=settings.engine,
            progress=lambda msg: status.update(f"evaluating: {msg}"),
        )
    result["events"] = str(args.events)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(json.dumps(result, indent=2, sort_keys=True))
    (out / "report.html").write_text(render(result), encoding="utf-8")
    models = result["models"]
    _out().print(
        _metrics_table(
            f"{result['protocol']['users_evaluated']:,} users, " + _held_out(result["split"]),
            {name: m["metrics"] for name, m in models.items()},
            args.k,
            ("emitted pairs", {name: m.get("emitted_pairs") for name, m in models.items()}),
            {name: m.get("intervals", {}) for name, m in models.items()},
        )
    )
    for name, reason in result["skipped_peers"].items():
        _out().print(f"peer {name} skipped: {reason}")
    _out().print(comparison_line(result))
    if result["tuning"] is not None:
        from simrec.evaluation.nightly import describe

        _out().print(f"nightly tuning: {describe(result['tuning'])}")
    _out().print(f"wrote {out / 'evaluation.json'} and {out / 'report.html'}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from simrec.evaluation.tune import tune

    console = Console(stderr=True)
    events, split, config, settings = _prepare(args, console)
    window = None if args.all_history else (args.window_days or settings.window_days)
    with console.status("tuning") as status:
        result = tune(
            events,
            split,
            config,
            window_days=window,
            trials=args.trials,
            timeout_s=args.timeout,
            k=args.k,
            seed=args.seed,
            max_users=args.max_users,
            query_items=args.query_items,
            progress=lambda msg: status.update(f"tuning: {msg}"),
        )
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "tune.json").write_text(json.dumps(result, indent=2, sort_keys=True))
    best = result["best_config"]
    table = Table(title=f"best of {result['trials']} trials (validation ndcg@{args.k} "
                        f"{result['best_validation_ndcg']:.4f})")
    table.add_column("setting")
    table.add_column("value", justify="right")
    for key, value in {**{f"weight_{a}": v for a, v in best["weights"].items()},
                       **{k: v for k, v in best.items() if k != "weights"}}.items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    _out().print(table)
    _out().print(_metrics_table("held-out (test split) metrics", result["held_out"], args.k))
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``evaluate`` and ``tune`` to the ``simrec`` sub-command parsers."""
    p = sub.add_parser("evaluate", help="offline evaluation on a temporal split, with a report")
    _split_args(p)
    p.add_argument(
        "--protocol", choices=["auto", "date", "per-user"], default="auto",
        help="date split, per-user split (each user's last events held out), or auto: "
        "the date split unless it scores fewer than 1000 users (simrec.evaluation.split)",
    )
    p.add_argument(
        "--holdout-events", type=_positive, default=1,
        help="events held out per user by the per-user split (1)",
    )
    p.add_argument(
        "--thresholds", type=_thresholds, help="DIMSUM thresholds to compare (0,0.05,0.1,0.2,0.5)"
    )
    p.add_argument("--out", default="evaluation", help="folder for evaluation.json, report.html")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("tune", help="search the best settings on a validation split (optuna)")
    _split_args(p)
    p.add_argument("--trials", type=_positive, default=30, help="most trials")
    p.add_argument("--timeout", type=float, help="stop the search after this many seconds")
    p.add_argument("--out", help="folder for tune.json")
    p.set_defaults(func=cmd_tune)
