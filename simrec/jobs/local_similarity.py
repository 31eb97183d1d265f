"""The similarity stage on one machine: the core's matrix rule and cosine top-K in
memory, writing the same output layout and manifest as the Spark job."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from simrec.core import baskets, trending
from simrec.core.matrix import UserItemMatrix, action_weights
from simrec.core.runs import RunParams
from simrec.core.similarity import (
    TopK,
    fit_similarities,
    resolve_params,
    similarity_manifest,
    stage_timings,
)
from simrec.evaluation import nightly
from simrec.storage import exports, similarities


def _days(df: pd.DataFrame) -> np.ndarray:
    return pd.to_datetime(df["ts"], utc=True).dt.tz_localize(None).to_numpy("datetime64[D]")


def local_similarity(
    events: pa.Table | pd.DataFrame, params: RunParams
) -> tuple[UserItemMatrix, TopK]:
    """Matrix rule + cosine top-K in memory for events ``user_id, sku, action[, ts]``
    (``ts``, UTC, only for time decay)."""
    df = events.to_pandas() if isinstance(events, pa.Table) else events
    days = _days(df) if params.model.half_life_days > 0 else None
    return fit_similarities(
        df["user_id"], df["sku"], df["action"], params.model, days=days,
        reference_day=params.end_date,
    )


def basket_similarity(
    events: pd.DataFrame, params: RunParams
) -> tuple[UserItemMatrix, TopK, dict[str, object]]:
    """The bought-together model (``simrec.core.baskets``): the same matrix rule and
    cosine top-K over a basket x item matrix, and its manifest entry."""
    model = params.model
    column = baskets.key_column(model.basket_key)
    keys = None if column is None or column not in events else events[column]
    ids, fell_back = baskets.basket_ids(events["user_id"], keys, _days(events))
    basket_params = model.basket()
    m, topk = fit_similarities(
        ids, events["sku"], events["action"], basket_params,
        days=_days(events) if model.half_life_days > 0 else None, reference_day=params.end_date,
    )  # fmt: skip
    used = action_weights(events["action"], basket_params.weights) > 0
    entry = baskets.summary(model.basket_key, model.basket_actions, int(used.sum()),
                            int((fell_back & used).sum()), m.counts["users_kept"],
                            topk.neighbor_rows)  # fmt: skip
    return m, topk, entry


def trend_sums(
    df: pd.DataFrame, params: RunParams, item_skus: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per ``item_skus`` entry (the window's skus, sorted): its summed action weights in
    the recent days and in the days before (``simrec.core.trending``)."""
    skus, recent, prior = trending.window_sums(
        df["sku"], action_weights(df["action"], params.model.weights), _days(df),
        trending.split_day(params.end_date, params.model.trending_recent_days),
    )  # fmt: skip
    if not np.array_equal(skus, item_skus):
        raise AssertionError("trend sums and the matrix disagree on the window's skus")
    return recent, prior


def run_local_similarity(
    export_manifest_uri: str, output_uri: str, params: RunParams | None = None
) -> dict[str, Any]:
    """The similarity stage on one machine: same output layout and manifest as Spark's."""
    t0 = time.perf_counter()
    export_manifest = exports.read_manifest(export_manifest_uri)
    params = params or resolve_params(export_manifest["params"])
    events = exports.read_events(export_manifest, with_ts=True, with_groups=True).to_pandas()
    t1 = time.perf_counter()
    trained, tuning = nightly.tuned_run(events, params, "local")  # as set (tuning off)
    m, topk = local_similarity(events, trained)
    neighbors = similarities.neighbors_table(m.skus, topk)
    recent, prior = trend_sums(events, trained, m.item_skus)
    items = similarities.items_table(m.item_skus, m.item_users, m.item_weight, recent, prior)
    bm, btopk, bought = basket_similarity(events, params)
    together = similarities.neighbors_table(bm.skus, btopk)
    t2 = time.perf_counter()
    outputs = similarities.write_tables(output_uri, neighbors, items, together)
    counts = {
        **m.counts,
        "emitted_pairs": topk.emitted_pairs,
        "pairs": topk.pairs,
        "neighbor_rows": topk.neighbor_rows,
    }
    t3 = time.perf_counter()
    manifest = similarity_manifest(
        export_manifest, export_manifest_uri, params, engine="local", outputs=outputs,
        counts=counts, gamma=topk.gamma, timings=stage_timings(t0, t1, t2, t3), tuning=tuning,
    )  # fmt: skip
    manifest["bought_together"] = bought
    similarities.write_manifest(output_uri, manifest)
    return manifest
