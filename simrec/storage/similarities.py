"""The similarity stage's output layout, and the single-machine engine that writes it.

```
<output>/neighbors/*.parquet   sku, neighbors: list<struct<sku, score, users>> (sorted)
<output>/items/*.parquet       sku, users (distinct users), weight (summed weight)
<output>/_MANIFEST.json        written last
```

The Spark job writes the same layout with Spark; the readers here read either (files
starting with ``_`` or ``.``, such as Spark's ``_SUCCESS``, are skipped).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from simrec import storage
from simrec.core import layout
from simrec.core.matrix import UserItemMatrix
from simrec.core.runs import RunParams
from simrec.core.similarity import TopK, fit_similarities, resolve_params, similarity_manifest

NEIGHBOR_TYPE = pa.struct([("sku", pa.string()), ("score", pa.float64()), ("users", pa.float64())])
NEIGHBORS_SCHEMA = pa.schema([("sku", pa.string()), ("neighbors", pa.list_(NEIGHBOR_TYPE))])
ITEMS_SCHEMA = pa.schema([("sku", pa.string()), ("users", pa.int64()), ("weight", pa.float64())])
PART_NAME = "part-00000.parquet"


def output_uris(output_uri: str) -> dict[str, str]:
    return {
        "neighbors": layout.join(output_uri, "neighbors"),
        "items": layout.join(output_uri, "items"),
        "manifest": layout.join(output_uri, layout.MANIFEST_NAME),
    }


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


def items_table(skus: np.ndarray, users: np.ndarray, weight: np.ndarray) -> pa.Table:
    return pa.Table.from_arrays(
        [
            pa.array(np.asarray(skus, dtype=object), type=pa.string()),
            pa.array(np.asarray(users, dtype=np.int64)),
            pa.array(np.asarray(weight, dtype=np.float64)),
        ],
        schema=ITEMS_SCHEMA,
    )


# --- writing -----------------------------------------------------------------------
def write_tables(output_uri: str, neighbors: pa.Table, items: pa.Table) -> dict[str, str]:
    """Replace the output's tables. The stale manifest goes first, so no reader ever
    takes old tables for new ones; call :func:`write_manifest` after this."""
    uris = output_uris(output_uri)
    storage.remove(uris["manifest"])
    for name, table in (("neighbors", neighbors), ("items", items)):
        storage.remove(uris[name], recursive=True)
        fs, path = storage.filesystem(layout.join(uris[name], PART_NAME))
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(path, "wb") as f:
            pq.write_table(table, f, compression="zstd")
    return {"neighbors": uris["neighbors"], "items": uris["items"]}


def write_manifest(output_uri: str, manifest: dict[str, Any]) -> str:
    uri = output_uris(output_uri)["manifest"]
    storage.write_json(uri, manifest)
    return uri


# --- reading -----------------------------------------------------------------------
def read_manifest(uri: str) -> dict[str, Any]:
    """A similarity manifest, given its own URI or its output folder."""
    if not uri.rstrip("/").endswith(layout.MANIFEST_NAME):
        uri = output_uris(uri)["manifest"]
    return storage.read_json(uri)


def _read_parquet_dir(uri: str, columns: list[str] | None = None) -> pa.Table:
    fs, path = storage.filesystem(uri)
    files = sorted(
        f
        for f in fs.find(path)
        if f.endswith(".parquet") and not f.rsplit("/", 1)[-1].startswith(("_", "."))
    )
    if not files:
        raise FileNotFoundError(f"no parquet files under {uri}")
    return pads.dataset(files, filesystem=fs, format="parquet").to_table(columns=columns)


def read_neighbors(uri: str) -> pa.Table:
    """The neighbors table, sorted by sku (``uri``: the neighbors folder)."""
    table = _read_parquet_dir(uri, ["sku", "neighbors"])
    return table.sort_by("sku")


def read_items(uri: str) -> pa.Table:
    return _read_parquet_dir(uri, ["sku", "users", "weight"]).sort_by("sku")


def neighbor_pairs(neighbors: pa.Table) -> pd.DataFrame:
    """Long form: one row per (sku, neighbor) with its rank (0 = best), score, users."""
    lists = pc.list_flatten(neighbors.column("neighbors"))
    lengths = pc.list_value_length(neighbors.column("neighbors")).to_numpy(zero_copy_only=False)
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


def read_export_events(export_manifest: dict[str, Any], with_ts: bool = False) -> pa.Table:
    """The valid events (user_id, sku, action[, ts]) of the day partitions an export lists."""
    columns = ["user_id", "sku", "action"] + (["ts"] if with_ts else [])
    tables = [_read_parquet_dir(day["uri"], columns) for day in export_manifest.get("days", [])]
    schema = pa.schema(
        [(c, pa.timestamp("us", tz="UTC") if c == "ts" else pa.string()) for c in columns]
    )
    if not tables:
        return schema.empty_table()
    return pa.concat_tables([t.cast(schema) for t in tables])


# --- the single-machine engine ------------------------------------------------------
def local_similarity(
    events: pa.Table | pd.DataFrame, params: RunParams
) -> tuple[UserItemMatrix, TopK]:
    """Matrix rule + cosine top-K in memory for events ``user_id, sku, action[, ts]``
    (``ts``, UTC, only for time decay)."""
    df = events.to_pandas() if isinstance(events, pa.Table) else events
    days = None
    if params.model.half_life_days > 0:
        days = pd.to_datetime(df["ts"], utc=True).dt.tz_localize(None).to_numpy("datetime64[D]")
    return fit_similarities(
        df["user_id"], df["sku"], df["action"], params.model, days=days,
        reference_day=params.end_date,
    )


def run_local_similarity(
    export_manifest_uri: str, output_uri: str, params: RunParams | None = None
) -> dict[str, Any]:
    """The similarity stage on one machine: same output layout and manifest as Spark's."""
    t0 = time.perf_counter()
    export_manifest = storage.read_json(export_manifest_uri)
    if export_manifest.get("stage") != "export":
        raise ValueError(f"{export_manifest_uri} is not an export manifest")
    params = params or resolve_params(export_manifest["params"])
    events = read_export_events(export_manifest, with_ts=params.model.half_life_days > 0)
    t1 = time.perf_counter()
    m, topk = local_similarity(events, params)
    neighbors = neighbors_table(m.skus, topk)
    items = items_table(m.item_skus, m.item_users, m.item_weight)
    t2 = time.perf_counter()
    outputs = write_tables(output_uri, neighbors, items)
    counts = {
        **m.counts,
        "emitted_pairs": topk.emitted_pairs,
        "pairs": topk.pairs,
        "neighbor_rows": topk.neighbor_rows,
    }
    t3 = time.perf_counter()
    manifest = similarity_manifest(
        export_manifest=export_manifest,
        export_manifest_uri=export_manifest_uri,
        params=params,
        engine="local",
        outputs=outputs,
        counts=counts,
        gamma=topk.gamma,
        timings={
            "read_s": t1 - t0,
            "similarity_s": t2 - t1,
            "write_s": t3 - t2,
            "total_s": t3 - t0,
        },
    )
    write_manifest(output_uri, manifest)
    return manifest
