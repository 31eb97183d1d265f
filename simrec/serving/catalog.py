"""The item catalog as serving needs it: per-item flags, categories and attributes.

Built once per model version from the snapshot's optional ``catalog.parquet``, so a
request never touches pyarrow: filters are uint8 masks over item indices (the scoring
kernel skips items whose flag is 0) and the popularity fallback walks precomputed lists.

Model items the catalog does not list have no category and count as *not* in stock (a
sku that had events but left the shop's catalog is usually discontinued); catalog rows
for skus the model does not know are ignored. A numeric ``price`` column (an attribute
like any other in answers) is also what the ``price_within`` filter compares; items
without a price (null, NaN, <= 0) never pass it.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

MAX_CACHED_MASKS = 512  # (category, in_stock_only) pairs; known categories only
PRICE_COLUMN = "price"


def _numeric(arrow_type: Any) -> bool:
    import pyarrow.types as pat

    return pat.is_integer(arrow_type) or pat.is_floating(arrow_type) or pat.is_decimal(arrow_type)


def _jsonable(value: Any) -> Any:
    """Catalog attribute values as JSON-friendly Python values (others as strings)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


class ServingCatalog:
    """Catalog lookups over a model's item indices."""

    def __init__(self, table: Any, sku_index: dict[str, int], popular: list[int]) -> None:
        n = len(sku_index)
        self.in_stock = np.zeros(n, dtype=np.uint8)
        self.category: list[str | None] = [None] * n
        self.attributes: list[dict[str, Any] | None] = [None] * n
        extra = [c for c in table.column_names if c not in ("sku", "category", "in_stock")]
        columns = {c: table[c].to_pylist() for c in ("sku", "category", "in_stock", *extra)}
        for row, sku in enumerate(columns["sku"]):
            i = sku_index.get(sku)
            if i is None:
                continue
            self.in_stock[i] = 1 if columns["in_stock"][row] else 0
            self.category[i] = columns["category"][row]
            if extra:
                self.attributes[i] = {c: _jsonable(columns[c][row]) for c in extra}
        self.price: np.ndarray | None = None
        if PRICE_COLUMN in extra and _numeric(table.schema.field(PRICE_COLUMN).type):
            self.price = np.full(n, np.nan)
            for sku, p in zip(columns["sku"], columns[PRICE_COLUMN], strict=True):
                i = sku_index.get(sku)
                if i is not None and p is not None and p > 0:
                    self.price[i] = p
        self.categories = sorted({c for c in self.category if c is not None})
        codes = {c: k for k, c in enumerate(self.categories)}
        self.category_code = np.array(
            [-1 if c is None else codes[c] for c in self.category], dtype=np.int32
        )
        # Popular items per category, most popular first (the global order, grouped).
        self.popular_by_category: dict[str, list[int]] = {c: [] for c in self.categories}
        for i in popular:
            c = self.category[i]
            if c is not None:
                self.popular_by_category[c].append(i)
        self._codes = codes
        self._nothing = np.zeros(n, dtype=np.uint8)  # an unknown category matches nothing
        self.entries: dict[int, dict[str, Any]] = {}
        self._in_stock: list[bool] = self.in_stock.astype(bool).tolist()
        self._masks: dict[tuple[str | None, bool], np.ndarray | None] = {}
        self._lock = threading.Lock()

    def fields(self, i: int) -> dict[str, Any]:
        """Item ``i``'s catalog fields of an answer: ``category``, ``in_stock`` and, when
        the catalog has more columns, ``attributes``."""
        fields = {"category": self.category[i], "in_stock": self._in_stock[i]}
        if self.attributes[i] is not None:
            fields["attributes"] = self.attributes[i]
        return fields

    def entry(self, i: int, sku: str) -> dict[str, Any]:
        """Item ``i``'s answer entry ``{"sku", "score": 0.0, <fields>}``, built once per
        item and shared (``entries``): callers copy it (``dict.copy`` is the cheapest way
        to a new dict of these keys, in this order) and set the score."""
        cached = self.entries.get(i)
        if cached is None:
            cached = {"sku": sku, "score": 0.0, "category": self.category[i],
                      "in_stock": self._in_stock[i]}  # fmt: skip
            attributes = self.attributes[i]
            if attributes is not None:
                cached["attributes"] = attributes
            cached = self.entries.setdefault(i, cached)
        return cached

    def mask(self, category: str | None, in_stock_only: bool) -> np.ndarray | None:
        """uint8 per item: 1 when it passes the filters (None: no filter)."""
        if category is not None and category not in self._codes:
            return self._nothing
        key = (category, in_stock_only)
        cached = self._masks.get(key)
        if cached is not None or key in self._masks:
            return cached
        if category is None and not in_stock_only:
            mask = None
        else:
            mask = np.ones(len(self.category), dtype=np.uint8)
            if category is not None:
                mask &= (self.category_code == self._codes[category]).astype(np.uint8)
            if in_stock_only:
                mask &= self.in_stock
        with self._lock:
            if len(self._masks) < MAX_CACHED_MASKS:
                self._masks[key] = mask
        return mask


    def current_item_mask(
        self,
        base: np.ndarray | None,
        items: list[int],
        same_category: bool,
        price_within: float | None,
    ) -> np.ndarray:
        """``base`` (or all items) narrowed to the current items' attributes (Amazon
        Personalize's ``CurrentItem`` filters): with ``same_category``, items of a
        category one of ``items`` has; with ``price_within=F``, items whose price lies in
        ``[p / F, p * F]`` for the price ``p`` of one of ``items``. No current item with a
        category (or price) lets nothing through."""
        mask = np.ones(len(self.category), dtype=np.uint8) if base is None else base.copy()
        if same_category:
            codes = np.unique(self.category_code[items]) if items else self.category_code[:0]
            mask &= np.isin(self.category_code, codes[codes >= 0]).astype(np.uint8)
        if price_within is not None:
            assert self.price is not None, "checked by the caller"
            prices = np.sort(self.price[items]) if items else self.price[:0]
            prices = prices[prices > 0]  # NaN compares false: no price, no range
            near = np.zeros(len(mask), dtype=bool)
            lo, hi = -1.0, -1.0
            for p in prices.tolist():  # the ranges merged, then one pass per range
                if p / price_within > hi:
                    if hi >= 0:
                        near |= (self.price >= lo) & (self.price <= hi)
                    lo = p / price_within
                hi = p * price_within
            if hi >= 0:
                near |= (self.price >= lo) & (self.price <= hi)
            mask &= near.astype(np.uint8)
        return mask
