"""Cold items: neighbors from attributes vs the popularity fallback vs the blend.

On a generated shop (``simrec.generate``, fixed seed) with a catalog carrying brand,
price and title, a random 10% of items are made *cold*: in training only ``m`` of their
shoppers' events are kept (m = 0: new items; 1, 3, 10: few events). For every test
shopper (a random 20% of shoppers, none of whose events train) who touched a cold item
``c``, the query is ``c`` alone (``/similar?sku=c``) and the relevant items are the
shopper's other items. Each method answers 10 items, padded with the most popular
training items; hit rate@10 and NDCG@10 come from ``simrec.evaluation.metrics``.

Methods: ``popularity`` (what serving falls back to for an unknown sku), ``category
popularity`` (the most popular items of ``c``'s category: a stronger baseline serving
cannot use for a catalog-only sku), ``co-occurrence`` (the model's row, m > 0),
``content`` (TF-IDF attribute neighbors only) and ``blend`` (the served rule,
``simrec.core.content.cooc_weight``), each blend_k in ``BLEND_KS``.

The generated events depend on the category only (brand, price band and title words
are drawn per item around its category), so the attributes carry the category signal
plus noise: this measures the plumbing and the rule, not a real shop's attributes.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import time
from typing import Any

import numpy as np
import pandas as pd
from common import machine, synthetic_model, write_results

from simrec.core.content import ContentIndex, ContentParams
from simrec.core.params import ModelParams
from simrec.evaluation import metrics
from simrec.evaluation.evaluate import fit
from simrec.generate import default_sizes, generate_events, shop_catalog
from simrec.serving import model_image

SEED = 7
COLD_SHARE = 0.10
TEST_SHARE = 0.20
KEPT_USERS = (0, 1, 3, 10)
BLEND_KS = (0.5, 1.0, 5.0)
EXPONENTS = (0.0, 1.0, 2.0, 4.0)  # popularity_exponent of the content score
K = 10
def ranked(first: Any, popular: list[int], skip: int, k: int = K) -> list[int]:
    """``first`` (item indices, best first) padded with popular items, ``skip`` left out."""
    out: list[int] = []
    for j in [*list(first), *popular]:
        if j != skip and j not in out:
            out.append(int(j))
            if len(out) == k:
                break
    return out


def score(queries: list[tuple[str, int]], truth: pd.DataFrame, lists: list[list[int]],
          skus: list[str]) -> dict[str, float]:  # fmt: skip
    rows = [
        (f"{u}|{c}", skus[j], r + 1)
        for (u, c), items in zip(queries, lists, strict=True)
        for r, j in enumerate(items)
    ]
    pred = pd.DataFrame(rows, columns=[metrics.USER, metrics.ITEM, metrics.RANK])
    kw = {"k": K}
    return {
        "hit_rate": float(metrics.hit_rate_at_k(truth, pred, **kw)),
        "ndcg": float(metrics.ndcg_at_k(truth, pred, **kw)),
    }


def run(n_events: int) -> dict[str, Any]:
    _, n_items, n_categories = default_sizes(n_events)
    events = generate_events(n_events, seed=SEED, end_date=dt.date(2026, 11, 30))
    events["day"] = events["ts"].dt.tz_localize(None).dt.floor("D")
    catalog = shop_catalog(n_items, n_categories, SEED)
    rng = np.random.default_rng(SEED)
    all_skus = catalog["sku"].tolist()
    cold = set(rng.choice(all_skus, round(COLD_SHARE * n_items), replace=False).tolist())
    users = np.array(sorted(events["user_id"].unique()))
    test_users = set(rng.choice(users, round(TEST_SHARE * len(users)), replace=False).tolist())
    is_test = events["user_id"].isin(test_users).to_numpy()
    train_all, test = events[~is_test], events[is_test]
    cold_train = train_all["sku"].isin(cold).to_numpy()
    # Per cold item, its training shoppers in a fixed random order: the first m are kept.
    order = train_all[cold_train][["sku", "user_id"]].drop_duplicates()
    order = order.assign(r=rng.random(len(order))).sort_values(["sku", "r"])
    order["rank"] = order.groupby("sku").cumcount()

    test_items = test[["user_id", "sku"]].drop_duplicates()
    queries = [(u, s) for u, s in test_items.itertuples(index=False) if s in cold]
    per_user = test_items.groupby("user_id")["sku"].apply(list).to_dict()
    truth = pd.DataFrame(
        [(f"{u}|{c}", s, 1.0) for u, c in queries for s in per_user[u] if s != c],
        columns=[metrics.USER, metrics.ITEM, "rating"],
    )
    out: dict[str, Any] = {"n_events": n_events, "items": n_items, "cold_items": len(cold),
                           "queries": len(queries), "by_kept": {}}  # fmt: skip
    columns = {c: catalog[c].tolist() for c in catalog.columns}
    for m in KEPT_USERS:
        keep = order[order["rank"] < m][["sku", "user_id"]]
        kept = train_all[cold_train].merge(keep, on=["sku", "user_id"])
        train = pd.concat([train_all[~cold_train], kept], ignore_index=True)
        t0 = time.perf_counter()
        snap = fit(train, ModelParams(), dt.date(2026, 11, 30)).snapshot
        fit_s = time.perf_counter() - t0
        skus = list(snap.skus)
        index = {s: i for i, s in enumerate(skus)}
        popular = np.lexsort((np.arange(len(skus)), -snap.popularity))[:200].tolist()
        by_cat: dict[str, list[int]] = {}
        cat_of = dict(zip(catalog["sku"], catalog["category"], strict=True))
        for j in popular:
            by_cat.setdefault(cat_of[skus[j]], []).append(j)
        t0 = time.perf_counter()
        content = ContentIndex.build(columns, skus, snap.popularity)
        content_s = time.perf_counter() - t0
        by_exponent = {
            e: ContentIndex.build(columns, skus, snap.popularity,
                                  ContentParams(popularity_exponent=e))
            for e in EXPONENTS
        }  # fmt: skip
        qs = [(u, c) for u, c in queries]
        methods: dict[str, list[list[int]]] = {"popularity": [], "category popularity": []}
        for e in EXPONENTS:
            methods[f"content (p={e:g})"] = []
        if m > 0:
            methods["co-occurrence"] = []
        blends = {bk: ContentIndex(content.row_of, content.indptr, content.indices,
                                   content.scores, snap.popularity,
                                   ContentParams(blend_k=bk)) for bk in BLEND_KS}  # fmt: skip
        for bk in BLEND_KS:
            methods[f"blend (k={bk:g})"] = []
        for _, c in qs:
            i = index.get(c, -1)
            empty = (np.zeros(0, np.int32), np.zeros(0, np.float32))
            cooc = snap.neighbors(i) if i >= 0 else empty
            methods["popularity"].append(ranked([], popular, i))
            methods["category popularity"].append(ranked(by_cat.get(cat_of[c], []), popular, i))
            for e, by in by_exponent.items():
                methods[f"content (p={e:g})"].append(ranked(by.content_row(c)[0], popular, i))
            if m > 0:
                methods["co-occurrence"].append(ranked(cooc[0], popular, i))
            for bk, blend in blends.items():
                row = blend.blended_row(c, None if i < 0 else i, cooc)[0]
                methods[f"blend (k={bk:g})"].append(ranked(row, popular, i))
        out["by_kept"][m] = {
            "fit_s": round(fit_s, 2), "content_build_s": round(content_s, 2),
            "methods": {name: score(qs, truth, lists, skus) for name, lists in methods.items()},
        }  # fmt: skip
        print(f"m={m}: " + ", ".join(
            f"{k} {v['hit_rate']:.3f}/{v['ndcg']:.3f}"
            for k, v in out["by_kept"][m]["methods"].items()
        ), flush=True)  # fmt: skip
    return out


def build_cost(sizes: tuple[int, ...]) -> dict[int, dict[str, float]]:
    """Seconds to build a model image with a catalog, without and with the content rows
    (same snapshot, same run: the ratio is the content model's cost)."""
    out = {}
    for n in sizes:
        snap = synthetic_model(n, 50)
        catalog = shop_catalog(n, max(4, n // 50), SEED).assign(sku=snap.skus, in_stock=True)
        snap = dataclasses.replace(snap, catalog=catalog)
        t0 = time.perf_counter()
        model_image.build_image(dataclasses.replace(snap, catalog=None))
        bare = time.perf_counter() - t0
        t0 = time.perf_counter()
        arrays = model_image.build_image(snap)
        full = time.perf_counter() - t0
        t0 = time.perf_counter()
        model_image.content_arrays(snap.catalog, snap.skus, snap.popularity, ContentParams())
        content_s = time.perf_counter() - t0
        out[n] = {"image_without_catalog_s": round(bare, 3), "image_s": round(full, 3),
                  "content_s": round(content_s, 3), "content_share": round(content_s / full, 2),
                  "content_bytes": int(sum(a.nbytes for k, a in arrays.items()
                                           if k.startswith(("content_", "blend_"))))}  # fmt: skip
        print(f"build n={n}: {out[n]}", flush=True)
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"Cold items: {result['cold_items']} of {result['items']} items, "
        f"{result['queries']} test queries ({result['n_events']} generated events, seed {SEED}).",
        "",
        "| kept shoppers per cold item | method | hit rate@10 | NDCG@10 | vs popularity |",
        "|---|---|---|---|---|",
    ]
    for m, block in result["by_kept"].items():
        base = block["methods"]["popularity"]["ndcg"]
        for name, v in block["methods"].items():
            ratio = f"{v['ndcg'] / base:.2f}x" if base else "-"
            lines.append(f"| {m} | {name} | {v['hit_rate']:.3f} | {v['ndcg']:.3f} | {ratio} |")
    lines += ["", "| catalog items | image build s | content rows s | share | content MB |",
              "|---|---|---|---|---|"]  # fmt: skip
    for n, c in result.get("build", {}).items():
        lines.append(f"| {n} | {c['image_s']:.2f} | {c['content_s']:.2f} | "
                     f"{c['content_share']:.0%} | {c['content_bytes'] / 1e6:.1f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--build-sizes", type=int, nargs="*", default=[5_000, 50_000, 200_000])
    args = p.parse_args()
    result = run(args.events)
    result["build"] = build_cost(tuple(args.build_sizes))
    result["machine"] = machine()
    md = markdown(result)
    print(md)
    write_results("cold_items", result, md)


if __name__ == "__main__":
    main()
