"""Quality levers against the peers, on each shared dataset, in one run per dataset.

For each dataset (the shared Online Retail and MovieLens files, and a repeat-heavy shop
built from Online Retail: ``simrec.evaluation.split.repeat_heavy``), the ``simrec
evaluate`` protocol with its automatic split rule (``split.choose_split``: the date split
unless it scores fewer than 1000 users, then each user's last event held out), the peers
and every lever below on the same split and users. Printed per model: NDCG@10, its ratio
to the best peer and to popularity, and the paired bootstrap interval of the NDCG
difference (model - best peer, - popularity, - the defaults). Every figure is relative
to peers measured in the same run.

Levers (ModelParams, each off in the defaults; the defaults otherwise):

* ``asym a=..``: asymmetric cosine (``asymmetric_alpha``);
* ``bm25 b=..``: BM25-style user weighting (``bm25_b``, k1 = 1.2), replacing or on top of
  the power user weighting;
* ``pop-discount d=..``: the neighbor's popularity discount (``popularity_discount``);
* ``fill``: empty top-k slots filled with popular items (``popularity_fill``).

Usage: ``python bench/quality_levers.py [--datasets or,ml,repeat] [--max-users N]
[--levers name,..]``. Writes ``.bench/quality_levers.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results  # noqa: E402

from simrec.core.params import DEFAULTS, ModelParams  # noqa: E402
from simrec.evaluation import peers  # noqa: E402
from simrec.evaluation.evaluate import Evaluator  # noqa: E402
from simrec.evaluation.events import load_events  # noqa: E402
from simrec.evaluation.split import REPEAT_ITEMS, choose_split, repeat_heavy  # noqa: E402

DATA = Path("/work/shared/data")
FILES = {"or": "online_retail_uci.csv.gz", "ml": "movielens_latest_small.csv.gz"}

LEVERS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "asym a=0.3": {"asymmetric_alpha": 0.3},
    "asym a=0.4": {"asymmetric_alpha": 0.4},
    "asym a=0.7": {"asymmetric_alpha": 0.7},
    "bm25 b=0.75 (no power)": {"bm25_b": 0.75, "user_weighting": "none"},
    "bm25 b=0.75 + power": {"bm25_b": 0.75},
    "bm25 b=0.3 + power": {"bm25_b": 0.3},
    "pop-discount d=0.1": {"popularity_discount": 0.1},
    "pop-discount d=0.3": {"popularity_discount": 0.3},
    "pop-discount d=0.5": {"popularity_discount": 0.5},
    "bm25 b=0.75 k1=0.5 + power": {"bm25_b": 0.75, "bm25_k1": 0.5},
    "bm25 b=0.75 k1=5 + power": {"bm25_b": 0.75, "bm25_k1": 5.0},
    "bm25 b=0.75 + power + pop-discount d=0.1": {"bm25_b": 0.75, "popularity_discount": 0.1},
    "fill": {"popularity_fill": 1},
    "top_k=20 (existing param)": {"top_k": 20},
}


def shared_datasets(
    names: list[str], repeat_items: int = REPEAT_ITEMS
) -> Iterator[tuple[str, pd.DataFrame]]:
    """``(label, events)`` of each named shared dataset present (``or``, ``ml``, and
    ``repeat``: the repeat-heavy shop built from Online Retail); absent ones are said."""
    cache: dict[str, pd.DataFrame] = {}
    for name in names:
        source = "or" if name == "repeat" else name
        path = DATA / FILES[source]
        if not path.exists():
            print(f"{name}: {path} absent, skipped")
            continue
        if source not in cache:
            cache[source] = load_events(str(path))[0]
        events = repeat_heavy(cache[source], repeat_items) if name == "repeat" else cache[source]
        yield {"or": "Online Retail", "ml": "MovieLens", "repeat": "repeat-heavy shop "
               f"(Online Retail purchases of its {repeat_items} most-bought items)"}[name], events


def repeat_share(events: pd.DataFrame) -> float:
    """Share of (user, item, day) interactions whose item the user had on an earlier day."""
    cells = events.drop_duplicates(["user_id", "sku", "day"])
    first = cells.groupby(["user_id", "sku"])["day"].transform("min")
    return float((cells["day"] > first).mean())


def run_dataset(
    name: str, events: pd.DataFrame, levers: list[str], max_users: int | None, protocol: str
) -> dict[str, Any]:
    split, why = choose_split(events, protocol)
    t0 = time.perf_counter()
    ev = Evaluator(split, k=10, query_items=20, max_users=max_users, seed=0)
    keys: dict[str, ModelParams | str] = {}
    kinds: dict[str, str] = {}
    ndcg: dict[str, float] = {}
    for peer in peers.default_peers(0):
        if isinstance(peer, peers.SkippedPeer):
            print(f"  peer {peer.name} skipped: {peer.reason}")
            continue
        ndcg[peer.name] = ev.evaluate_peer(peer, DEFAULTS.weights)["metrics"]["ndcg"]
        keys[peer.name], kinds[peer.name] = peer.name, "peer"
    plain = DEFAULTS.plain()
    ndcg["cosine"] = ev.evaluate(plain)["metrics"]["ndcg"]
    keys["cosine"], kinds["cosine"] = plain, "peer"
    for lever in levers:
        config = DEFAULTS.replace(**LEVERS[lever])
        ndcg[lever] = ev.evaluate(config)["metrics"]["ndcg"]
        keys[lever], kinds[lever] = config, "lever"
    best = max((n for n in ndcg if kinds[n] == "peer"), key=lambda n: ndcg[n])
    rows = []
    for model, value in ndcg.items():
        row: dict[str, Any] = {"model": model, "kind": kinds[model], "ndcg": value,
                               "vs_best": value / ndcg[best] if ndcg[best] else None,
                               "vs_popularity": value / ndcg["popularity"]
                               if ndcg["popularity"] else None}  # fmt: skip
        if kinds[model] == "lever":
            for tag, other in (("best", best), ("pop", "popularity"), ("def", "defaults")):
                if other in keys and other != model:
                    d = ev.compare(keys[model], keys[other])["ndcg"]
                    row[f"diff_{tag}"] = [d["difference"], d["low"], d["high"]]
        rows.append(row)
    return {
        "dataset": name,
        "protocol": why,
        "split": split.describe(),
        "users_scored": ev.info["users_evaluated"],
        "eligible_users": ev.info["eligible_users"],
        "repeat_share": repeat_share(events),
        "best_peer": best,
        "rows": rows,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _interval(d: list | None) -> str:
    if not d:
        return ""
    diff, low, high = d
    return f"{diff:+.4f} [{low:+.4f}, {high:+.4f}]"


def markdown(results: list[dict[str, Any]]) -> str:
    out = []
    for r in results:
        out.append(
            f"### {r['dataset']}: {r['users_scored']:,} users scored ({r['protocol']}); "
            f"repeat share {r['repeat_share']:.0%}; best peer {r['best_peer']}\n"
        )
        out.append("| model | NDCG@10 | / best peer | / popularity | - best peer (95% CI) "
                   "| - popularity (95% CI) | - defaults (95% CI) |")  # fmt: skip
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        for row in r["rows"]:
            out.append(
                f"| {row['model']} | {row['ndcg']:.4f} | {row['vs_best'] or 0:.3f} | "
                f"{row['vs_popularity'] or 0:.3f} | {_interval(row.get('diff_best'))} | "
                f"{_interval(row.get('diff_pop'))} | {_interval(row.get('diff_def'))} |"
            )
        out.append("")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="or,ml,repeat")
    ap.add_argument("--out", default="quality_levers", help="name of the .bench result files")
    ap.add_argument("--levers", default=",".join(LEVERS))
    ap.add_argument("--max-users", type=int)
    ap.add_argument("--protocol", default="auto", choices=["auto", "date", "per-user"])
    ap.add_argument("--repeat-items", type=int, default=REPEAT_ITEMS,
                    help="catalogue of the repeat-heavy shop")
    args = ap.parse_args()
    levers = [lev for lev in args.levers.split(",") if lev]
    unknown = set(levers) - set(LEVERS)
    if unknown:
        raise SystemExit(f"unknown levers {sorted(unknown)}; known: {', '.join(LEVERS)}")
    results = []
    for label, events in shared_datasets(args.datasets.split(","), args.repeat_items):
        print(f"{label} ...", flush=True)
        results.append(run_dataset(label, events, levers, args.max_users, args.protocol))
        print(markdown(results[-1:]), flush=True)
    write_results(args.out, {"results": results}, markdown(results))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
