"""The export's grouping columns (frequently bought together, issue 16.1): a plain table's
optional ``order_id`` / ``session_id``, GA4's ``ecommerce.transaction_id`` and
``ga_session_id`` event parameter, written into the day partitions on DuckDB."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from simrec import sql as export_sql
from simrec.adapters.warehouse_local import DuckDBWarehouse
from simrec.core import layout
from simrec.core.runs import RunParams
from simrec.stages.export import run_export
from tests.engines.test_export_input import GA4  # the export's documented shape

PARAMS = RunParams("shop", dt.date(2024, 3, 1), window_days=29)  # 2024-02-01 .. 2024-02-29
COLUMNS = ["user_id", "sku", "action", *layout.GROUP_COLUMNS]


def _partitions(root: Path) -> list[tuple]:
    files = sorted(str(p) for p in Path(root, "exports", "shop").glob("dt=*/*.parquet"))
    table = pq.read_table(files)
    assert set(layout.GROUP_COLUMNS) <= set(table.column_names)
    return sorted(tuple(r[c] for c in COLUMNS) for r in table.to_pylist())


@pytest.mark.parametrize("groups", ["none", "order", "both"])
def test_plain_table_with_and_without_order_and_session_columns(tmp_path: Path, groups) -> None:
    header = {"none": "", "order": ",order_id", "both": ",Order_Id,session_id"}[groups]
    extra = {"none": ["", ""], "order": [",o1", ","], "both": [",o1,s1", ",,s2"]}[groups]
    src = tmp_path / "events.csv"
    src.write_text(
        f"user_id,sku,action,ts{header}\n"
        f"u1,A,purchase,2024-02-03T10:00:00Z{extra[0]}\n"
        f"u1,B,basket,2024-02-03T10:01:00Z{extra[1]}\n"
    )
    run_export(PARAMS, DuckDBWarehouse(), str(src), "plain", str(tmp_path / "data"))
    want = {
        "none": [(None, None), (None, None)],
        "order": [("o1", None), (None, None)],
        "both": [("o1", "s1"), (None, "s2")],
    }[groups]
    assert _partitions(tmp_path / "data") == [
        ("u1", "A", "purchase", *want[0]), ("u1", "B", "basket", *want[1])
    ]  # fmt: skip


def test_plain_grouping_column_of_a_refused_kind_is_named(tmp_path: Path) -> None:
    src = tmp_path / "events.parquet"
    pq.write_table(pa.table({"user_id": ["u"], "sku": ["A"], "action": ["purchase"],
                             "ts": ["2024-02-03"], "order_id": [1.5]}), src)  # fmt: skip
    with pytest.raises(ValueError, match="'order_id' \\(order_id\\) is DOUBLE"):
        run_export(PARAMS, DuckDBWarehouse(), str(src), "plain", str(tmp_path / "data"))


def _ga4_event(name: str, sku: str, session: int | None, order: str | None, i: int) -> dict:
    ts = int(dt.datetime(2024, 2, 10, 12, tzinfo=dt.UTC).timestamp() * 1e6) + i
    params = [{"key": "page_title", "value": {"string_value": "Home"}}]
    if session is not None:
        params.append({"key": "ga_session_id", "value": {"int_value": session}})
    return {"event_date": "20240210", "event_timestamp": ts, "event_name": name,
            "user_pseudo_id": "p1", "user_id": None, "event_params": params,
            "ecommerce": {"transaction_id": order} if order else None,
            "items": [{"item_id": sku, "quantity": 1}]}  # fmt: skip


def test_ga4_session_and_transaction_ids_are_extracted(tmp_path: Path) -> None:
    src = tmp_path / "ga4" / "events_20240210.parquet"
    src.parent.mkdir()
    rows = [_ga4_event("add_to_cart", "A", 1707566400, None, 0),
            _ga4_event("purchase", "A", 1707566400, "T-1", 1),
            _ga4_event("purchase", "B", None, "T-1", 2)]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows, GA4), src)
    run_export(PARAMS, DuckDBWarehouse(), str(src.parent), "ga4", str(tmp_path / "data"))
    assert _partitions(tmp_path / "data") == [
        ("p1", "A", "basket", None, "1707566400"),
        ("p1", "A", "purchase", "T-1", "1707566400"),
        ("p1", "B", "purchase", "T-1", None),
    ]


def test_ga4_export_without_the_fields_leaves_the_groups_null(tmp_path: Path) -> None:
    src = tmp_path / "ga4" / "events_20240210.parquet"
    src.parent.mkdir()
    rows = [_ga4_event("purchase", "A", 7, "T-1", 0)]
    bare = pa.schema([f for f in GA4 if f.name not in ("event_params", "ecommerce")])
    pq.write_table(pa.Table.from_pylist(rows, bare), src)
    run_export(PARAMS, DuckDBWarehouse(), str(src.parent), "ga4", str(tmp_path / "data"))
    assert _partitions(tmp_path / "data") == [("p1", "A", "purchase", None, None)]


def test_bigquery_text_reads_both_ga4_groups() -> None:
    text = export_sql.render_export_sql("ga4", "p.analytics_1.events_*")
    assert "e.ecommerce.transaction_id" in text and "'ga_session_id'" in text
