"""How much DIMSUM samples, and what it costs in quality, per sampling variant.

For each dataset (the shared MovieLens and Online Retail files when present, the
generated M shop) and each variant below, at DIMSUM thresholds 0.1 .. 1: emitted pairs /
exact co-occurrences, NDCG@10 against the same variant's exact model (``simrec evaluate``
protocol, same split and users) and recall@10 of the exact top-10 neighbours.

Variants (the default model's parameters otherwise):

* ``max-entry``: the former rule (``cell_cap_percentile=0``: DIMSUM divides by the
  largest entry);
* ``cap pNN``: the matrix rule's cell cap at the NN-th percentile (50: the default);
* ``wcap pNN`` (prototype): the weighted entries (after user weighting) capped at their NN-th
  percentile and divided by it: light users' cells become 1, heavy users' stay below;
* ``entry-prop``: a prototype of per-entry sampling, ``p_uj = min(1, sqrt(gamma) a_uj /
  c_j)`` and value ``a_uj / (p_uj c_j)``: every sampled product is at most ``1/gamma``
  whatever the entries' scale, so no [0, 1] scaling is needed and light cells (heavy,
  down-weighted users) are sampled more. Prototype only: the users behind a pair (for
  shrinkage) use each column's mean keep probability.

Usage: ``python bench/dimsum_sampling.py [--datasets ml,or,M] [--variants ...]
[--max-users N] [--kernel-timing]``; ``THRESHOLDS=0.1,0.5`` overrides the thresholds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simrec.core import dimsum, similarity  # noqa: E402
from simrec.core import matrix as matrix_rule  # noqa: E402
from simrec.core.matrix import capped_cells, cell_cap  # noqa: E402
from simrec.core.params import ModelParams  # noqa: E402
from simrec.evaluation.evaluate import Evaluator  # noqa: E402
from simrec.evaluation.events import load_events  # noqa: E402
from simrec.evaluation.split import temporal_split  # noqa: E402

DATA = Path("/work/shared/data")
THRESHOLDS = tuple(float(t) for t in os.environ.get("THRESHOLDS", "0.1,0.2,0.5,1").split(","))


def split_of(name: str) -> object:
    if name == "ml":
        ev, _ = load_events(str(DATA / "movielens_latest_small.csv.gz"))
        return temporal_split(ev, holdout_days=365)
    if name == "or":
        ev, _ = load_events(str(DATA / "online_retail_uci.csv.gz"))
        return temporal_split(ev, holdout_days=30, window_days=365)
    from simrec.generate import generate_events, write_events

    path = Path("/tmp/samp/M.parquet")
    if not path.exists():
        df = generate_events(
            6_000_000, n_users=300_000, n_items=50_000, end_date=dt.date(2026, 11, 26), seed=5
        )
        write_events(df, path)
    ev, _ = load_events(str(path))
    return temporal_split(ev, holdout_days=7)


def _entry_prop_sample(
    m: sp.csr_matrix, threshold: float, seed: int, user_keys: np.ndarray, item_keys: np.ndarray
) -> tuple[sp.csr_matrix, np.ndarray, float]:
    n_users, n_items = m.shape
    g = dimsum.gamma(threshold, n_items)
    norms = similarity.column_norms(m)
    cols = m.indices
    if math.isinf(g):
        scaled = sp.csr_matrix((m.data / norms[cols], cols.copy(), m.indptr.copy()), shape=m.shape)
        return scaled, np.ones(n_items), g
    p = np.minimum(1.0, math.sqrt(g) * m.data / norms[cols])
    rows = np.repeat(np.arange(n_users), np.diff(m.indptr))
    keep = dimsum.uniform(seed, np.asarray(user_keys)[rows], np.asarray(item_keys)[cols]) < p
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows[keep], minlength=n_users), out=indptr[1:])
    data = m.data[keep] / (p[keep] * norms[cols[keep]])
    scaled = sp.csr_matrix((data, cols[keep], indptr), shape=m.shape)
    cells = np.bincount(cols, minlength=n_items)
    mean_p = np.bincount(cols, weights=p, minlength=n_items) / np.maximum(cells, 1)
    return scaled, np.where(cells > 0, mean_p, 1.0), g


def _weighted_capped_build(original: Callable, q: float) -> Callable:
    """The matrix rule, then the weighted entries capped at their q-th percentile."""

    def build(user_ids, skus, actions, params, **kw):  # noqa: ANN001, ANN202
        m = original(user_ids, skus, actions, params, **kw)
        m.matrix.data = capped_cells(m.matrix.data, cell_cap(m.matrix.data, q))
        return m

    return build


@contextmanager
def variant(name: str) -> Iterator[ModelParams]:
    """The variant's parameters (and, for the prototypes, patched similarity steps)."""
    saved = similarity._scaled_sample, similarity.build_matrix
    params = ModelParams().replace(cell_cap_percentile=0.0)  # max-entry: the former rule
    for part in name.split("+"):
        if part == "entry-prop":
            similarity._scaled_sample = _entry_prop_sample
        elif part.startswith("cap p"):
            params = params.replace(cell_cap_percentile=float(part[5:]))
        elif part.startswith("wcap p"):
            similarity.build_matrix = _weighted_capped_build(
                matrix_rule.build_matrix, float(part[6:])
            )
        elif part != "max-entry":
            raise ValueError(f"unknown variant {part!r}")
    try:
        yield params
    finally:
        similarity._scaled_sample, similarity.build_matrix = saved


