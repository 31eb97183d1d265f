"""Single-machine similarity engine: exact or DIMSUM-sampled cosine top-K over a CSR matrix.

It draws exactly the sample the Spark job draws (``dimsum.sample_entries`` on the same
CRC-32 keys), so it is both the embedded default engine and the oracle the Spark job is tested
against. Two kernels give identical output: the compiled one (``simrec.core._cosine``:
one pass per item over its users' rows, top-K selected in place, items spread over
threads) and the NumPy/scipy reference (item-item products one block of items at a time,
only each block's top-K kept). Either way memory stays bounded by the matrix plus K
neighbors per item.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from simrec.core import dimsum, quality
from simrec.core.actions import ActionWeights
from simrec.core.matrix import UserItemMatrix, build_matrix
from simrec.core.params import NAMES, ModelParams
from simrec.core.runs import RunParams

#: Upper bound on the item-item cells one block may produce (sets the block size).
BLOCK_CELLS = 8_000_000
#: Scores are rounded to this many decimals (far below any meaningful difference), so
#: pairs tied in exact arithmetic stay tied whatever the summation order and both engines
#: break the tie the same way (by neighbor sku).
SCORE_DECIMALS = 12


@dataclass
class TopK:
    """Neighbor lists in CSR form over the matrix's columns.

    Row ``i`` lists item ``i``'s neighbors sorted by score descending, ties by neighbor
    index (= sku) ascending.
    """

    indptr: np.ndarray  # int64, n_items + 1
    neighbors: np.ndarray  # int64 column indices
    scores: np.ndarray  # float64, clipped to [0, 1], rounded to SCORE_DECIMALS
    users: np.ndarray  # float64, estimated users behind the pair
    emitted_pairs: int  # (user, i<j) products emitted by sampling
    pairs: int  # distinct item pairs i<j with a non-zero estimate
    gamma: float

    @property
    def n_items(self) -> int:
        return len(self.indptr) - 1

    @property
    def neighbor_rows(self) -> int:
        return int(np.count_nonzero(np.diff(self.indptr)))


def column_norms(matrix: sp.spmatrix) -> np.ndarray:
    m = sp.csr_matrix(matrix)
    return np.sqrt(np.bincount(m.indices, weights=m.data * m.data, minlength=m.shape[1]))


def sample(
    matrix: sp.csr_matrix,
    threshold: float,
    seed: int,
    user_keys: np.ndarray,
    item_keys: np.ndarray,
) -> tuple[sp.csr_matrix, sp.csr_matrix, float]:
    """The DIMSUM sample (``dimsum.sample_entries``): kept entries ``a / (p c)``, the same
    pattern holding each kept entry's weight ``1 / p``, and gamma."""
    m = _canonical(matrix, user_keys, item_keys)
    scaled, weights, g = _scaled_sample(m, threshold, seed, user_keys, item_keys)
    pattern = sp.csr_matrix((weights, scaled.indices.copy(), scaled.indptr.copy()), shape=m.shape)
    return scaled, pattern, g


def _canonical(matrix: sp.spmatrix, user_keys: np.ndarray, item_keys: np.ndarray) -> sp.csr_matrix:
    m = sp.csr_matrix(matrix, dtype=np.float64)
    m.sum_duplicates()
    m.eliminate_zeros()
    if len(user_keys) != m.shape[0] or len(item_keys) != m.shape[1]:
        raise ValueError("user_keys / item_keys must match the matrix shape")
    return m


def _scaled_sample(
    m: sp.csr_matrix, threshold: float, seed: int, user_keys: np.ndarray, item_keys: np.ndarray
) -> tuple[sp.csr_matrix, np.ndarray, float]:
    """Kept entries of a canonical CSR matrix (still canonical: entries are only
    filtered, so no re-sort), their weights ``1 / p`` (aligned with ``data``) and gamma."""
    n_users, n_items = m.shape
    g = dimsum.gamma(threshold, n_items)
    norms = column_norms(m)
    cols = m.indices
    rows = np.repeat(np.arange(n_users), np.diff(m.indptr))
    s = dimsum.sample_entries(
        seed, np.asarray(user_keys)[rows], np.asarray(item_keys)[cols], m.data, norms[cols], g
    )
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows[s.keep], minlength=n_users), out=indptr[1:])
    scaled = sp.csr_matrix((s.values, cols[s.keep], indptr), shape=m.shape)
    return scaled, s.weights, g


