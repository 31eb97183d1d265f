"""Reading events for evaluation through the export query.

Events are read through the export query (:mod:`simrec.sql` on the embedded warehouse,
:class:`simrec.adapters.warehouse_local.DuckDBWarehouse`), the path a nightly run takes:
the same sources (plain CSV, CSV.gz or Parquet, or a GA4 export; a file, folder or glob),
the same trimming, placeholders and validation, and each event's day as the export gives
it (plain: UTC; GA4: the property's time zone). Offline metrics are thus computed on what
production trains on. Apart from the protocol (:mod:`simrec.evaluation.split` and the
rest), which imports no warehouse: the Spark job runs the protocol without DuckDB.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import pandas as pd

from simrec import sql as export_sql
from simrec.adapters.warehouse_local import DuckDBWarehouse
from simrec.core.events import REJECT_REASONS
from simrec.core.runs import RunParams
from simrec.evaluation.split import COLUMNS

#: The tenant name of the export run that reads evaluation events (it writes nothing).
EVALUATION_TENANT = "evaluation"


def load_events(
    path: str,
    schema: export_sql.Schema = "plain",
    rules: export_sql.ExportRules | None = None,
    columns: Mapping[str, str] | None = None,
) -> tuple[pd.DataFrame, dict]:
    """The valid events of ``path`` as ``user_id, sku, action, day`` (``datetime64[s]``),
    in the export's order (day, ts, user, sku, action).

    Every day is read: one export window from 0001-01-01 to 9999-12-30.
    Returns the events and ``{"rows": .., "dropped": .., "reasons": {reason: rows}}``:
    ``dropped`` counts the rows the export rejects, ``reasons`` every row not kept.
    """
    warehouse = DuckDBWarehouse(columns=columns, rules=rules)
    params = RunParams(tenant=EVALUATION_TENANT, date=dt.date.max,
                       window_days=(dt.date.max - dt.date.min).days)  # fmt: skip
    con = warehouse.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        table, _ = warehouse.query(con, params, path, schema)
        counts = con.execute(export_sql.to_duckdb(export_sql.render_counts_sql(table))).fetchall()
        df = con.execute(
            f"SELECT user_id, sku, action, dt AS day FROM {table} WHERE reason IS NULL "
            "ORDER BY dt, ts, user_id, sku, action"
        ).df()
    finally:
        con.close()
    reasons: dict[str, int] = {}
    for _, reason, _, n in counts:
        if reason is not None:
            reasons[reason] = reasons.get(reason, 0) + int(n)
    if df.empty:
        raise ValueError(f"no valid events in {path}")
    df["day"] = pd.to_datetime(df["day"]).astype("datetime64[s]")
    for c in ("user_id", "sku", "action"):
        df[c] = df[c].astype(object)
    info = {
        "rows": int(sum(int(n) for *_, n in counts)),
        "dropped": int(sum(n for r, n in reasons.items() if r in REJECT_REASONS)),
        "reasons": dict(sorted(reasons.items())),
    }
    return df[list(COLUMNS)], info