def top10(snapshot: object) -> list[set[int]]:
    out = []
    for i in range(len(snapshot.indptr) - 1):
        a, b = snapshot.indptr[i], snapshot.indptr[i + 1]
        order = np.argsort(-snapshot.scores[a:b], kind="stable")[:10]
        out.append(set(snapshot.indices[a:b][order].tolist()))
    return out


def neighbour_recall(exact: list[set[int]], sampled: list[set[int]]) -> float:
    hits = sum(len(e & s) for e, s in zip(exact, sampled, strict=True))
    return hits / max(1, sum(len(e) for e in exact))


def run(name: str, max_users: int | None, variants: list[str]) -> list[dict]:
    split = split_of(name)
    ev = Evaluator(split, 10, 20, max_users, 0)
    rows = []
    for v in variants:
        with variant(v) as base:
            ev._fitted.clear()
            exact = ev.evaluate(base.replace(threshold=0.0))
            exact_nbrs = top10(ev.fitted(base.replace(threshold=0.0)).snapshot)
            for t in THRESHOLDS:
                t0 = time.perf_counter()
                r = ev.evaluate(base.replace(threshold=t))
                sampled = top10(ev.fitted(base.replace(threshold=t)).snapshot)
                nb = neighbour_recall(exact_nbrs, sampled)
                row = {
                    "dataset": name, "variant": v, "threshold": t, "gamma": r["gamma"],
                    "emitted_ratio": r["emitted_pairs"] / exact["emitted_pairs"],
                    "ndcg": r["metrics"]["ndcg"], "ndcg_exact": exact["metrics"]["ndcg"],
                    "ndcg_ratio": r["metrics"]["ndcg"] / exact["metrics"]["ndcg"],
                    "recall10_nbrs": nb, "s": round(time.perf_counter() - t0, 1),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
            ev._fitted.clear()
    return rows


def kernel_timing(name: str, repeat: int = 3) -> list[dict]:
    """Seconds of the local kernel (``cosine_topk``, best of ``repeat``) on the default
    matrix of the training window, exact and at each threshold: what sampling saves."""
    split = split_of(name)
    params = ModelParams()
    train = split.train
    m = matrix_rule.build_matrix(train["user_id"], train["sku"], train["action"], params)
    keys = dimsum.string_keys(m.user_ids), dimsum.string_keys(m.skus)
    rows = []
    for t in (0.0, *THRESHOLDS):
        best = math.inf
        for _ in range(repeat):
            t0 = time.perf_counter()
            topk = similarity.cosine_topk(
                m.matrix, t, params.seed, params.top_k, *keys, shrinkage=params.shrinkage
            )
            best = min(best, time.perf_counter() - t0)
        rows.append({"dataset": name, "threshold": t, "kernel_s": round(best, 3),
                     "emitted_pairs": topk.emitted_pairs})
    for row in rows:
        row["s_vs_exact"] = round(row["kernel_s"] / rows[0]["kernel_s"], 3)
        print(json.dumps(row), flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="ml,or,M")
    ap.add_argument("--variants", default="max-entry,cap p50,entry-prop")
    ap.add_argument("--max-users", type=int, default=5000)
    ap.add_argument("--out", default="bench/out/dimsum_sampling.json")
    ap.add_argument("--kernel-timing", action="store_true", help="time the kernel instead")
    args = ap.parse_args()
    if args.kernel_timing:
        rows = [r for name in args.datasets.split(",") for r in kernel_timing(name)]
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rows, indent=1))
        return 0
    rows = []
    for name in args.datasets.split(","):
        rows += run(name, args.max_users, args.variants.split(","))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
