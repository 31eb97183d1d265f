"""The export query: valid BigQuery SQL, transpiled to DuckDB, exact rows on both schemas."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from simrec import sql as export_sql
from simrec.core.actions import GA4_EVENT_ACTIONS
from simrec.core.events import REJECT_REASONS
from simrec.core.runs import RunParams

UTC = dt.UTC
# Window: 2024-02-01 .. 2024-02-29 (a leap year: the last day is the 29th).
PARAMS = RunParams("shop", dt.date(2024, 3, 1), window_days=29)


def _ts(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def _micros(value: dt.datetime) -> int:
    return int(value.timestamp()) * 1_000_000


def _run(con: duckdb.DuckDBPyConnection, bigquery_sql: str) -> list[tuple]:
    """Run the transpiled query; ts normalised to aware UTC datetimes for comparison."""
    rel = con.execute(export_sql.to_duckdb(bigquery_sql), export_sql.query_parameters(PARAMS))
    assert [d[0] for d in rel.description] == list(export_sql.OUTPUT_COLUMNS)
    rows = []
    for row in rel.fetchall():
        ts = row[3]
        if ts is not None:
            ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
        rows.append((*row[:3], ts, *row[4:]))
    return sorted(rows, key=repr)


@pytest.fixture
def con():
    c = duckdb.connect()
    c.execute("SET TimeZone='UTC'")
    yield c
    c.close()


# --- the SQL text -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("schema", "table"), [("plain", "my-project.shop.events"), ("ga4", "my-project.a_1.events_*")]
)
def test_sql_is_one_bigquery_statement_with_date_parameters(schema: str, table: str) -> None:
    text = export_sql.render_export_sql(schema, table)
    statements = sqlglot.parse(text, read="bigquery")
    assert len(statements) == 1
    tree = statements[0]
    # Nothing BigQuery-only is lost on the way to either dialect.
    for dialect in ("bigquery", "duckdb"):
        sqlglot.transpile(
            text, read="bigquery", write=dialect, unsupported_level=sqlglot.ErrorLevel.RAISE
        )
    assert tree.named_selects == list(export_sql.OUTPUT_COLUMNS)
    assert {p.name for p in tree.find_all(exp.Parameter)} == {"start_date", "end_date"}
    # Dates are parameters, never text in the query.
    assert not any(
        str(lit.this)[:2] in ("19", "20") for lit in tree.find_all(exp.Literal) if lit.is_string
    )
    ctes = {"source_rows", "normalised", "in_scope"}
    tables = {".".join(p for p in (t.catalog, t.db, t.name) if p) for t in tree.find_all(exp.Table)}
    assert tables - ctes == {table}
    duck = export_sql.to_duckdb(text)
    assert "$start_date" in duck and "$end_date" in duck and "@" not in duck


def test_reasons_in_sql_follow_core_order() -> None:
    tree = sqlglot.parse_one(export_sql.render_export_sql("plain", "t"), read="bigquery")
    case = next(s for s in tree.selects if s.alias == "reason").this
    assert isinstance(case, exp.Case)
    assert [w.args["true"].name for w in case.args["ifs"]] == list(REJECT_REASONS)


def test_ga4_event_mapping_comes_from_core() -> None:
    text = export_sql.render_export_sql("ga4", "p.d.events_*")
    for name, action in GA4_EVENT_ACTIONS.items():
        assert f"WHEN '{name}' THEN '{action}'" in text


def test_to_duckdb_raises_on_unsupported_construct() -> None:
    with pytest.raises(sqlglot.errors.UnsupportedError):
        export_sql.to_duckdb("SELECT ARRAY_AGG(x LIMIT 2) FROM t")


@pytest.mark.parametrize(
    ("schema", "table", "columns", "message"),
    [
        ("plain", "t; DROP TABLE x", None, "invalid table"),
        ("plain", "d.t", {"user_id": "a b"}, "invalid column"),
        ("plain", "d.t", {"ts": "x`y"}, "invalid column"),
        ("ga4", "p.d.events_*", {"sku": "item"}, "only accept"),
        ("csv", "d.t", None, "unknown events schema"),
    ],
)
def test_render_rejects_bad_identifiers(schema, table, columns, message) -> None:
    with pytest.raises(ValueError, match=message):
        export_sql.render_export_sql(schema, table, columns)


def test_resolve_columns() -> None:
    assert export_sql.resolve_columns(["user_id", "sku", "action", "date"]) == {
        "user_id": "user_id", "sku": "sku", "action": "action", "ts": "date"
    }  # fmt: skip
    # ts wins over date; names match case-insensitively and keep the source's spelling.
    assert export_sql.resolve_columns(["USER_ID", "Sku", "action", "date", "TS"])["ts"] == "TS"
    assert export_sql.resolve_columns(["USER_ID", "Sku", "action", "ts"])["sku"] == "Sku"
    mapped = export_sql.resolve_columns(
        ["customer", "sku", "action", "event_time", "date"],
        {"user_id": "customer", "ts": "event_time"},
    )
    assert mapped == {"user_id": "customer", "sku": "sku", "action": "action", "ts": "event_time"}
    with pytest.raises(ValueError, match=r"lacks ts \(column 'ts'\).*has \['action'"):
        export_sql.resolve_columns(["action", "sku", "user_id", "when"])
    with pytest.raises(ValueError, match="unknown event fields"):
        export_sql.resolve_columns(["a"], {"item": "sku"})


def test_ga4_table_and_parameters() -> None:
    assert export_sql.ga4_table("p.analytics_1") == "p.analytics_1.events_*"
    assert export_sql.ga4_table("p.analytics_1.events_*") == "p.analytics_1.events_*"
    assert export_sql.query_parameters(PARAMS) == {
        "start_date": dt.date(2024, 2, 1), "end_date": dt.date(2024, 2, 29)
    }  # fmt: skip


# --- exact rows: plain ----------------------------------------------------------------
PLAIN_ROWS = [
    # user_id, sku, action, ts  (all text, as read from a CSV)
    ("u1", "s1", "browsed", "2024-02-01"),  # first day, date only = midnight UTC
    (" u2 ", " s2 ", " PURCHASE ", "2024-02-29T23:59:59Z"),  # last second; trimmed, lowered
    ("u3", "s3", "basket", "2024-03-01 00:00:00"),  # the day after the window: not read
    ("u4", "s4", "basket", "2024-01-31 23:59:59"),  # the day before: not read
    ("u5", "s5", "Basket", "2024-02-10 10:00:00+02:00"),  # offset -> 08:00 UTC
    (None, "s6", "browsed", "2024-02-05"),
    ("   ", "s7", "browsed", "2024-02-05"),
    ("u8", "", "browsed", "2024-02-05"),
    ("u9", " ", "clicked", "2024-02-05"),  # empty sku comes before unknown action
    ("u10", "s10", "clicked", "2024-02-05"),
    ("u11", "s11", None, "2024-02-05"),
    ("u12", "s12", "browsed", "not a date"),
    ("u13", "s13", "browsed", None),
    ("u14", "s14", "browsed", "2024-02-30"),
    (None, "s15", "browsed", "garbage"),  # no ts: read regardless of window, first reason
    (None, "s16", "browsed", "2023-06-01"),  # outside the window: neither valid nor rejected
    ("u17", "s17", "clicked", "2024-03-05"),
]


def _raw(row):
    return tuple(row)


PLAIN_EXPECTED = sorted(
    [
        ("u1", "s1", "browsed", _ts(2024, 2, 1), dt.date(2024, 2, 1), None, *_raw(PLAIN_ROWS[0])),
        ("u2", "s2", "purchase", _ts(2024, 2, 29, 23, 59, 59), dt.date(2024, 2, 29), None,
         *_raw(PLAIN_ROWS[1])),
        ("u5", "s5", "basket", _ts(2024, 2, 10, 8), dt.date(2024, 2, 10), None,
         *_raw(PLAIN_ROWS[4])),
        (None, "s6", "browsed", _ts(2024, 2, 5), dt.date(2024, 2, 5), "missing_user_id",
         *_raw(PLAIN_ROWS[5])),
        (None, "s7", "browsed", _ts(2024, 2, 5), dt.date(2024, 2, 5), "missing_user_id",
         *_raw(PLAIN_ROWS[6])),
        ("u8", None, "browsed", _ts(2024, 2, 5), dt.date(2024, 2, 5), "empty_sku",
         *_raw(PLAIN_ROWS[7])),
        ("u9", None, "clicked", _ts(2024, 2, 5), dt.date(2024, 2, 5), "empty_sku",
         *_raw(PLAIN_ROWS[8])),
        ("u10", "s10", "clicked", _ts(2024, 2, 5), dt.date(2024, 2, 5), "unknown_action",
         *_raw(PLAIN_ROWS[9])),
        ("u11", "s11", None, _ts(2024, 2, 5), dt.date(2024, 2, 5), "unknown_action",
         *_raw(PLAIN_ROWS[10])),
        ("u12", "s12", "browsed", None, None, "bad_timestamp", *_raw(PLAIN_ROWS[11])),
        ("u13", "s13", "browsed", None, None, "bad_timestamp", *_raw(PLAIN_ROWS[12])),
        ("u14", "s14", "browsed", None, None, "bad_timestamp", *_raw(PLAIN_ROWS[13])),
        (None, "s15", "browsed", None, None, "missing_user_id", *_raw(PLAIN_ROWS[14])),
    ],
    key=repr,
)  # fmt: skip


def test_plain_rows_exact(con) -> None:
    con.execute("CREATE TABLE events (user_id VARCHAR, sku VARCHAR, action VARCHAR, ts VARCHAR)")
    con.executemany("INSERT INTO events VALUES (?, ?, ?, ?)", PLAIN_ROWS)
    assert _run(con, export_sql.render_export_sql("plain", "events")) == PLAIN_EXPECTED


@pytest.mark.parametrize("ts_type", ["TIMESTAMP", "TIMESTAMPTZ", "DATE"])
def test_plain_typed_ts_column(con, ts_type: str) -> None:
    """A typed ts (Parquet/BigQuery TIMESTAMP or DATE) parses like its text form."""
    con.execute(
        f"CREATE TABLE ev (customer VARCHAR, sku VARCHAR, action VARCHAR, date {ts_type})"
    )
    con.executemany(
        "INSERT INTO ev VALUES (?, ?, ?, ?)",
        [
            ("a", "x", "browsed", dt.datetime(2024, 2, 3)),
            ("b", "y", "purchase", dt.datetime(2024, 3, 1)),  # out of window
            ("c", "z", "basket", None),  # NULL ts: bad timestamp
        ],
    )
    columns = export_sql.resolve_columns(["customer", "sku", "action", "date"],
                                         {"user_id": "customer"})  # fmt: skip
    rows = _run(con, export_sql.render_export_sql("plain", "ev", columns))
    assert [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows] == [
        ("a", "x", "browsed", _ts(2024, 2, 3), dt.date(2024, 2, 3), None),
        ("c", "z", "basket", None, None, "bad_timestamp"),
    ]


# --- exact rows: GA4 ------------------------------------------------------------------
def _item(item_id):
    return {"item_id": item_id, "item_name": None if item_id is None else f"name {item_id}"}


T_0201 = _micros(_ts(2024, 2, 1, 10))
T_0210 = _micros(_ts(2024, 2, 10, 12))
T_0229 = _micros(_ts(2024, 2, 29, 23, 30))
T_0131 = _micros(_ts(2024, 1, 31, 23))

GA4_ROWS = [
    # _TABLE_SUFFIX, event_name, event_timestamp, user_pseudo_id, user_id, items
    ("20240201", "view_item", T_0201, "p1", None, [_item("A"), _item("B")]),
    ("20240210", "add_to_cart", T_0210, "p2", None, [_item("C")]),
    ("20240210", "purchase", T_0210, "p3", "login3", [_item("D")]),
    ("20240210", "page_view", T_0210, "p4", None, []),  # not of interest: skipped
    ("20240210", "session_start", T_0210, "p4", None, None),  # skipped
    ("20240210", "view_item", T_0210, "p5", None, []),  # no items: empty_sku
    ("20240210", "view_item", T_0210, "p6", None, [_item("  ")]),  # blank item: empty_sku
    ("20240210", "view_item", T_0210, None, None, [_item("E")]),  # missing_user_id
    ("20240211", "view_item", None, "p7", None, [_item("F")]),  # no ts, in-window table
    ("20240131", "view_item", None, "p8", None, [_item("F")]),  # no ts, table before window
    ("20240301", "purchase", T_0229, "p9", None, [_item("H")]),  # next day's table, UTC ts in
    ("20240131", "view_item", T_0131, "p10", None, [_item("I")]),  # scanned, ts out
    ("20240302", "view_item", T_0210, "p11", None, [_item("J")]),  # table not scanned
    ("intraday_20240210", "view_item", T_0210, "p12", None, [_item("K")]),  # not scanned
    ("20240210", "add_to_cart", T_0210, "p13", None, [_item("G"), _item(None)]),
]


@pytest.fixture
def ga4(con):
    con.execute(
        "CREATE TABLE ga4 (_TABLE_SUFFIX VARCHAR, event_date VARCHAR, event_name VARCHAR, "
        "event_timestamp BIGINT, user_pseudo_id VARCHAR, user_id VARCHAR, "
        "items STRUCT(item_id VARCHAR, item_name VARCHAR)[])"
    )
    con.executemany(
        "INSERT INTO ga4 VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(s, s[-8:], n, t, p, u, i) for s, n, t, p, u, i in GA4_ROWS],
    )
    return con


def test_ga4_rows_exact(ga4) -> None:
    d10 = dt.date(2024, 2, 10)
    t10 = _ts(2024, 2, 10, 12)
    expected = sorted(
        [
            ("p1", "A", "browsed", _ts(2024, 2, 1, 10), dt.date(2024, 2, 1), None,
             "p1", "A", "view_item", str(T_0201)),
            ("p1", "B", "browsed", _ts(2024, 2, 1, 10), dt.date(2024, 2, 1), None,
             "p1", "B", "view_item", str(T_0201)),
            ("p2", "C", "basket", t10, d10, None, "p2", "C", "add_to_cart", str(T_0210)),
            ("p3", "D", "purchase", t10, d10, None, "p3", "D", "purchase", str(T_0210)),
            ("p5", None, "browsed", t10, d10, "empty_sku", "p5", None, "view_item", str(T_0210)),
            ("p6", None, "browsed", t10, d10, "empty_sku", "p6", "  ", "view_item", str(T_0210)),
            (None, "E", "browsed", t10, d10, "missing_user_id", None, "E", "view_item",
             str(T_0210)),
            ("p7", "F", "browsed", None, None, "bad_timestamp", "p7", "F", "view_item", None),
            ("p9", "H", "purchase", _ts(2024, 2, 29, 23, 30), dt.date(2024, 2, 29), None,
             "p9", "H", "purchase", str(T_0229)),
            ("p13", "G", "basket", t10, d10, None, "p13", "G", "add_to_cart", str(T_0210)),
            ("p13", None, "basket", t10, d10, "empty_sku", "p13", None, "add_to_cart",
             str(T_0210)),
        ],
        key=repr,
    )  # fmt: skip
    assert _run(ga4, export_sql.render_export_sql("ga4", "ga4")) == expected


def test_ga4_user_id_field_override(ga4) -> None:
    rows = _run(ga4, export_sql.render_export_sql("ga4", "ga4", {"user_id": "user_id"}))
    valid_users = sorted(r[0] for r in rows if r[5] is None)
    assert valid_users == ["login3"]
    assert sum(r[5] == "missing_user_id" for r in rows) == 10
