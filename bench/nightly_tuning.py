"""Does the nightly tuning step (simrec.evaluation.nightly) pay off on the shared datasets?

For each dataset (Online Retail, MovieLens, the repeat-heavy shop built from Online
Retail), the ``simrec evaluate`` split (``split.choose_split``, ``auto`` by default), then
the tuning step on the split's training events exactly as a nightly run on the split date
would (``tune_holdout_days`` = ``--holdout-days``, the engine's grid), and the configured
(default) and the tuned models scored on the test split, with the paired bootstrap
interval of tuned minus defaults. Both are measured in the same run on the same users.

Usage: ``python bench/nightly_tuning.py [--datasets or,ml,repeat] [--holdout-days 14]
[--engine local|spark] [--protocol auto|date|per-user] [--max-users N]``. Writes
``.bench/nightly_tuning.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results  # noqa: E402
from quality_levers import shared_datasets  # noqa: E402

from simrec.core.params import DEFAULTS  # noqa: E402
from simrec.evaluation import nightly  # noqa: E402
from simrec.evaluation.evaluate import Evaluator  # noqa: E402
from simrec.evaluation.split import choose_split  # noqa: E402


def run_dataset(name: str, events: Any, args: argparse.Namespace) -> dict[str, Any]:
    split, why = choose_split(events, args.protocol)
    t0 = time.perf_counter()
    config = DEFAULTS.replace(tune_holdout_days=args.holdout_days)
    tuned, record = nightly.tune(
        split.train, config, split.reference_day, args.engine,
        max_users=args.max_users or nightly.MAX_USERS,
    )  # fmt: skip
    tune_s = time.perf_counter() - t0
    ev = Evaluator(split, k=10, max_users=args.max_users, seed=0)
    test = {"defaults": ev.evaluate(config)["metrics"], "tuned": ev.evaluate(tuned)["metrics"]}
    diff = ev.compare(tuned, config)["ndcg"]
    return {
        "dataset": name, "protocol": why, "users_scored": ev.info["users_evaluated"],
        "tuning": {k: v for k, v in record.items() if k != "candidates"},
        "candidates": record["candidates"], "tune_s": round(tune_s, 1),
        "test": test, "test_tuned_minus_defaults": diff,
    }  # fmt: skip


def markdown(results: list[dict[str, Any]]) -> str:
    out = ["| dataset | tuning | chosen | validation NDCG@10 defaults -> chosen | test NDCG@10 "
           "defaults | tuned | tuned - defaults (95% CI) | tuning s |",
           "|---|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in results:
        t, d = r["tuning"], r["test_tuned_minus_defaults"]
        changes = ", ".join(f"{k}={v:g}" for k, v in t["chosen"]["changes"].items()) or "-"
        val = (f"{t['validation']['configured']['ndcg']:.4f} -> "
               f"{t['validation']['metrics']['ndcg']:.4f}") if t["validation"] else "-"  # fmt: skip
        ci = "-" if d["low"] is None else (
            f"{d['difference']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"
        )
        out.append(
            f"| {r['dataset']} ({r['users_scored']:,} users; {r['protocol']}) | {t['status']}: "
            f"{t['reason']} | {changes} | {val} | {r['test']['defaults']['ndcg']:.4f} | "
            f"{r['test']['tuned']['ndcg']:.4f} | {ci} | {r['tune_s']} |"
        )
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="or,ml,repeat")
    ap.add_argument("--holdout-days", type=int, default=14)
    ap.add_argument("--engine", default="local", choices=nightly.ENGINES)
    ap.add_argument("--protocol", default="auto", choices=["auto", "date", "per-user"])
    ap.add_argument("--max-users", type=int)
    args = ap.parse_args()
    results = []
    for label, events in shared_datasets(args.datasets.split(",")):
        print(f"{label} ...", flush=True)
        results.append(run_dataset(label, events, args))
        print(markdown(results[-1:]), flush=True)
    write_results("nightly_tuning", {"args": vars(args), "results": results}, markdown(results))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
