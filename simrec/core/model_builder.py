"""Build the serving ``ModelSnapshot`` from the similarity stage's rows.

Pure and engine-free so the Beam load pipeline, the local engine and the tests share one
definition of the serving model:

* vocabulary: every sku of the items output plus every sku named in a neighbor list,
  sorted (so an item's index is stable for a given input, whatever the read order);
* CSR rows: each item's neighbors by score descending, ties by neighbor index
  ascending, where the score compared is the stored float32 (so the stored order is
  exactly the contract ``ModelSnapshot`` documents);
* popularity: the items output's distinct-user count, 0 for a sku it does not list;
* trending: the items output's recent and prior weights ranked by
  ``simrec.core.trending.ranking`` over the run's window with the run's trending
  parameters (``metadata["params"]``'s ``window_days`` and ``trending_*``, else their
  defaults: the values of runs made before they were parameters).

The bought-together rows (``layout.BOUGHT_TOGETHER``, the same form) become a second CSR
over the same vocabulary, sorted by the same rule; without them the snapshot has none.

Neighbor rows come in the normalised form ``{"sku", "items", "scores", "users"}``;
``neighbor_row`` turns the Parquet record ``{"sku", "neighbors": [{sku, score, users}]}``
into it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from simrec.core import trending
from simrec.core.params import DEFAULTS, TRENDING
from simrec.core.runs import RunParams
from simrec.core.snapshot import BOUGHT_TOGETHER_ARRAYS, ModelSnapshot

NeighborRow = dict[str, Any]
#: The items output's weight columns (summed action weights; see ``simrec.core.layout``).
WEIGHTS = ("weight", "recent_weight", "prior_weight")
DEFAULT_WINDOW = RunParams.__dataclass_fields__["window_days"].default


def neighbor_row(record: Mapping[str, Any]) -> NeighborRow:
    """Normalise one ``neighbors`` Parquet record; neighbors by score desc, then sku asc.

    Bad records raise ``ValueError`` naming the sku: a load must not publish a model
    built from a malformed similarity output.
    """
    sku = _sku(record.get("sku"), "item")
    neighbors = record.get("neighbors")
    if neighbors is None:
        neighbors = []
    entries: list[tuple[str, float, float]] = []
    seen: set[str] = set()
    for n in neighbors:
        other = _sku(n.get("sku"), f"neighbor of {sku!r}")
        if other == sku:
            raise ValueError(f"item {sku!r} lists itself as a neighbor")
        if other in seen:
            raise ValueError(f"item {sku!r} lists neighbor {other!r} twice")
        seen.add(other)
        entries.append(
            (
                other,
                _finite(n.get("score"), f"score of {sku!r}->{other!r}"),
                _finite(n.get("users"), f"users of {sku!r}->{other!r}", default=0.0),
            )
        )
    entries.sort(key=lambda e: (-e[1], e[0]))
    return {
        "sku": sku,
        "items": [e[0] for e in entries],
        "scores": [e[1] for e in entries],
        "users": [e[2] for e in entries],
    }


def item_stats(record: Mapping[str, Any]) -> dict[str, Any]:
    """Normalise one ``items`` Parquet record to ``{"sku", "users", "weight",
    "recent_weight", "prior_weight"}`` (a missing weight is 0)."""
    sku = _sku(record.get("sku"), "item stats")
    users = record.get("users")
    if users is None or int(users) < 0:
        raise ValueError(f"item {sku!r} has an invalid users count {users!r}")
    out: dict[str, Any] = {"sku": sku, "users": int(users)}
    for name in WEIGHTS:
        value = record.get(name)
        out[name] = 0.0 if value is None else _finite(value, f"{name} of {sku!r}")
    return out


def build_snapshot(
    neighbor_rows: Iterable[Mapping[str, Any]],
    item_rows: Iterable[Mapping[str, Any]],
    metadata: Mapping[str, Any] | None = None,
    bought_together_rows: Iterable[Mapping[str, Any]] | None = None,
) -> ModelSnapshot:
    """The snapshot for these rows; ``metadata["counts"]`` gains items, neighbor_rows, nnz
    (and bought_together_rows with the bought-together rows).

    Raises ``ValueError`` on duplicate skus or rows whose lists disagree in length.
    """
    rows = list(neighbor_rows)
    together = None if bought_together_rows is None else list(bought_together_rows)
    popularity_by_sku: dict[str, int] = {}
    trend_by_sku: dict[str, tuple[float, float]] = {}
    for item in item_rows:
        sku = _sku(item.get("sku"), "item stats")
        if sku in popularity_by_sku:
            raise ValueError(f"item {sku!r} appears twice in the items output")
        popularity_by_sku[sku] = int(item.get("users") or 0)
        trend_by_sku[sku] = (
            float(item.get("recent_weight") or 0.0), float(item.get("prior_weight") or 0.0)
        )

    vocabulary: set[str] = set(popularity_by_sku)
    for table in (rows, together or []):
        _check_rows(table, vocabulary)

    skus = sorted(vocabulary)
    index = {sku: i for i, sku in enumerate(skus)}
    indptr, indices, scores, users, lengths = _csr(rows, index)
    popularity = np.array([popularity_by_sku.get(s, 0) for s in skus], dtype=np.float64)
    trend = np.array(
        [trend_by_sku.get(s, (0.0, 0.0)) for s in skus], dtype=np.float64
    ).reshape(-1, 2)
    run = (metadata or {}).get("params", {})
    window_days = int(run.get("window_days", DEFAULT_WINDOW))
    model = DEFAULTS.replace(**{n: run[n] for n in TRENDING if n in run})
    recent_days, prior_days = trending.window_split(window_days, model.trending_recent_days)
    trending_items, trending_scores = trending.ranking(
        trend[:, 0], trend[:, 1], recent_days, prior_days, model
    )

    meta = dict(metadata or {})
    meta["counts"] = {
        **dict(meta.get("counts") or {}),
        "items": len(skus),
        "neighbor_rows": sum(1 for n in lengths if n),
        "nnz": int(indptr[-1]),
    }
    bought: dict[str, np.ndarray] = {}
    if together is not None:
        bt = _csr(together, index)
        bought = dict(zip(("bt_indptr", "bt_indices", "bt_scores", "bt_users"), bt[:4],
                          strict=True))  # fmt: skip
        meta["counts"]["bought_together_rows"] = sum(1 for n in bt[4] if n)
    return ModelSnapshot(
        skus=skus,
        indptr=indptr,
        indices=indices,
        scores=scores,
        users=users,
        popularity=popularity,
        metadata=meta,
        trending=trending_items,
        trending_scores=trending_scores,
        **bought,
    )


def _check_rows(rows: list[Mapping[str, Any]], vocabulary: set[str]) -> None:
    """One row per sku, lists of one length; their skus join ``vocabulary``."""
    seen_rows: set[str] = set()
    for row in rows:
        sku = _sku(row.get("sku"), "item")
        if sku in seen_rows:
            raise ValueError(f"item {sku!r} has two neighbor rows")
        seen_rows.add(sku)
        n = len(row["items"])
        if len(row["scores"]) != n or len(row["users"]) != n:
            raise ValueError(f"item {sku!r}: items, scores and users differ in length")
        vocabulary.add(sku)
        vocabulary.update(row["items"])


def _csr(
    rows: list[Mapping[str, Any]], index: Mapping[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """``(indptr, indices, scores float32, users float32, row lengths)``: each row's
    neighbors by stored float32 score descending, ties by neighbor index ascending."""
    lengths = [len(row["items"]) for row in rows]
    nnz = int(sum(lengths))
    row_idx = np.repeat(np.array([index[r["sku"]] for r in rows], dtype=np.int64), lengths)
    nbr_idx = np.fromiter((index[s] for r in rows for s in r["items"]), dtype=np.int32, count=nnz)
    scores = np.fromiter((s for r in rows for s in r["scores"]), dtype=np.float64, count=nnz)
    users = np.fromiter((u for r in rows for u in r["users"]), dtype=np.float64, count=nnz)
    scores32 = scores.astype(np.float32)
    order = np.lexsort((nbr_idx, -scores32, row_idx))
    indptr = np.zeros(len(index) + 1, dtype=np.int64)
    np.cumsum(np.bincount(row_idx, minlength=len(index)), out=indptr[1:])
    return indptr, nbr_idx[order], scores32[order], users[order].astype(np.float32), lengths


def same_content(a: ModelSnapshot, b: ModelSnapshot) -> bool:
    """True when two snapshots serve the same model (metadata aside)."""
    return a.skus == b.skus and all(
        np.array_equal(getattr(a, name), getattr(b, name))
        for name in (
            "indptr", "indices", "scores", "users", "popularity", "trending", "trending_scores",
            *BOUGHT_TOGETHER_ARRAYS,
        )
    )


def _sku(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what}: sku must be a non-empty string, got {value!r}")
    return value


def _finite(value: Any, what: str, default: float | None = None) -> float:
    if value is None and default is not None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} is not finite: {value!r}")
    return number
