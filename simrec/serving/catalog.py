"""The item catalog as serving needs it: per-item flags, categories and attributes.

Built once per model version from the snapshot's optional ``catalog.parquet`` as flat
arrays (``catalog_arrays``, memory-mappable: see ``simrec.serving.model_image``), so a
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
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import orjson

from simrec.serving.string_table import ListLike, StringIndex, StringList, string_table

Arrays = dict[str, np.ndarray]

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


class CategoryColumn(ListLike):
    """``category[i]``: item ``i``'s category, None when the catalog does not list one."""

    def __init__(self, codes: np.ndarray, names: StringList) -> None:
        self._codes = memoryview(codes)
        self._names = names

    def __len__(self) -> int:
        return len(self._codes)

    def __getitem__(self, i: int) -> str | None:  # type: ignore[override]
        code = self._codes[i]
        return None if code < 0 else self._names[code]


class AttributeColumn(ListLike):
    """``attributes[i]``: item ``i``'s extra catalog columns (None: none), stored as JSON."""

    def __init__(self, data: np.ndarray, offsets: np.ndarray) -> None:
        self._data = memoryview(data)
        self._offsets = memoryview(offsets)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i: int) -> dict[str, Any] | None:  # type: ignore[override]
        lo, hi = self._offsets[i], self._offsets[i + 1]
        return orjson.loads(self._data[lo:hi]) if hi > lo else None


class PopularByCategory(Mapping[str, list[int]]):
    """Category -> its items, most popular first (each list built on first use)."""

    def __init__(self, codes: StringIndex, items: np.ndarray, offsets: np.ndarray) -> None:
        self._codes, self._items, self._offsets = codes, items, offsets
        self._lists: dict[str, list[int]] = {}

    def __getitem__(self, category: str) -> list[int]:
        found = self._lists.get(category)
        if found is None:
            code = self._codes[category]
            lo, hi = int(self._offsets[code]), int(self._offsets[code + 1])
            found = self._lists.setdefault(category, self._items[lo:hi].tolist())
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._codes)

    def __len__(self) -> int:
        return len(self._codes)


def catalog_arrays(table: Any, sku_index: Mapping[str, int], popular: Iterable[int]) -> Arrays:
    """The catalog as flat arrays over the model's item indices (``ServingCatalog`` reads
    them; built once per version, in the loader process of a server)."""
    n = len(sku_index)
    in_stock = np.zeros(n, dtype=np.uint8)
    category: list[str | None] = [None] * n
    attributes: list[bytes] = [b""] * n
    extra = [c for c in table.column_names if c not in ("sku", "category", "in_stock")]
    columns = {c: table[c].to_pylist() for c in ("sku", "category", "in_stock", *extra)}
    for row, sku in enumerate(columns["sku"]):
        i = sku_index.get(sku)
        if i is None:
            continue
        in_stock[i] = 1 if columns["in_stock"][row] else 0
        category[i] = columns["category"][row]
        if extra:
            # orjson, as the answers are written: NaN is null either way.
            attributes[i] = orjson.dumps({c: _jsonable(columns[c][row]) for c in extra})
    categories = sorted({c for c in category if c is not None})
    codes = {c: k for k, c in enumerate(categories)}
    category_code = np.array([-1 if c is None else codes[c] for c in category], dtype=np.int32)
    # Popular items per category, most popular first (the global order, grouped).
    by_category: list[list[int]] = [[] for _ in categories]
    for i in popular:
        c = category_code[i]
        if c >= 0:
            by_category[c].append(i)
    popular_offsets = np.zeros(len(categories) + 1, dtype=np.int64)
    np.cumsum([len(items) for items in by_category], out=popular_offsets[1:])
    attribute_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(a) for a in attributes], out=attribute_offsets[1:])
    prices: Arrays = {}
    if PRICE_COLUMN in extra and _numeric(table.schema.field(PRICE_COLUMN).type):
        price = np.full(n, np.nan)
        for sku, p in zip(columns["sku"], columns[PRICE_COLUMN], strict=True):
            i = sku_index.get(sku)
            if i is not None and p is not None and p > 0:
                price[i] = p
        prices["catalog_price"] = price
    return {
        **prices,
        "catalog_in_stock": in_stock,
        "catalog_category_code": category_code,
        **string_table(categories, "catalog_categories"),
        "catalog_popular": np.array([i for items in by_category for i in items], dtype=np.int64),
        "catalog_popular_offsets": popular_offsets,
        "catalog_attributes_bytes": np.frombuffer(b"".join(attributes), dtype=np.uint8),
        "catalog_attributes_offsets": attribute_offsets,
    }


class ServingCatalog:
    """Catalog lookups over a model's item indices, read from ``catalog_arrays``."""

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.in_stock = arrays["catalog_in_stock"]
        self.category_code = arrays["catalog_category_code"]
        self.categories = StringList(arrays, "catalog_categories")
        self._codes = StringIndex(arrays, "catalog_categories")
        self.category = CategoryColumn(self.category_code, self.categories)
        self.attributes = AttributeColumn(
            arrays["catalog_attributes_bytes"], arrays["catalog_attributes_offsets"]
        )
        self.popular_by_category = PopularByCategory(
            self._codes, arrays["catalog_popular"], arrays["catalog_popular_offsets"]
        )
        self.price: np.ndarray | None = arrays.get("catalog_price")  # NaN: no price
        n = len(self.in_stock)
        self._nothing = np.zeros(n, dtype=np.uint8)  # an unknown category matches nothing
        self._fields: dict[int, dict[str, Any]] = {}
        self.entries: dict[int, dict[str, Any]] = {}
        self._masks: dict[tuple[str | None, bool], np.ndarray | None] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_table(
        cls, table: Any, sku_index: Mapping[str, int], popular: Iterable[int]
    ) -> ServingCatalog:
        return cls(catalog_arrays(table, sku_index, popular))

    def fields(self, i: int) -> dict[str, Any]:
        """Item ``i``'s catalog fields of an answer (``category``, ``in_stock`` and, when
        the catalog has more columns, ``attributes``), built once per item and shared:
        callers copy them into their item, never change them."""
        cached = self._fields.get(i)
        if cached is None:
            cached = {"category": self.category[i], "in_stock": bool(self.in_stock[i])}
            attributes = self.attributes[i]
            if attributes is not None:
                cached["attributes"] = attributes
            cached = self._fields.setdefault(i, cached)
        return cached

    def entry(self, i: int, sku: str) -> dict[str, Any]:
        """Item ``i``'s answer entry ``{"sku", "score": 0.0, <fields>}``, built once per
        item and shared (``entries``): callers copy it (``dict.copy`` is the cheapest way
        to a new dict of these keys, in this order) and set the score."""
        cached = self.entries.get(i)
        if cached is None:
            cached = self.entries.setdefault(i, {"sku": sku, "score": 0.0, **self.fields(i)})
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
        mask = np.ones(len(self.in_stock), dtype=np.uint8) if base is None else base.copy()
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
