"""An export run in storage: its manifest, and the valid events of the days it lists.

The export stage writes them (:mod:`simrec.stages.export`, through a warehouse adapter);
the single-machine similarity engine reads them here. The Spark job reads the same day
partitions with Spark.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from simrec import storage
from simrec.core import layout

#: The event columns every export day partition has (``ts``, UTC, for time decay).
EVENT_COLUMNS = ("user_id", "sku", "action")


def read_manifest(uri: str) -> dict[str, Any]:
    """The export manifest at ``uri``; ``ValueError`` when it is another stage's."""
    manifest = storage.read_json(uri)
    if not isinstance(manifest, dict) or manifest.get("stage") != "export":
        raise ValueError(f"{uri} is not an export manifest")
    return manifest


def read_events(
    export_manifest: dict[str, Any], with_ts: bool = False, with_groups: bool = False
) -> pa.Table:
    """The valid events (user_id, sku, action[, ts][, order_id, session_id]) of the day
    partitions an export lists. The grouping columns are null in partitions written
    before the export had them."""
    columns = [*EVENT_COLUMNS, *(["ts"] if with_ts else []),
               *(layout.GROUP_COLUMNS if with_groups else ())]  # fmt: skip
    schema = pa.schema(
        [(c, pa.timestamp("us", tz="UTC") if c == "ts" else pa.string()) for c in columns]
    )
    tables = [
        storage.read_parquet_folder(day["uri"], columns, schema if with_groups else None)
        for day in export_manifest.get("days", [])
    ]
    if not tables:
        return schema.empty_table()
    return pa.concat_tables([t.cast(schema) for t in tables])
