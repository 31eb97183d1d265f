"""Neighbors from item attributes, for items with no or few events ("cold" items).

Co-occurrence needs shoppers: a sku added to the catalog today has no neighbor list,
and one seen by two shoppers has a noisy one. Its attributes are known at once, so:

* **Content vectors** (:func:`tfidf`): each catalog item is a bag of tokens, one per
  attribute value: ``category:<c>``, ``brand:<b>``, ``price:<band>`` (log-spaced bands,
  ``price_bands_per_decade`` per factor 10) and ``title:<word>`` (lower-cased words of
  the title). ``tfidf[d, t] = tf(t, d) * idf(t)`` with ``idf(t) = ln((1 + N) / (1 +
  df(t))) + 1`` (N catalog items, ``df`` items holding ``t``), rows scaled to unit L2
  norm, so the cosine of two items is the dot product of their rows.
* **Content neighbors** (:class:`ContentIndex`): per catalog item, the ``top_k``
  items *of the model* (items with events, the ones filters, popularity and the
  kernel know) with the highest ``cosine * popularity_prior`` > 0 (the prior grows
  with the candidate's shoppers, :func:`popularity_prior`), itself left out; ties by
  model index.
* **The blend rule** (:func:`cooc_weight`, declared once here): an item seen by ``n``
  distinct shoppers in the window (the snapshot's ``popularity``) scores a neighbor
  ``w * cooc + (1 - w) * content`` with ``w = n / (n + blend_k)``; items with
  ``n >= warm_users`` keep their co-occurrence row untouched (so warm answers stay
  bit-identical), and an item the model does not know (``n = 0``) gets content only.

Pure Python/NumPy/SciPy over plain columns (no pyarrow import): the core's rule.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

#: The attribute columns read, when the catalog has them (category is always there).
TEXT_COLUMNS: tuple[str, ...] = ("category", "brand")
PRICE_COLUMN = "price"
TITLE_COLUMN = "title"
_WORD = re.compile(r"\w+", re.UNICODE)
#: ``reason`` of an answered neighbor, by where its score came from.
REASON_EVENTS = "events"
REASON_ATTRIBUTES = "attributes"
REASON_BOTH = "events+attributes"
#: A blended row's per-neighbor source bits (1 events, 2 attributes) -> its reason.
REASON_OF_SOURCES = {1: REASON_EVENTS, 2: REASON_ATTRIBUTES, 3: REASON_BOTH}


@dataclass(frozen=True)
class ContentParams:
    """The content model's parameters, each declared once with its default.

    Defaults from the cold-item evaluation (docs/evaluation.md, bench/cold_items.py).
    """

    top_k: int = 50  # content neighbors kept per catalog item
    blend_k: float = 5.0  # w_cooc = n / (n + blend_k), n = distinct shoppers of the item
    warm_users: int = 50  # items with n >= warm_users keep their co-occurrence row as is
    price_bands_per_decade: int = 4  # price bands per factor 10 (log-spaced)
    popularity_exponent: float = 2.0  # content score *= prior(j) ** this; 0 = cosine only

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if not (math.isfinite(self.blend_k) and self.blend_k > 0):
            raise ValueError(f"blend_k must be > 0, got {self.blend_k}")
        if self.warm_users < 0:
            raise ValueError(f"warm_users must be >= 0, got {self.warm_users}")
        if self.price_bands_per_decade < 1:
            raise ValueError("price_bands_per_decade must be >= 1")
        if not (math.isfinite(self.popularity_exponent) and self.popularity_exponent >= 0):
            raise ValueError("popularity_exponent must be >= 0")

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> ContentParams:
        """A model's content parameters: its metadata's ``content`` object (any of the
        fields; the rest take their defaults), so the params that built a model's
        content neighbors travel with it; unknown names fail."""
        given = dict(metadata.get("content") or {})
        unknown = set(given) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown content parameter(s): {', '.join(sorted(unknown))}")
        return cls(**given)


DEFAULT_PARAMS = ContentParams()


def cooc_weight(n_users: float, params: ContentParams = DEFAULT_PARAMS) -> float:
    """The blend rule: the co-occurrence share of an item seen by ``n_users`` shoppers
    (1 from ``warm_users`` on, where the row is served unchanged)."""
    if n_users >= params.warm_users:
        return 1.0
    n = max(float(n_users), 0.0)
    return n / (n + params.blend_k)


def price_band(price: Any, per_decade: int) -> int | None:
    """``floor(log10(price) * per_decade)``; None for a missing or non-positive price."""
    try:
        value = float(price)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    return math.floor(math.log10(value) * per_decade + 1e-9)


def item_tokens(
    columns: Mapping[str, Sequence[Any]], row: int, params: ContentParams = DEFAULT_PARAMS
) -> list[str]:
    """Row ``row``'s tokens (with repeats: a title word twice counts twice)."""
    out: list[str] = []
    for name in TEXT_COLUMNS:
        values = columns.get(name)
        if values is not None and values[row] is not None and str(values[row]).strip():
            out.append(f"{name}:{str(values[row]).strip().lower()}")
    prices = columns.get(PRICE_COLUMN)
    if prices is not None:
        band = price_band(prices[row], params.price_bands_per_decade)
        if band is not None:
            out.append(f"price:{band}")
    titles = columns.get(TITLE_COLUMN)
    if titles is not None and titles[row] is not None:
        out += [f"title:{w}" for w in _WORD.findall(str(titles[row]).lower())]
    return out


