"""The matrix rule (docs/architecture.md) for the single-machine engine.

events -> weighted user x item CSR matrix:

1. value(user, sku) = sum of ``weights[action]`` over the events; cells whose value is 0
   (only zero-weight actions) carry no signal and are not cells;
2. users with fewer than ``min_items_per_user`` distinct skus (cells) are dropped;
3. users with more than ``max_items_per_user`` keep their highest-valued cells (ties:
   smaller sku first) instead of being dropped;
4. columns are the items left; rows the users kept. Both vocabularies are sorted, so
   column order is sku order (the tie-break order of every later step);
5. with ``cell_cap_percentile`` = P > 0, every cell becomes ``min(value, cap) / cap``, where
   ``cap`` is the P-th percentile of the matrix's cell values (:func:`cell_cap`).

Why the cap (docs/scaling.md): raw summed weights let one repeat count (a user who acted
on an item hundreds of times) dominate its item's cosines. Capped at the median, a cell
says "this user showed interest" once, however often: NDCG@10 rose on Online Retail and
on the generated M shop (neutral on MovieLens, whose cells are all equal). DIMSUM's
per-entry sampling (``simrec.core.dimsum``) does not depend on the entries' scale.

Optional quality features (``simrec.core.quality``): with ``half_life_days`` each event's
weight is multiplied by its time decay before step 1 (so the cap of step 3 ranks decayed
values); with ``bm25_b`` > 0 the cells get BM25's saturation and length normalisation
(:func:`bm25_cells`) after step 5; with ``user_weighting`` each kept row is then scaled by
``f(n)``, ``n`` = the row's cells.

The Spark job implements the same rule with DataFrame expressions; the two are tested
against each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from simrec.core import quality
from simrec.core.actions import ACTIONS, ActionWeights
from simrec.core.params import ModelParams


@dataclass
class UserItemMatrix:
    """The matrix plus the window's item popularity and the rule's counts."""

    matrix: sp.csr_matrix  # users_kept x items, float64
    user_ids: np.ndarray  # str, sorted: row labels
    skus: np.ndarray  # str, sorted: column labels
    item_skus: np.ndarray  # str, sorted: every sku of the window (before user filters)
    item_users: np.ndarray  # int64: distinct users per item_skus entry
    item_weight: np.ndarray  # float64: summed weight per item_skus entry
    counts: dict[str, int] = field(default_factory=dict)


def _codes(values: object, name: str) -> tuple[np.ndarray, np.ndarray]:
    series = pd.Series(values, copy=False)
    if series.isna().any():
        raise ValueError(f"{name} has {int(series.isna().sum())} missing values")
    codes, uniques = pd.factorize(series, sort=True)
    return codes.astype(np.int64, copy=False), np.asarray(uniques, dtype=object)


def action_weights(actions: object, weights: ActionWeights) -> np.ndarray:
    """Weight of each event's action; unknown actions are an error, not a silent zero."""
    codes, uniques = _codes(actions, "action")
    unknown = sorted(set(map(str, uniques)) - set(ACTIONS))
    if unknown:
        raise ValueError(f"unknown actions {unknown}; expected one of {', '.join(ACTIONS)}")
    table = np.array([weights.of(str(a)) for a in uniques], dtype=np.float64)
    return table[codes]


def cell_cap(values: np.ndarray, percentile: float) -> float:
    """The P-th percentile of the cell values: the smallest value whose cumulative share of
    the cells is at least P/100 (SQL ``percentile_disc``, NumPy's ``inverted_cdf``), so
    the cap is always an actual cell value and both engines find the same bits."""
    if not 0 < percentile <= 100:
        raise ValueError(f"cell cap percentile must be in (0, 100], got {percentile}")
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return 1.0
    return float(np.percentile(values, percentile, method="inverted_cdf"))


def cell_cap_sql(percentile: float, column: str = "value") -> str:
    """:func:`cell_cap` as the Spark SQL aggregate the Spark job evaluates."""
    return f"percentile_disc({percentile / 100.0!r}) WITHIN GROUP (ORDER BY {column})"


def capped_cells(values: np.ndarray, cap: float) -> np.ndarray:
    """``min(value, cap) / cap`` (Spark: ``least(value, cap) / cap``: the same two IEEE
    operations)."""
    return np.minimum(np.asarray(values, dtype=np.float64), cap) / cap


def bm25_cells(matrix: sp.csr_matrix, k1: float, b: float) -> np.ndarray:
    """BM25-style user weighting of the cells (implicit's ``bm25_weight`` without the idf):
    ``x (k1 + 1) / (k1 (1 - b + b n / avg n) + x)``, ``n`` = the row's cells, ``avg n``
    their mean over rows with cells. A column's idf factor scales every cell of the column
    alike, which cosine cancels, so it is left out. The Spark job computes the same
    operations in the same order (``avg n`` = the matrix's cells / its rows)."""
    n = np.diff(matrix.indptr).astype(np.float64)
    if matrix.nnz == 0:
        return matrix.data.copy()
    length = (1.0 - b) + b * n / n[n > 0].mean()
    x = matrix.data
    return x * (k1 + 1.0) / (k1 * np.repeat(length, np.diff(matrix.indptr)) + x)


