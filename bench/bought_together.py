"""Bought together: cosine (the served scoring) vs lift vs popularity, on Online Retail.

Baskets are a customer's purchases of one day (``basket_key=day``: the converted file
keeps no invoice number, and an invoice is one customer's one day in practice). The
last ``TEST_SHARE`` of the days are held out; every held-out basket with at least two
distinct training items gives one query per item: the item alone (``/bought-together
?sku=i``), its basket's other items the relevant ones. Each method answers 10 items
(padded with the most popular training items, as serving's fallback); hit rate@10 and
NDCG@10 from ``simrec.evaluation.metrics``.

* ``cosine``: the bought-together model as served (``ModelParams.basket``, defaults,
  exact: threshold 0), through the local engine's own matrix rule and top-K;
* ``lift``: ``c_ij N / (n_i n_j)`` over the same baskets (binary), pairs seen in at
  least ``MIN_SUPPORT`` baskets (lift without support ranks one-off pairs first);
* ``popularity``: the most popular training items.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from bench.common import write_results
from simrec.core import baskets
from simrec.core.params import ModelParams
from simrec.core.similarity import fit_similarities
from simrec.evaluation import metrics

DATA = Path("/work/shared/data/online_retail_uci.csv.gz")
TEST_SHARE = 0.2
K = 10
MIN_SUPPORT = 3


def split(path: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    ev = pd.read_csv(path, dtype=str)
    days = pd.to_datetime(ev["date"]).to_numpy("datetime64[D]")
    ev["basket"], _ = baskets.basket_ids(ev["user_id"], None, days)
    ev["day"] = days
    cut = np.sort(np.unique(days))[int(len(np.unique(days)) * (1 - TEST_SHARE))]
    return ev[ev["day"] < cut], ev[ev["day"] >= cut]


def cosine_lists(train: pd.DataFrame) -> dict[str, list[str]]:
    params = ModelParams(threshold=0.0, top_k=K).basket()
    m, topk = fit_similarities(train["basket"], train["sku"], train["action"], params)
    return {m.skus[i]: [m.skus[j] for j in topk.neighbors[topk.indptr[i]:topk.indptr[i + 1]]]
            for i in range(topk.n_items)}  # fmt: skip


def lift_lists(train: pd.DataFrame) -> dict[str, list[str]]:
    pairs = train.drop_duplicates(["basket", "sku"])
    b, bv = pd.factorize(pairs["basket"])
    s, sv = pd.factorize(pairs["sku"], sort=True)
    x = sp.csr_matrix((np.ones(len(b)), (b, s)), shape=(len(bv), len(sv)))
    c = (x.T @ x).tocoo()
    n = np.asarray(x.sum(axis=0)).ravel()
    keep = (c.row != c.col) & (c.data >= MIN_SUPPORT)
    i, j, cij = c.row[keep], c.col[keep], c.data[keep]
    lift = cij * len(bv) / (n[i] * n[j])
    order = np.lexsort((j, -lift, i))
    out: dict[str, list[str]] = {}
    for a, nb in zip(i[order], j[order], strict=True):
        row = out.setdefault(sv[a], [])
        if len(row) < K:
            row.append(sv[nb])
    return out


def evaluate(lists: dict[str, list[str]], test: pd.DataFrame, popular: list[str],
             known: set[str]) -> dict[str, float]:  # fmt: skip
    truth, pred = [], []
    groups = test[test["sku"].isin(known)].drop_duplicates(["basket", "sku"]).groupby("basket")
    for basket, rows in groups:
        items = rows["sku"].tolist()
        if len(items) < 2:
            continue
        for q in items:
            user = f"{basket}|{q}"
            truth += [(user, t) for t in items if t != q]
            answer = [s for s in lists.get(q, []) if s != q]
            answer += [p for p in popular if p != q and p not in answer][: K - len(answer)]
            pred += [(user, s, r + 1) for r, s in enumerate(answer[:K])]
    t = pd.DataFrame(truth, columns=[metrics.USER, metrics.ITEM])
    p = pd.DataFrame(pred, columns=[metrics.USER, metrics.ITEM, metrics.RANK])
    return {"queries": int(t[metrics.USER].nunique()),
            "hit_rate@10": metrics.hit_rate_at_k(t, p, K),
            "ndcg@10": metrics.ndcg_at_k(t, p, K)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DATA))
    args = parser.parse_args(argv)
    train, test = split(args.data)
    popular = train.drop_duplicates(["basket", "sku"])["sku"].value_counts().index[:50].tolist()
    known = set(train["sku"])
    results, seconds = {}, {}
    for name, build in (("cosine", cosine_lists), ("lift", lift_lists),
                        ("popularity", lambda _: {})):  # fmt: skip
        t0 = time.perf_counter()
        lists = build(train)
        seconds[name] = round(time.perf_counter() - t0, 2)
        results[name] = evaluate(lists, test, popular, known)
    base = results["popularity"]
    lines = ["| method | queries | HR@10 | NDCG@10 | HR vs popularity | NDCG vs cosine | fit s |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['queries']:,} | {r['hit_rate@10']:.4f} | {r['ndcg@10']:.4f} | "
            f"{r['hit_rate@10'] / base['hit_rate@10']:.2f}x | "
            f"{r['ndcg@10'] / results['cosine']['ndcg@10']:.2f}x | {seconds[name]} |"
        )
    write_results("bought_together", {"results": results, "fit_seconds": seconds,
                                      "min_support": MIN_SUPPORT}, "\n".join(lines))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