def tfidf(
    columns: Mapping[str, Sequence[Any]], params: ContentParams = DEFAULT_PARAMS
) -> tuple[sp.csr_matrix, list[str]]:
    """The catalog's unit-norm TF-IDF rows (float64 CSR, one per row of ``columns``) and
    the token vocabulary (sorted; column ``t`` is ``vocabulary[t]``)."""
    n = len(columns["sku"])
    docs = [item_tokens(columns, r, params) for r in range(n)]
    vocabulary = sorted({t for doc in docs for t in doc})
    code = {t: k for k, t in enumerate(vocabulary)}
    rows = np.repeat(np.arange(n), [len(d) for d in docs])
    cols = np.fromiter((code[t] for d in docs for t in d), dtype=np.int64, count=len(rows))
    tf = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, len(vocabulary)))
    tf.sum_duplicates()
    df = np.bincount(tf.indices, minlength=len(vocabulary))
    idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
    x = tf.multiply(idf[None, :]).tocsr()
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    x = sp.diags(np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)) @ x
    return x.tocsr(), vocabulary


def popularity_prior(popularity: np.ndarray, exponent: float) -> np.ndarray:
    """``(ln(1 + n_j) / ln(1 + max n)) ** exponent`` per item (1 for all when the
    exponent is 0 or nobody shopped): among equally similar items the one more shoppers
    chose ranks first, as a shop's own "related products" would."""
    pop = np.maximum(np.asarray(popularity, dtype=np.float64), 0.0)
    top = math.log1p(float(pop.max())) if len(pop) else 0.0
    if exponent == 0 or top == 0:
        return np.ones(len(pop))
    return (np.log1p(pop) / top) ** exponent


