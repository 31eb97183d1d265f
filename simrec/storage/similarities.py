"""A similarity run's output in storage, read and written by every engine alike.

```
<output>/neighbors/*.parquet   sku, neighbors: list<struct<sku, score, users>> (sorted)
<output>/items/*.parquet       sku, users (distinct users), weight (summed weight),
                               recent_weight, prior_weight (simrec.core.trending)
<output>/bought_together/*.parquet  as neighbors, over baskets (simrec.core.baskets);
                               absent in runs made before it
<output>/_MANIFEST.json        written last
```

The names and columns are :mod:`simrec.core.layout`'s; the Arrow schemas here are built
from them. The Spark job writes the same tables with Spark; the readers here read either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from simrec import storage
from simrec.core import layout
from simrec.core.similarity import TopK

if TYPE_CHECKING:  # pandas only for the evaluation's pairs: the Beam image has none
    import pandas as pd


def _fields(fields: tuple[tuple[str, str], ...]) -> list[pa.Field]:
    return [pa.field(name, pa.type_for_alias(kind)) for name, kind in fields]


NEIGHBOR_TYPE = pa.struct(_fields(layout.NEIGHBOR_FIELDS))
NEIGHBORS_SCHEMA = pa.schema([("sku", pa.string()), (layout.NEIGHBORS, pa.list_(NEIGHBOR_TYPE))])
ITEMS_SCHEMA = pa.schema(_fields(layout.ITEMS_FIELDS))
PART_NAME = "part-00000.parquet"


# --- building tables ---------------------------------------------------------------
def neighbors_table(skus: np.ndarray, topk: TopK) -> pa.Table:
    """One row per item with at least one neighbor, neighbors in TopK order."""
    skus = pa.array(np.asarray(skus, dtype=object), type=pa.string())
    structs = pa.StructArray.from_arrays(
        [
            skus.take(pa.array(topk.neighbors, type=pa.int64())),
            pa.array(topk.scores, type=pa.float64()),
            pa.array(topk.users, type=pa.float64()),
        ],
        fields=list(NEIGHBOR_TYPE),
    )
    lists = pa.ListArray.from_arrays(pa.array(topk.indptr, type=pa.int32()), structs)
    table = pa.Table.from_arrays([skus, lists], schema=NEIGHBORS_SCHEMA)
    return table.filter(pa.array(np.diff(topk.indptr) > 0))


def items_table(
    skus: np.ndarray,
    users: np.ndarray,
    weight: np.ndarray,
    recent_weight: np.ndarray,
    prior_weight: np.ndarray,
) -> pa.Table:
    return pa.Table.from_arrays(
        [
            pa.array(np.asarray(skus, dtype=object), type=pa.string()),
            pa.array(np.asarray(users, dtype=np.int64)),
            *(pa.array(np.asarray(w, dtype=np.float64))
              for w in (weight, recent_weight, prior_weight)),
        ],
        schema=ITEMS_SCHEMA,
    )


# --- writing -----------------------------------------------------------------------
def write_tables(
    output_uri: str, neighbors: pa.Table, items: pa.Table, bought_together: pa.Table
) -> dict[str, str]:
    """Replace the output's tables. The stale manifest goes first, so no reader ever
    takes old tables for new ones; call :func:`write_manifest` after this."""
    uris = layout.similarity_outputs(output_uri)
    storage.remove(uris["manifest"])
    tables = ((layout.NEIGHBORS, neighbors), (layout.ITEMS, items),
              (layout.BOUGHT_TOGETHER, bought_together))  # fmt: skip
    for name, table in tables:
        storage.remove(uris[name], recursive=True)
        fs, path = storage.filesystem(layout.join(uris[name], PART_NAME))
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(path, "wb") as f:
            pq.write_table(table, f, compression="zstd")
    return {name: uris[name] for name, _ in tables}


def write_manifest(output_uri: str, manifest: dict[str, Any]) -> str:
    uri = layout.similarity_outputs(output_uri)["manifest"]
    storage.write_json(uri, manifest)
    return uri


# --- reading -----------------------------------------------------------------------
def read_manifest(uri: str) -> dict[str, Any]:
    """A similarity manifest, given its own URI or its output folder."""
    if not uri.rstrip("/").endswith(layout.MANIFEST_NAME):
        uri = layout.similarity_outputs(uri)["manifest"]
    return storage.read_json(uri)


def read_neighbors(uri: str) -> pa.Table:
    """The neighbors table, sorted by sku (``uri``: the neighbors folder)."""
    return storage.read_parquet_folder(uri, list(layout.NEIGHBORS_COLUMNS)).sort_by("sku")


def read_items(uri: str) -> pa.Table:
    """The items table, sorted by sku (``uri``: the items folder)."""
    return storage.read_parquet_folder(uri, ITEMS_SCHEMA.names).sort_by("sku")


def neighbor_pairs(neighbors: pa.Table) -> pd.DataFrame:
    """Long form: one row per (sku, neighbor) with its rank (0 = best), score, users."""
    import pandas as pd

    lists = pc.list_flatten(neighbors.column(layout.NEIGHBORS))
    lengths = pc.list_value_length(neighbors.column(layout.NEIGHBORS)).to_numpy(
        zero_copy_only=False
    )
    lengths = np.nan_to_num(lengths.astype(np.float64)).astype(np.int64)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return pd.DataFrame(
        {
            "sku": np.repeat(neighbors.column("sku").to_numpy(zero_copy_only=False), lengths),
            "neighbor": pc.struct_field(lists, "sku").to_numpy(zero_copy_only=False),
            "rank": np.arange(len(starts)) - starts,
            "score": pc.struct_field(lists, "score").to_numpy(zero_copy_only=False),
            "users": pc.struct_field(lists, "users").to_numpy(zero_copy_only=False),
        }
    )