def build_matrix(
    user_ids: object,
    skus: object,
    actions: object,
    params: ModelParams,
    *,
    days: object = None,
    reference_day: object = None,
) -> UserItemMatrix:
    """Apply the matrix rule to parallel arrays of events (one entry per event).

    Reads the matrix rule's parameters from ``params`` (weights, user limits, time decay,
    cell cap, user weighting). Time decay needs ``days`` (each event's UTC day,
    ``datetime64[D]``-like) and ``reference_day`` (the window's last day: age 0).
    """
    min_items_per_user = params.min_items_per_user
    max_items_per_user = params.max_items_per_user
    half_life_days = params.half_life_days
    user_weighting = params.user_weighting
    user_alpha = params.user_alpha
    weights = params.weights
    w = action_weights(actions, weights)
    if half_life_days > 0:
        if days is None or reference_day is None:
            raise ValueError("time decay needs each event's day and the reference day")
        ages = quality.age_days(np.asarray(days, dtype="datetime64[D]"), reference_day)
        if len(ages) != len(w):
            raise ValueError("days must have one entry per event")
        w = quality.to_fixed(w * quality.decay(ages, half_life_days))  # summed exactly
    u, user_vocab = _codes(user_ids, "user_id")
    s, sku_vocab = _codes(skus, "sku")
    if not (len(w) == len(u) == len(s)):
        raise ValueError("user_ids, skus and actions must have the same length")
    n_events = len(w)

    # 1. Sum per (user, sku); the structure (explicit zeros included) is "has events".
    cells = sp.coo_matrix((w, (u, s)), shape=(len(user_vocab), len(sku_vocab))).tocsr()
    cells.sum_duplicates()
    if half_life_days > 0:
        cells = sp.csr_matrix(
            (quality.from_fixed(cells.data), cells.indices, cells.indptr), shape=cells.shape
        )
    item_users = np.bincount(cells.indices, minlength=len(sku_vocab)).astype(np.int64)
    item_weight = np.bincount(cells.indices, weights=cells.data, minlength=len(sku_vocab))
    cells.eliminate_zeros()

    # 2. Minimum distinct items.
    per_user = np.diff(cells.indptr)
    kept = per_user >= min_items_per_user
    capped = kept & (per_user > max_items_per_user)

    # 3. Cap heavy users to their top cells by value desc, sku asc (column order = sku).
    rows = np.repeat(np.arange(cells.shape[0]), per_user)
    keep_cell = kept[rows]
    if capped.any():
        sel = np.flatnonzero(capped[rows])
        order = np.lexsort((cells.indices[sel], -cells.data[sel], rows[sel]))
        sel = sel[order]
        starts = np.searchsorted(rows[sel], rows[sel], side="left")
        rank = np.arange(len(sel)) - starts
        keep_cell[sel[rank >= max_items_per_user]] = False

    # 4. Rows = users kept, columns = items left.
    r, c, v = rows[keep_cell], cells.indices[keep_cell], cells.data[keep_cell]
    user_rows = np.flatnonzero(kept)
    item_cols = np.unique(c)
    matrix = sp.csr_matrix(
        (v, (np.searchsorted(user_rows, r), np.searchsorted(item_cols, c))),
        shape=(len(user_rows), len(item_cols)),
        dtype=np.float64,
    )
    matrix.sum_duplicates()
    if params.cell_cap_percentile > 0:  # 5.
        matrix.data = capped_cells(matrix.data, cell_cap(matrix.data, params.cell_cap_percentile))
    if params.bm25_b > 0:
        matrix.data = bm25_cells(matrix, params.bm25_k1, params.bm25_b)
    if user_weighting != "none":
        # Through the table Spark looks factors up in, so both engines agree to the bit.
        n = np.diff(matrix.indptr)
        table = quality.user_factor_table(max_items_per_user, user_weighting, user_alpha)
        matrix.data *= np.repeat(table[n], n)
    counts = {
        "events": int(n_events),
        "users": int(len(user_vocab)),
        "users_kept": int(kept.sum()),
        "capped_users": int(capped.sum()),
        "items": int(len(item_cols)),
        "cells": int(matrix.nnz),
    }
    return UserItemMatrix(
        matrix=matrix,
        user_ids=user_vocab[user_rows],
        skus=sku_vocab[item_cols],
        item_skus=sku_vocab,
        item_users=item_users,
        item_weight=item_weight,
        counts=counts,
    )