def top_neighbors(
    x: sp.csr_matrix,
    rows: np.ndarray,
    candidates: np.ndarray,
    k: int,
    weight: np.ndarray | None = None,
    block: int = 256,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per row ``rows[q]`` of ``x``, the ``k`` candidates (rows of ``x``) of highest
    cosine (times the candidate's ``weight``, in float32) > 0, the row itself left out:
    ``(positions in candidates int32, scores float32)``, ranked by score descending
    then position ascending.

    Dense blocks of ``block`` rows: attribute tokens such as a brand or a price band are
    shared by many items, so the products are dense anyway; a partition finds each
    row's k-th score, and only the few entries at or above it are sorted exactly."""
    c = x[candidates].T.tocsr().astype(np.float32)
    if weight is not None:
        c = (c @ sp.diags(np.asarray(weight, dtype=np.float32))).tocsr()
    n_cand = len(candidates)
    position = {int(r): p for p, r in enumerate(candidates.tolist())}
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for lo in range(0, len(rows), block):
        part = rows[lo : lo + block]
        sims = (x[part].astype(np.float32) @ c).toarray()
        for q, r in enumerate(part.tolist()):
            own = position.get(r)
            if own is not None:
                sims[q, own] = 0.0
        if n_cand > k:
            kth = np.partition(sims, n_cand - k, axis=1)[:, n_cand - k]
        else:
            kth = np.zeros(sims.shape[0], dtype=np.float32)
        for q in range(sims.shape[0]):
            row = sims[q]
            cols = np.flatnonzero((row >= kth[q]) & (row > 0))
            vals = row[cols]
            order = np.lexsort((cols, -vals))[:k]
            out.append((cols[order].astype(np.int32), vals[order]))
    return out


def block_key(columns: Mapping[str, Sequence[Any]], row: int) -> str | None:
    """The row's category as its token spells it (None: no category)."""
    values = columns.get("category")
    value = None if values is None else values[row]
    text = "" if value is None else str(value).strip().lower()
    return text or None


def content_neighbors(
    columns: Mapping[str, Sequence[Any]],
    model_skus: Sequence[str],
    popularity: Sequence[float] | np.ndarray,
    params: ContentParams = DEFAULT_PARAMS,
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Catalog columns -> ``(catalog skus, indptr, indices, scores)``: row ``r`` of the
    CSR lists catalog sku ``r``'s content neighbors as *model* item indices (the
    position in ``model_skus``), best first, scored ``cosine * popularity_prior``; see
    the module docstring.

    Candidates are the model items *of the same category* (an item without one: all
    model items): the cost is the sum over categories of items x candidates rather
    than catalog size squared, and the category filter is what a shop's "similar
    items" keep anyway."""
    skus = [str(s) for s in columns["sku"]]
    model_index = {s: i for i, s in enumerate(model_skus)}
    # Candidates: catalog rows of model items, in model index order.
    pairs = sorted((model_index[s], r) for r, s in enumerate(skus) if s in model_index)
    cand_model = np.array([i for i, _ in pairs], dtype=np.int32)
    cand_rows = np.array([r for _, r in pairs], dtype=np.int64)
    x, _ = tfidf(columns, params)
    prior = popularity_prior(np.asarray(popularity)[cand_model], params.popularity_exponent)
    keys = [block_key(columns, r) for r in range(len(skus))]
    by_key: dict[str | None, list[int]] = {}
    for p, r in enumerate(cand_rows.tolist()):
        by_key.setdefault(keys[r], []).append(p)
    groups: dict[str | None, list[int]] = {}
    for r, key in enumerate(keys):
        groups.setdefault(key, []).append(r)
    rows_out: list[tuple[np.ndarray, np.ndarray]] = [
        (cand_model[:0], prior[:0].astype(np.float32))
    ] * len(skus)
    for key, members in groups.items():
        sel = np.arange(len(cand_rows)) if key is None else np.array(by_key.get(key, []))
        if not len(sel):
            continue
        found = top_neighbors(x, np.array(members), cand_rows[sel], params.top_k, prior[sel])
        for r, (pos, vals) in zip(members, found, strict=True):
            rows_out[r] = (cand_model[sel[pos]], vals)
    indptr = np.zeros(len(skus) + 1, dtype=np.int64)
    np.cumsum([len(c) for c, _ in rows_out], out=indptr[1:])
    indices = np.concatenate([c for c, _ in rows_out]) if rows_out else cand_model[:0]
    scores = np.concatenate([v for _, v in rows_out]) if rows_out else np.zeros(0, np.float32)
    return skus, indptr, indices.astype(np.int32), scores.astype(np.float32)


def catalog_columns(table: Any) -> dict[str, list[Any]]:
    """The columns the content model reads, from a catalog table (anything with
    ``column_names`` and ``table[name].to_pylist()``, e.g. pyarrow)."""
    wanted = ("sku", *TEXT_COLUMNS, PRICE_COLUMN, TITLE_COLUMN)
    return {c: table[c].to_pylist() for c in wanted if c in table.column_names}


class ContentIndex:
    """Content neighbors of every catalog sku over a model's items, and the blend.

    Over :func:`content_neighbors`' arrays (``row_of``: catalog sku -> its row), which
    are built once per model version with the rest of the serving image, in the
    loader process; a request then only merges two short rows.
    """

    def __init__(
        self,
        row_of: Mapping[str, int],
        indptr: np.ndarray,
        indices: np.ndarray,
        scores: np.ndarray,
        popularity: Sequence[float] | np.ndarray,
        params: ContentParams = DEFAULT_PARAMS,
    ) -> None:
        self.row_of = row_of
        self.indptr, self.indices, self.scores = indptr, indices, scores
        self.popularity = popularity
        self.params = params
        # The blended CSR with its source bits (``blended_matrix(..., sources=True)``),
        # when the serving image holds it: a cold item's served row is then read, not
        # merged per request.
        self.blended: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    @classmethod
    def build(
        cls,
        columns: Mapping[str, Sequence[Any]],
        model_skus: Sequence[str],
        popularity: Sequence[float] | np.ndarray,
        params: ContentParams = DEFAULT_PARAMS,
    ) -> ContentIndex:
        """In this process, from catalog columns (tests, the evaluation)."""
        skus, indptr, indices, scores = content_neighbors(columns, model_skus, popularity, params)
        row_of = {s: r for r, s in enumerate(skus)}
        return cls(row_of, indptr, indices, scores, popularity, params)

    def content_row(self, sku: str) -> tuple[np.ndarray, np.ndarray]:
        """``sku``'s content neighbors (model indices, cosines); empty if not listed."""
        r = self.row_of.get(sku)
        if r is None:
            return self.indices[:0], self.scores[:0]
        lo, hi = self.indptr[r], self.indptr[r + 1]
        return self.indices[lo:hi], self.scores[lo:hi]

    def is_cold(self, item: int | None) -> bool:
        """Whether the blend changes this item's row (None: not in the model)."""
        return item is None or self.popularity[item] < self.params.warm_users

    def blended_row(
        self, sku: str, item: int | None, cooc: tuple[np.ndarray, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """The neighbor row served for ``sku`` (model index ``item`` or None) given its
        co-occurrence row: ``(model indices, float32 scores, reasons)``, best first,
        ties by index. A warm item gets ``cooc`` unchanged (reasons all "events")."""
        cols, sims = cooc
        if not self.is_cold(item):
            return cols, sims, [REASON_EVENTS] * len(cols)
        cols, sims, sources = self._blend(sku, item, cooc)
        return cols, sims, [REASON_OF_SOURCES[b] for b in sources]

    def served_row(self, item: int) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
        """Model item ``item``'s blended row as ``blended_row`` gives it, read from
        ``blended`` (None without it)."""
        if self.blended is None:
            return None
        indptr, indices, scores, sources = self.blended
        lo, hi = indptr[item], indptr[item + 1]
        reasons = list(map(REASON_OF_SOURCES.__getitem__, sources[lo:hi].tolist()))
        return indices[lo:hi], scores[lo:hi], reasons

    def _blend(
        self, sku: str, item: int | None, cooc: tuple[np.ndarray, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """A cold row's blend: model indices, float32 scores, source bits."""
        cols, sims = cooc
        w = cooc_weight(0.0 if item is None else self.popularity[item], self.params)
        acc: dict[int, float] = {}
        source: dict[int, int] = {}  # bit 1: events, bit 2: attributes
        if w > 0:
            for j, s in zip(cols.tolist(), sims.tolist(), strict=True):
                acc[j] = acc.get(j, 0.0) + w * s
                source[j] = source.get(j, 0) | 1
        for j, s in zip(*(a.tolist() for a in self.content_row(sku)), strict=True):
            acc[j] = acc.get(j, 0.0) + (1.0 - w) * s
            source[j] = source.get(j, 0) | 2
        limit = max(len(cols), self.params.top_k)
        ranked = sorted(((j, s) for j, s in acc.items() if s > 0), key=lambda t: (-t[1], t[0]))
        ranked = ranked[:limit]
        return (
            np.array([j for j, _ in ranked], dtype=np.int32),
            np.array([s for _, s in ranked], dtype=np.float32),
            [source[j] for j, _ in ranked],
        )

    def blended_matrix(
        self,
        skus: Sequence[str],
        indptr: np.ndarray,
        indices: np.ndarray,
        scores: np.ndarray,
        sources: bool = False,
    ) -> tuple[np.ndarray, ...] | None:
        """The model's CSR with every cold item's row replaced by its blended row (warm
        rows copied as they are), for the scorer; None when no item is cold. With
        ``sources``, a fourth array: each entry's source bits (``REASON_OF_SOURCES``)."""
        n = len(skus)
        cold = [i for i in range(n) if self.is_cold(i)]
        if not cold:
            return None
        rows: list[tuple[np.ndarray, np.ndarray]] = []
        bits: list[np.ndarray] = []
        is_cold = np.zeros(n, dtype=bool)
        is_cold[cold] = True
        for i in range(n):
            lo, hi = int(indptr[i]), int(indptr[i + 1])
            row = (indices[lo:hi], scores[lo:hi])
            if is_cold[i]:
                cols, sims, source = self._blend(skus[i], i, row)
                rows.append((cols, sims))
                bits.append(np.array(source, dtype=np.uint8))
            else:
                rows.append(row)
                bits.append(np.ones(hi - lo, dtype=np.uint8))
        out = np.zeros(n + 1, dtype=np.int64)
        np.cumsum([len(c) for c, _ in rows], out=out[1:])
        matrix = (
            out,
            np.concatenate([c for c, _ in rows]).astype(np.int32) if n else indices[:0],
            np.concatenate([v for _, v in rows]).astype(np.float32) if n else scores[:0],
        )
        if not sources:
            return matrix
        return (*matrix, np.concatenate(bits) if n else np.zeros(0, dtype=np.uint8))

    def query_rows(
        self,
        skus: Iterable[str],
        sku_index: Mapping[str, int],
        neighbors: Any,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A CSR ``(indptr, indices, scores)`` with one blended row per sku in ``skus``
        (``neighbors(i)`` gives model item ``i``'s co-occurrence row), to score a query
        holding cold items with ``make_scorer(..., n_cols=n_items)``."""
        empty = (self.indices[:0], self.scores[:0])
        indptr, indices, scores = [0], [], []
        for sku in skus:
            item = sku_index.get(sku)
            cols, sims, _ = self.blended_row(sku, item, empty if item is None else neighbors(item))
            indices.append(cols)
            scores.append(sims)
            indptr.append(indptr[-1] + len(cols))
        return (
            np.asarray(indptr, dtype=np.int64),
            np.concatenate(indices).astype(np.int32) if indices else self.indices[:0],
            np.concatenate(scores).astype(np.float32) if scores else self.scores[:0],
        )