def _block_topk(
    s_block: sp.csr_matrix,
    c_block: sp.csr_matrix,
    first: int,
    top_k: int,
    shrinkage: float = 0.0,
    factors: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Rows of one block (``c_block``: the summed weight products) -> (row, neighbor,
    score, users) of its top-K, and its pairs i<j."""
    s_block = s_block.tocoo()
    c_block = c_block.tocoo()
    s_block.sum_duplicates()  # canonical (row, col) order, so both align entry by entry
    c_block.sum_duplicates()
    if not (np.array_equal(s_block.row, c_block.row) and np.array_equal(s_block.col, c_block.col)):
        raise AssertionError("estimate and count products have different patterns")
    row = s_block.row.astype(np.int64) + first
    col = s_block.col.astype(np.int64)
    off = row != col
    row, col = row[off], col[off]
    est, users = s_block.data[off], c_block.data[off]
    pairs = int(np.count_nonzero(row < col))
    # Shrinkage (off at 0) after the estimate, before top-K: simrec.core.quality.shrink.
    score = quality.shrink(dimsum.clip_similarity(est), users, shrinkage)
    if factors is not None:  # similarity variants (neighbor_factors), off by default
        score = score * factors[0][row] * factors[1][col]
    score = np.round(score, SCORE_DECIMALS)
    # Top-K per row: sort by (row, score desc, neighbor asc). A full lexsort rather than
    # argpartition because ties must break by sku, and the block is bounded anyway.
    order = np.lexsort((col, -score, row))
    row, col, score, users = row[order], col[order], score[order], users[order]
    rank = np.arange(len(row)) - np.searchsorted(row, row, side="left")
    top = rank < top_k
    return row[top], col[top], score[top], users[top], pairs


def cosine_topk(
    matrix: sp.spmatrix,
    threshold: float,
    seed: int,
    top_k: int,
    user_keys: np.ndarray,
    item_keys: np.ndarray,
    block_cells: int = BLOCK_CELLS,
    shrinkage: float = 0.0,
    kernel: str = "auto",
    n_threads: int | None = None,
    factors: tuple[np.ndarray, np.ndarray] | None = None,
) -> TopK:
    """Top-K neighbors per column by (sampled) cosine.

    ``threshold = 0`` is exact cosine. Otherwise DIMSUM (``dimsum.sample_entries``): pair
    estimate = sum of the kept entries' products, users = sum of their weights' products.
    ``shrinkage > 0`` ranks by ``quality.shrink(score, users, shrinkage)`` instead.

    ``kernel``: ``"cython"`` (compiled, multi-threaded over items, ``n_threads`` defaulting
    to the CPUs this process may use), ``"numpy"`` (the scipy reference, in blocks of
    ``block_cells``) or ``"auto"`` (compiled when built). Both give identical output.

    ``factors`` (``(row, col)``, one value per item, from :func:`neighbor_factors`)
    multiply pair ``(i, j)``'s score by ``row[i] * col[j]`` before top-K: the similarity
    variants. Only the NumPy kernel has them (the compiled one and Spark: not yet).
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    quality.validate(shrinkage=shrinkage)
    if kernel not in ("auto", "cython", "numpy"):
        raise ValueError(f"kernel must be auto, cython or numpy, got {kernel!r}")
    if factors is not None and kernel == "cython":
        raise ValueError("similarity variants (factors) need the numpy kernel")
    if factors is None and (kernel == "cython" or (kernel == "auto" and _compiled() is not None)):
        return _cosine_topk_compiled(
            matrix, threshold, seed, top_k, user_keys, item_keys, shrinkage, n_threads
        )
    scaled, pattern, g = sample(sp.csr_matrix(matrix), threshold, seed, user_keys, item_keys)
    n_items = scaled.shape[1]
    kept_per_user = np.diff(pattern.indptr).astype(np.int64)
    emitted = int((kept_per_user * (kept_per_user - 1) // 2).sum())

    scaled_t = scaled.T.tocsr()  # items x users
    pattern_t = pattern.T.tocsr()
    block = max(1, min(n_items, block_cells // max(n_items, 1)))
    parts: list[tuple[np.ndarray, ...]] = []
    pairs = 0
    for first in range(0, n_items, block):
        last = min(n_items, first + block)
        s_block = scaled_t[first:last] @ scaled
        c_block = pattern_t[first:last] @ pattern
        *arrays, n_pairs = _block_topk(s_block, c_block, first, top_k, shrinkage, factors)
        parts.append(tuple(arrays))
        pairs += n_pairs
    if parts:
        row, col, score, users = (np.concatenate(a) for a in zip(*parts, strict=True))
    else:
        row = col = np.zeros(0, dtype=np.int64)
        score = users = np.zeros(0, dtype=np.float64)
    indptr = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=n_items), out=indptr[1:])
    return TopK(
        indptr=indptr,
        neighbors=col.astype(np.int64),
        scores=score.astype(np.float64),
        users=users.astype(np.float64),
        emitted_pairs=emitted,
        pairs=pairs,
        gamma=g,
    )


def _compiled():  # noqa: ANN202 - the extension module, or None when not built
    try:
        from simrec.core import _cosine
    except ImportError:  # pragma: no cover - source checkout without build_ext
        return None
    return _cosine


def _cosine_topk_compiled(
    m: sp.csr_matrix,
    threshold: float,
    seed: int,
    top_k: int,
    user_keys: np.ndarray,
    item_keys: np.ndarray,
    shrinkage: float,
    n_threads: int | None,
) -> TopK:
    """:func:`cosine_topk` through ``simrec.core._cosine`` (same sample, same output)."""
    operands, emitted, g = kernel_operands(m, threshold, seed, user_keys, item_keys)
    n_items = operands.n_items
    count, nbr, score, users, pairs = operands.topk(0, n_items, top_k, shrinkage, n_threads)
    indptr = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(count, out=indptr[1:])
    return TopK(
        indptr=indptr,
        neighbors=nbr.astype(np.int64),
        scores=score,
        users=users,
        emitted_pairs=emitted,
        pairs=int(pairs.sum()),
        gamma=g,
    )


def kernel_operands(
    matrix: sp.spmatrix,
    threshold: float,
    seed: int,
    user_keys: np.ndarray,
    item_keys: np.ndarray,
) -> tuple[KernelOperands, int, float]:
    """The DIMSUM sample of ``matrix`` (rows = users in user id order, columns = items in
    sku order) as the compiled kernel's operands, with the emitted pairs and gamma."""
    scaled, weights, g = _scaled_sample(
        _canonical(matrix, user_keys, item_keys), threshold, seed, user_keys, item_keys
    )
    kept_per_user = np.diff(scaled.indptr).astype(np.int64)
    emitted = int((kept_per_user * (kept_per_user - 1) // 2).sum())
    return KernelOperands.of(scaled, weights), emitted, g


@dataclass
class KernelOperands:
    """The compiled kernel's inputs: the sampled, scaled matrix as CSR and as CSC, with
    each kept entry's weight ``1 / p`` alongside. Plain NumPy arrays, so the Spark job
    broadcasts them to item-range tasks."""

    t_indptr: np.ndarray  # int64: CSC (items x users)
    t_indices: np.ndarray  # int32
    t_data: np.ndarray  # float64
    t_weights: np.ndarray  # float64
    indptr: np.ndarray  # int64: CSR (users x items)
    indices: np.ndarray  # int32
    data: np.ndarray  # float64
    weights: np.ndarray  # float64

    @classmethod
    def of(cls, scaled: sp.csr_matrix, weights: np.ndarray) -> KernelOperands:
        csc = scaled.tocsc()  # items x users, users ascending in each item
        # The weights through the same transpose (scipy's is stable: entry order follows).
        w_csc = sp.csr_matrix((weights, scaled.indices, scaled.indptr), shape=scaled.shape).tocsc()
        return cls(
            csc.indptr.astype(np.int64),
            csc.indices.astype(np.int32, copy=False),
            np.ascontiguousarray(csc.data, dtype=np.float64),
            np.ascontiguousarray(w_csc.data, dtype=np.float64),
            scaled.indptr.astype(np.int64),
            scaled.indices.astype(np.int32, copy=False),
            np.ascontiguousarray(scaled.data, dtype=np.float64),
            np.ascontiguousarray(weights, dtype=np.float64),
        )

    @property
    def n_items(self) -> int:
        return len(self.t_indptr) - 1

    def topk(
        self, first: int, last: int, top_k: int, shrinkage: float, n_threads: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Top-K of the items ``first <= i < last``: per item its neighbor count and pairs
        ``j > i``, and the neighbors, scores and users of every item, concatenated."""
        cosine = _compiled()
        if cosine is None:
            raise RuntimeError("simrec.core._cosine is not built: python setup.py build_ext")
        n_out = last - first
        k = max(1, min(top_k, self.n_items - 1))
        count = np.zeros(n_out, dtype=np.int64)
        nbr = np.empty(n_out * k, dtype=np.int32)
        score = np.empty(n_out * k, dtype=np.float64)
        users = np.empty(n_out * k, dtype=np.float64)
        pairs = np.zeros(n_out, dtype=np.int64)
        if n_threads is None:
            n_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        cosine.topk_kernel(
            self.t_indptr, self.t_indices, self.t_data, self.t_weights,
            self.indptr, self.indices, self.data, self.weights,
            k, float(shrinkage), int(n_threads),
            count, nbr, score, users, pairs, first, last,
        )  # fmt: skip
        filled = (np.arange(k)[None, :] < count[:, None]).ravel()
        return count, nbr[filled], score[filled], users[filled], pairs


# --- the Spark job's vectorised steps (pure NumPy/scipy: no row-at-a-time Python) -----
def fixed_point_scale(bound: float) -> float:
    """``2**bits`` for exact, order-independent sums in int64 of terms whose total is at
    most ``bound`` (``dimsum.sum_bounds``, known before sampling): ``bits = 60 -
    ceil(log2(bound))`` keeps every sum below 2**61."""
    if not bound > 0:
        return 1.0
    return float(2.0 ** int(min(1000, 60 - math.ceil(math.log2(bound)))))


def partial_pair_sums(
    indptr: np.ndarray,
    items: np.ndarray,
    values: np.ndarray,
    weights: np.ndarray,
    n_items: int,
    scales: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A group of whole user rows (CSR: kept scaled entries and their weights, items
    ascending in each row) -> every ordered pair ``a != b`` co-occurring in it, with
    ``rint(sum * scale)`` of its products and of its weight products (int64, ``scales``)
    and the number of co-occurrences. Summed over groups these integers are exact in any
    order, so the result does not depend on how users were grouped or shuffled."""
    n_rows = len(indptr) - 1

    def gram(data: np.ndarray) -> sp.coo_matrix:
        x = sp.csr_matrix((data, items, indptr), shape=(n_rows, n_items))
        return (x.T.tocsr() @ x).tocoo()

    g, w, c = gram(values), gram(weights), gram(np.ones(len(values)))
    for other in (w, c):
        if not (np.array_equal(g.row, other.row) and np.array_equal(g.col, other.col)):
            raise AssertionError("sum, weight and count products have different patterns")
    off = g.row != g.col
    return (
        g.row[off].astype(np.int32),
        g.col[off].astype(np.int32),
        np.rint(g.data[off] * scales[0]).astype(np.int64),
        c.data[off].astype(np.int64),
        np.rint(w.data[off] * scales[1]).astype(np.int64),
    )


def topk_from_pair_sums(
    a: np.ndarray,
    b: np.ndarray,
    fixed: np.ndarray,
    count: np.ndarray,
    weight: np.ndarray,
    scales: tuple[float, float],
    top_k: int,
    shrinkage: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Partial sums sorted by ``(a, b)`` (a pair may repeat: one row per group), holding
    every pair of the items ``a`` they cover -> their top-K rows ``(a, b, score, users)``
    in rank order, and the pairs ``a < b`` and their co-occurrences (emitted pairs).
    Same score, users, rounding and tie-break as :func:`cosine_topk`."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if len(a) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0), np.zeros(0), 0, 0
    new = np.empty(len(a), dtype=bool)
    new[0] = True
    np.not_equal(a[1:], a[:-1], out=new[1:])
    new[1:] |= b[1:] != b[:-1]
    starts = np.flatnonzero(new)
    fixed = np.add.reduceat(np.asarray(fixed, dtype=np.int64), starts)
    count = np.add.reduceat(np.asarray(count, dtype=np.int64), starts)
    weight = np.add.reduceat(np.asarray(weight, dtype=np.int64), starts)
    a, b = a[starts], b[starts]
    upper = a < b
    users = weight.astype(np.float64) / scales[1]
    scale = scales[0]
    est = fixed.astype(np.float64) / scale
    score = np.round(quality.shrink(dimsum.clip_similarity(est), users, shrinkage), SCORE_DECIMALS)
    order = np.lexsort((b, -score, a))
    a, b, score, users = a[order], b[order], score[order], users[order]
    rank = np.arange(len(a)) - np.searchsorted(a, a, side="left")
    top = rank < top_k
    return a[top], b[top], score[top], users[top], int(upper.sum()), int(count[upper].sum())


# --- shared by both engines: parameters and the output manifest ----------------------
def resolve_params(manifest_params: dict, overrides: dict | None = None) -> RunParams:
    """The export manifest's ``params`` with the given (non-None) overrides applied.

    Validation is :class:`ModelParams`'s: a bad value fails with its one message.
    """
    data = dict(manifest_params)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in NAMES:  # the model's; window and tenant are the export's
            raise ValueError(f"unknown parameter {key!r}; overridable: {', '.join(NAMES)}")
        if key == "weights" and isinstance(value, ActionWeights):
            value = value.as_dict()
        if key == "weights":
            value = {**data.get("weights", {}), **value}
        data[key] = value
    return RunParams.from_json(data)


def stage_timings(start: float, read: float, computed: float, written: float) -> dict[str, float]:
    """A manifest's ``timings`` from four ``perf_counter`` marks, the same in every engine."""
    return {
        "read_s": read - start,
        "similarity_s": computed - read,
        "write_s": written - computed,
        "total_s": written - start,
    }


def similarity_manifest(
    export_manifest: dict,
    export_manifest_uri: str,
    params: RunParams,
    *,
    engine: str,
    outputs: dict[str, str],
    counts: dict[str, int],
    gamma: float,
    timings: dict[str, float],
    plan: str | None = None,
    tuning: dict | None = None,
) -> dict:
    """The similarity manifest of docs/architecture.md (``gamma`` null when exact;
    ``plan``: how the Spark job computed the pairs, null for the single-machine engine;
    ``tuning``: the nightly tuning's record, null when off; ``params`` stay the run's, so
    the manifest still names its run id, and the record holds the parameters trained)."""
    keys = (
        "events",
        "users",
        "users_kept",
        "capped_users",
        "items",
        "cells",
        "emitted_pairs",
        "pairs",
        "neighbor_rows",
    )
    missing = [k for k in keys if k not in counts]
    if missing:
        raise ValueError(f"manifest counts missing {missing}")
    return {
        "stage": "similarities",
        "run_id": export_manifest.get("run_id"),
        "tenant": export_manifest.get("tenant"),
        "engine": engine,
        "params": params.to_json(),
        "export_manifest": export_manifest_uri,
        "outputs": dict(outputs),
        "counts": {k: int(counts[k]) for k in keys},
        "gamma": None if math.isinf(gamma) else float(gamma),
        "plan": plan,
        "tuning": tuning,
        "timings": {k: round(float(v), 3) for k, v in timings.items()},
        "created_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def neighbor_factors(
    matrix: sp.spmatrix, params: ModelParams
) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-item ``(row, col)`` score factors of the similarity variants; None when off.

    * asymmetric cosine (``asymmetric_alpha`` = a; Aiolli 2013):
      ``dot / (n_i^a n_j^(1-a))`` with ``n`` = squared column norm, i.e. the cosine times
      ``n_i^(1/2-a) * n_j^(a-1/2)``; a = 1/2 is the cosine.
    * popularity discount (``popularity_discount`` = d, as Amazon Personalize SIMS's
      popularity discount): the neighbor's score divided by ``users(j)^d``, users(j) =
      the matrix's rows holding j.
    """
    a, d = params.asymmetric_alpha, params.popularity_discount
    if a == 0.5 and d == 0:
        return None
    m = sp.csr_matrix(matrix)
    n_items = m.shape[1]
    row = np.ones(n_items)
    col = np.ones(n_items)
    if a != 0.5:
        sq = column_norms(m) ** 2
        sq[sq == 0] = 1.0
        row = sq ** (0.5 - a)
        col = sq ** (a - 0.5)
    if d > 0:
        users = np.bincount(m.indices, minlength=n_items).astype(np.float64)
        users[users == 0] = 1.0
        col = col * users**-d
    return row, col


def fit_similarities(
    user_ids: object, skus: object, actions: object, params: ModelParams, **decay: object
) -> tuple[UserItemMatrix, TopK]:
    """Matrix rule, then cosine top-K, both from one set of model parameters.

    ``decay``: :func:`build_matrix`'s ``days``/``reference_day``, read only when time
    decay is on.
    """
    m = build_matrix(user_ids, skus, actions, params, **decay)
    topk = cosine_topk(
        m.matrix,
        params.threshold,
        params.seed,
        params.top_k,
        dimsum.string_keys(m.user_ids),
        dimsum.string_keys(m.skus),
        shrinkage=params.shrinkage,
        factors=neighbor_factors(m.matrix, params),
    )
    return m, topk
