"""Single-machine similarity engine: exact or DIMSUM-sampled cosine top-K over a CSR matrix.

It draws exactly the sample the Spark job draws (``dimsum.keep_mask`` on the same CRC-32
keys), so it is both the embedded default engine and the oracle the Spark job is tested
against. Memory stays bounded: item-item products are computed one block of items at a
time and only each block's top-K survives.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from simrec.core import dimsum
from simrec.core.actions import ActionWeights
from simrec.core.runs import RunParams

#: Upper bound on the item-item cells one block may produce (sets the block size).
BLOCK_CELLS = 8_000_000
#: Scores are rounded to this many decimals (far below any meaningful difference), so
#: pairs tied in exact arithmetic stay tied whatever the summation order and both engines
#: break the tie the same way (by neighbour sku).
SCORE_DECIMALS = 12


@dataclass
class TopK:
    """Neighbour lists in CSR form over the matrix's columns.

    Row ``i`` lists item ``i``'s neighbours sorted by score descending, ties by neighbour
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
) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray, float]:
    """The DIMSUM sample: scaled kept entries ``a/q``, their 0/1 pattern, ``p``, gamma."""
    m = sp.csr_matrix(matrix, dtype=np.float64)
    m.sum_duplicates()
    m.eliminate_zeros()
    n_users, n_items = m.shape
    if len(user_keys) != n_users or len(item_keys) != n_items:
        raise ValueError("user_keys / item_keys must match the matrix shape")
    g = dimsum.gamma(threshold, n_items)
    max_entry = float(m.data.max()) if m.nnz else 1.0
    p, q = dimsum.probabilities_and_scales(column_norms(m), threshold, n_items, max_entry)
    rows = np.repeat(np.arange(n_users), np.diff(m.indptr))
    cols = m.indices
    keep = dimsum.keep_mask(seed, np.asarray(user_keys)[rows], np.asarray(item_keys)[cols], p[cols])
    scaled = sp.csr_matrix((m.data[keep] / q[cols[keep]], (rows[keep], cols[keep])), shape=m.shape)
    pattern = sp.csr_matrix((np.ones(int(keep.sum())), (rows[keep], cols[keep])), shape=m.shape)
    return scaled, pattern, p, g


def _block_topk(
    s_block: sp.csr_matrix,
    c_block: sp.csr_matrix,
    first: int,
    p: np.ndarray,
    top_k: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Rows of one block -> (row, neighbour, score, users) of its top-K, and its pairs i<j."""
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
    est, cnt = s_block.data[off], c_block.data[off]
    pairs = int(np.count_nonzero(row < col))
    score = np.round(dimsum.clip_similarity(est), SCORE_DECIMALS)
    users = dimsum.estimate_users(cnt, p[row], p[col])
    # Top-K per row: sort by (row, score desc, neighbour asc). A full lexsort rather than
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
) -> TopK:
    """Top-K neighbours per column by (sampled) cosine.

    ``threshold = 0`` is exact cosine. Otherwise DIMSUM: kept entries scaled by ``1/q``,
    pair estimate = sum of products, users = ``estimate_users(kept co-occurrences)``.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    scaled, pattern, p, g = sample(sp.csr_matrix(matrix), threshold, seed, user_keys, item_keys)
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
        *arrays, n_pairs = _block_topk(s_block, c_block, first, p, top_k)
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


# --- shared by both engines: parameters and the output manifest ----------------------
#: Parameters a similarity run may override on the command line (others come from the
#: export manifest).
OVERRIDABLE = ("threshold", "top_k", "seed", "weights", "max_items_per_user", "min_items_per_user")


def resolve_params(manifest_params: dict, overrides: dict | None = None) -> RunParams:
    """The export manifest's ``params`` with the given (non-None) overrides applied."""
    data = dict(manifest_params)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in OVERRIDABLE:
            raise ValueError(f"unknown parameter {key!r}; overridable: {', '.join(OVERRIDABLE)}")
        if key == "weights" and isinstance(value, ActionWeights):
            value = value.as_dict()
        if key == "weights":
            value = {**data.get("weights", {}), **value}
        data[key] = value
    params = RunParams.from_json(data)
    if not 0 <= params.threshold <= 1:
        raise ValueError(f"threshold must be in [0, 1], got {params.threshold}")
    if params.top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {params.top_k}")
    if params.min_items_per_user < 1 or params.max_items_per_user < params.min_items_per_user:
        raise ValueError("need 1 <= min_items_per_user <= max_items_per_user")
    return params


def similarity_manifest(
    *,
    export_manifest: dict,
    export_manifest_uri: str,
    params: RunParams,
    engine: str,
    outputs: dict[str, str],
    counts: dict[str, int],
    gamma: float,
    timings: dict[str, float],
) -> dict:
    """The similarity manifest of docs/architecture.md (``gamma`` null when exact)."""
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
        "timings": {k: round(float(v), 3) for k, v in timings.items()},
        "created_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def run_local_similarity(
    export_manifest_uri: str, output_uri: str, params: RunParams | None = None
) -> dict:
    """The similarity stage on one machine (reads the export, writes output + manifest).

    Implemented in :mod:`simrec.similarity_output`, because reading and writing objects
    (pyarrow, fsspec/gcsfs) is not the core's business; imported lazily so importing the
    core stays I/O-free. Prefer ``simrec.similarity_output.run_local_similarity``.
    """
    from simrec.similarity_output import run_local_similarity as run

    return run(export_manifest_uri, output_uri, params)
