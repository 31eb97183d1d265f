"""The serving model: an immutable, compact snapshot of neighbor lists.

A version folder holds, written in this order:

* ``arrays.npz``: ``indptr`` (int64, n+1), ``indices`` (int32), ``scores`` (float32),
  ``users`` (float32): row ``i`` of the CSR lists item ``i``'s neighbors sorted by
  score descending (ties: neighbor index ascending); ``popularity`` (float64, n):
  distinct users per item in the window, for the fallback; ``trending`` (int32) and
  ``trending_scores`` (float64): the trending items best first and their growth
  (``simrec.core.trending``; empty in snapshots built before it); ``bt_indptr``,
  ``bt_indices``, ``bt_scores``, ``bt_users``: the second neighbor model (frequently
  bought together, ``simrec.core.baskets``) in the same form over the same vocabulary,
  absent in snapshots built before it (serving then answers from the fallback).
* ``skus.json``: the vocabulary, ``skus[i]`` is item ``i``; sorted, unique.
* ``catalog.parquet`` (optional): the shop's item catalog, one row per sku with
  ``sku`` (string, unique), ``category`` (string, may be null), ``in_stock`` (bool) and
  any attribute columns; serving filters and enriches results with it.
* ``metadata.json``: version, tenant, run id, params, counts. Written last: a version
  without it is incomplete and never loaded.

``models/<tenant>/LATEST`` holds the name of a complete version and is written only after
that version's ``metadata.json``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ARRAYS_NAME = "arrays.npz"
SKUS_NAME = "skus.json"
METADATA_NAME = "metadata.json"
CATALOG_NAME = "catalog.parquet"
CATALOG_COLUMNS = ("sku", "category", "in_stock")
FORMAT_VERSION = 1


def catalog_table(catalog: Any) -> Any:
    """A catalog (pyarrow Table, pandas DataFrame or dict of columns) -> a checked
    pyarrow Table with ``sku``/``category`` as strings and ``in_stock`` as bool.

    pyarrow is imported here only: the core stays importable without it.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(catalog, pa.Table):
        table = catalog
    elif isinstance(catalog, dict):
        table = pa.table(catalog)
    elif hasattr(catalog, "to_dict") and hasattr(catalog, "columns"):  # pandas
        table = pa.Table.from_pandas(catalog, preserve_index=False)
    else:
        raise TypeError(f"catalog must be a table or a dict of columns, not {type(catalog)}")
    missing = [c for c in CATALOG_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"catalog lacks column(s) {', '.join(missing)}")
    try:
        table = table.set_column(
            table.schema.get_field_index("sku"), "sku", table["sku"].cast(pa.string())
        )
        table = table.set_column(
            table.schema.get_field_index("category"),
            "category",
            table["category"].cast(pa.string()),
        )
        table = table.set_column(
            table.schema.get_field_index("in_stock"), "in_stock", table["in_stock"].cast(pa.bool_())
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ValueError(f"catalog column has the wrong type: {exc}") from None
    if table["sku"].null_count or table["in_stock"].null_count:
        raise ValueError("catalog sku and in_stock must not be null")
    if pc.count_distinct(table["sku"]).as_py() != table.num_rows:
        raise ValueError("catalog skus must be unique")
    return table


#: The arrays of ``arrays.npz``, in their order there, with the dtype each is held in.
ARRAY_DTYPES: dict[str, type[np.generic]] = {
    "indptr": np.int64,
    "indices": np.int32,
    "scores": np.float32,
    "users": np.float32,
    "popularity": np.float64,
    "trending": np.int32,
    "trending_scores": np.float64,
}
_NO_TRENDING = {
    "trending": np.zeros(0, dtype=np.int32),
    "trending_scores": np.zeros(0, dtype=np.float64),
}
#: The bought-together CSR arrays and their dtypes (all empty: the snapshot has none).
BOUGHT_TOGETHER_ARRAYS: dict[str, type] = {
    "bt_indptr": np.int64, "bt_indices": np.int32, "bt_scores": np.float32,
    "bt_users": np.float32,
}  # fmt: skip
_NO_BOUGHT_TOGETHER = {name: np.zeros(0, dtype=t) for name, t in BOUGHT_TOGETHER_ARRAYS.items()}


def _empty(dtype: type) -> np.ndarray:
    return field(default_factory=lambda: np.zeros(0, dtype=dtype))


@dataclass
class ModelSnapshot:
    skus: Sequence[str]  # a list, or serving's memory-mapped StringList
    indptr: np.ndarray
    indices: np.ndarray
    scores: np.ndarray
    users: np.ndarray
    popularity: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)
    catalog: Any = None  # optional pyarrow Table, see catalog_table()
    trending: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    trending_scores: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    bt_indptr: np.ndarray = _empty(np.int64)  # empty: no bought-together model
    bt_indices: np.ndarray = _empty(np.int32)
    bt_scores: np.ndarray = _empty(np.float32)
    bt_users: np.ndarray = _empty(np.float32)

    def __post_init__(self) -> None:
        if self.catalog is not None:
            self.catalog = catalog_table(self.catalog)
        for name, dtype in {**ARRAY_DTYPES, **BOUGHT_TOGETHER_ARRAYS}.items():
            setattr(self, name, np.ascontiguousarray(getattr(self, name), dtype=dtype))
        self.validate()

    @classmethod
    def prevalidated(cls, **fields: Any) -> ModelSnapshot:
        """A snapshot over arrays already converted and validated (serving's model image,
        built and checked by its loader process): no copy and no pass over the data, so
        building it costs the serving process nothing per item."""
        snapshot = cls.__new__(cls)
        snapshot.__dict__.update(
            {"metadata": {}, "catalog": None, **_NO_TRENDING, **_NO_BOUGHT_TOGETHER, **fields}
        )
        return snapshot

    @property
    def n_items(self) -> int:
        return len(self.skus)

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", ""))

    @property
    def has_bought_together(self) -> bool:
        return len(self.bt_indptr) > 0

    def bought_together(self) -> ModelSnapshot | None:
        """The bought-together model as a snapshot of its own (same vocabulary, popularity
        and catalog), so the one recommender serves it; None when this one has none."""
        if not self.has_bought_together:
            return None
        return ModelSnapshot.prevalidated(
            skus=self.skus, indptr=self.bt_indptr, indices=self.bt_indices,
            scores=self.bt_scores, users=self.bt_users, popularity=self.popularity,
            metadata=self.metadata, catalog=self.catalog,
        )  # fmt: skip

    def validate(self) -> None:
        self._validate_csr(self.indptr, self.indices, self.scores, self.users, "")
        if self.has_bought_together or len(self.bt_indices):
            self._validate_csr(self.bt_indptr, self.bt_indices, self.bt_scores, self.bt_users,
                               "bought-together ")  # fmt: skip
        self._validate_rest()

    def _validate_csr(
        self, indptr: np.ndarray, indices: np.ndarray, scores: np.ndarray, users: np.ndarray,
        what: str,
    ) -> None:  # fmt: skip
        n = len(self.skus)
        if len(indptr) != n + 1 or indptr[0] != 0:
            raise ValueError(f"{what}indptr must have n_items + 1 entries starting at 0")
        nnz = int(indptr[-1])
        if not (len(indices) == len(scores) == len(users) == nnz):
            raise ValueError(f"{what}indices, scores and users must have indptr[-1] entries")
        if np.any(np.diff(indptr) < 0):
            raise ValueError(f"{what}indptr must be non-decreasing")
        if nnz and (indices.min() < 0 or indices.max() >= n):
            raise ValueError(f"{what}neighbor index out of range")
        for name, values in (("scores", scores), ("users", users)):
            if values.size and not np.isfinite(values).all():
                bad = int(np.count_nonzero(~np.isfinite(values)))
                raise ValueError(f"{what}{name} has {bad} non-finite value(s) (NaN or inf)")

    def _validate_rest(self) -> None:
        n = len(self.skus)
        if len(self.popularity) != n:
            raise ValueError("popularity must have one entry per item")
        if len(self.trending) != len(self.trending_scores):
            raise ValueError("trending and trending_scores must have the same length")
        if len(self.trending) and (self.trending.min() < 0 or self.trending.max() >= n):
            raise ValueError("trending item index out of range")
        if any(a >= b for a, b in zip(self.skus, self.skus[1:], strict=False)):
            raise ValueError("skus must be sorted and unique")
        # Checked at build and at load alike: JSON has no NaN, so a non-finite score would
        # be served as null, and it breaks every ranking it enters (scores and users: in
        # _validate_csr).
        for name in ("popularity", "trending_scores"):
            values = getattr(self, name)
            if values.size and not np.isfinite(values).all():
                bad = int(np.count_nonzero(~np.isfinite(values)))
                raise ValueError(f"{name} has {bad} non-finite value(s) (NaN or inf)")

    def neighbors(self, item: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.indptr[item], self.indptr[item + 1]
        return self.indices[lo:hi], self.scores[lo:hi]

    # --- serialisation ----------------------------------------------------------
    def to_files(self) -> dict[str, bytes]:
        """File name -> content, in the order they must be written."""
        buf = io.BytesIO()
        np.savez(
            buf,
            **{name: getattr(self, name) for name in ARRAY_DTYPES},
            **({name: getattr(self, name) for name in BOUGHT_TOGETHER_ARRAYS}
               if self.has_bought_together else {}),  # fmt: skip
        )
        meta = {"format": FORMAT_VERSION, **self.metadata}
        files = {
            ARRAYS_NAME: buf.getvalue(),
            SKUS_NAME: json.dumps(self.skus, separators=(",", ":")).encode(),
        }
        if self.catalog is not None:
            import pyarrow.parquet as pq

            out = io.BytesIO()
            pq.write_table(self.catalog, out)
            files[CATALOG_NAME] = out.getvalue()
        files[METADATA_NAME] = json.dumps(meta, indent=2, sort_keys=True).encode()
        return files

    @classmethod
    def from_files(cls, files: dict[str, bytes]) -> ModelSnapshot:
        metadata = json.loads(files[METADATA_NAME])
        if metadata.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported snapshot format {metadata.get('format')!r}")
        with np.load(io.BytesIO(files[ARRAYS_NAME])) as arrays:
            data = {k: arrays[k] for k in arrays.files}
        catalog = None
        if files.get(CATALOG_NAME) is not None:
            import pyarrow.parquet as pq

            catalog = pq.read_table(io.BytesIO(files[CATALOG_NAME]))
        return cls(skus=json.loads(files[SKUS_NAME]), metadata=metadata, catalog=catalog, **data)
