"""The export query: valid BigQuery SQL, transpiled to DuckDB, exact rows on both schemas."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from simrec import sql as export_sql
from simrec.core import layout
from simrec.core.actions import GA4_EVENT_ACTIONS
from simrec.core.events import REJECT_REASONS, SKIP_REASONS
from simrec.core.runs import RunParams

UTC = dt.UTC
# Window: 2024-02-01 .. 2024-02-29 (a leap year: the last day is the 29th).
PARAMS = RunParams("shop", dt.date(2024, 3, 1), window_days=29)


def _ts(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def _micros(value: dt.datetime) -> int:
    return int(value.timestamp()) * 1_000_000


def _run(
    con: duckdb.DuckDBPyConnection, bigquery_sql: str, rules=None, schema="plain"
) -> list[tuple]:
    """Run the transpiled query; ts normalised to aware UTC datetimes for comparison,
    the grouping columns left out (tests/engines/test_export_groups.py checks them)."""
    values = export_sql.query_parameters(PARAMS, rules, schema)
    rel = con.execute(export_sql.to_duckdb(bigquery_sql), values)
    assert [d[0] for d in rel.description] == list(export_sql.OUTPUT_COLUMNS)
    rows = []
    for row in rel.fetchall():
        ts = row[3]
        if ts is not None:
            ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
        rows.append((*row[:3], ts, *row[4:-len(layout.GROUP_COLUMNS)]))
    return sorted(rows, key=repr)


@pytest.fixture
def con():
    c = duckdb.connect()
    c.execute("SET TimeZone='UTC'")
    yield c
    c.close()


# --- the SQL text -------------------------------------------------------------------
PARAMETERS = {"start_date", "end_date"}
SCHEMA_PARAMETERS = {"plain": PARAMETERS,
                     "ga4": PARAMETERS | {"time_zone", "duplicate_tolerance_us"}}  # fmt: skip


@pytest.mark.parametrize(
    ("schema", "table"), [("plain", "my-project.shop.events"), ("ga4", "my-project.a_1.events_*")]
)
def test_sql_is_one_bigquery_statement_with_parameters(schema: str, table: str) -> None:
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
    # Every rule value from the settings is a parameter, and the adapters pass exactly these.
    assert {p.name for p in tree.find_all(exp.Parameter)} == SCHEMA_PARAMETERS[schema]
    assert set(export_sql.query_parameters(PARAMS, schema=schema)) == SCHEMA_PARAMETERS[schema]
    # Dates are parameters, never text in the query.
    assert not any(
        str(lit.this)[:2] in ("19", "20") for lit in tree.find_all(exp.Literal) if lit.is_string
    )
    ctes = {"source_rows", "normalised", "checked", "classified"}
    tables = {".".join(p for p in (t.catalog, t.db, t.name) if p) for t in tree.find_all(exp.Table)}
    assert tables - ctes == {table}
    duck = export_sql.to_duckdb(text)
    assert all(f"${p}" in duck for p in SCHEMA_PARAMETERS[schema]) and "@" not in duck


def _cte(tree: exp.Expression, name: str) -> exp.Select:
    return next(c.this for c in tree.find_all(exp.CTE) if c.alias == name)


def test_counts_query_columns() -> None:
    tree = sqlglot.parse_one(export_sql.render_counts_sql("simrec_export"), read="bigquery")
    assert tree.named_selects == list(export_sql.COUNTS_COLUMNS)
    assert {t.name for t in tree.find_all(exp.Table)} == {"simrec_export"}


def test_reasons_in_sql_follow_core_order() -> None:
    """Outside the window first, then ignored events, then the rejects in core order;
    a repeat is only looked for among rows that pass every other check."""
    plain = sqlglot.parse_one(export_sql.render_export_sql("plain", "t"), read="bigquery")
    assert not list(plain.find_all(exp.Window))  # no repeat rule for plain sources
    tree = sqlglot.parse_one(export_sql.render_export_sql("ga4", "t"), read="bigquery")
    case = next(s for s in _cte(tree, "checked").selects if s.alias == "first_reason").this
    assert isinstance(case, exp.Case)
    order = [w.args["true"].name for w in case.args["ifs"]]
    assert order == [*SKIP_REASONS, *[r for r in REJECT_REASONS if r != "duplicate_event"]]
    assert list(REJECT_REASONS)[-1] == "duplicate_event"
    repeat = next(s for s in _cte(tree, "classified").selects if s.alias == "reason").this
    assert [w.args["true"].name for w in repeat.args["ifs"]] == ["duplicate_event"]
    lag = repeat.find(exp.Window)
    assert [c.name for c in lag.args["partition_by"]] == ["first_reason", "user_id",
                                                          "raw_action", "sku"]  # fmt: skip
    assert repeat.find(exp.LTE).expression.name == "duplicate_tolerance_us"


def _expanded(tree: exp.Expression) -> exp.Select:
    """The GA4 source's inner select: one row per (event, item), read from the wildcard."""
    return next(q.this for q in tree.find_all(exp.Subquery) if q.alias == "expanded")


def _event_cases(text: str) -> dict[str, str]:
    tree = sqlglot.parse_one(text, read="bigquery")
    case = next(s for s in _expanded(tree).selects if s.alias == "action_name").this
    assert case.this.sql("bigquery") == "e.event_name"
    return {w.this.name: w.args["true"].name for w in case.args["ifs"]}


def test_ga4_event_mapping_comes_from_the_rules() -> None:
    assert _event_cases(export_sql.render_export_sql("ga4", "p.d.events_*")) == GA4_EVENT_ACTIONS
    custom = export_sql.ExportRules(event_actions={"view_item": "browsed", "refund": "basket"})
    text = export_sql.render_export_sql("ga4", "p.d.events_*", rules=custom)
    assert _event_cases(text) == {"view_item": "browsed", "refund": "basket"}
    # Events of other names are not filtered out but marked ignored (counted per name).
    tree = sqlglot.parse_one(text, read="bigquery")
    ignored = next(s for s in _expanded(tree).selects if s.alias == "ignored").this
    names = {lit.name for lit in ignored.find(exp.In).expressions}
    assert names == {"view_item", "refund"}


def test_ga4_user_key_and_scanned_tables() -> None:
    def raw_user(rules):
        tree = sqlglot.parse_one(export_sql.render_export_sql("ga4", "p.d.events_*", rules=rules),
                                 read="bigquery")  # fmt: skip
        select = _expanded(tree)
        return select, next(s for s in select.selects if s.alias == "raw_user_id").this.this

    select, pseudo = raw_user(None)
    assert pseudo.sql("bigquery") == "e.user_pseudo_id"
    _, signed_in = raw_user(export_sql.ExportRules(user_key="user_id"))
    assert isinstance(signed_in, exp.Coalesce)
    first, fallback = signed_in.this, signed_in.expressions[0]
    assert first.find(exp.Column).sql("bigquery") == "e.user_id"  # when set and not blank
    assert fallback.sql("bigquery") == "e.user_pseudo_id"
    # The wildcard's tables: one day before the window to three after (late events).
    between = select.args["where"].find(exp.Between)
    assert between.this.name == "_TABLE_SUFFIX"
    low, high = between.args["low"], between.args["high"]
    assert low.find(exp.DateSub).expression.name == "1"
    assert low.find(exp.DateSub).this.name == "start_date"
    assert high.find(exp.DateAdd).expression.name == "3"
    assert high.find(exp.DateAdd).this.name == "end_date"


def test_ga4_multi_item_rule_is_per_event() -> None:
    """An event is its (user, name, timestamp): the multi-item rule and the item listed
    twice are window functions over those rows, not a lookup per item."""
    tree = sqlglot.parse_one(export_sql.render_export_sql("ga4", "p.d.events_*"), read="bigquery")
    selects = {s.alias: s.this for s in _cte(tree, "source_rows").selects}
    event = ["raw_user_id", "raw_action", "raw_ts"]
    chosen = selects["not_chosen"].find(exp.Window)
    assert [c.name for c in chosen.args["partition_by"]] == event
    assert chosen.this.find(exp.Column).name == "quantity"
    twice = selects["duplicate_in_event"].find(exp.Window)
    assert [c.sql("bigquery") for c in twice.args["partition_by"]][:4] == [
        *event, "TRIM(raw_sku)"
    ]  # fmt: skip
    assert twice.args["order"].expressions[0].this.name == "item_index"
    unnest = _expanded(tree).find(exp.Unnest)
    assert unnest.expressions[0].sql("bigquery") == "e.items"
    assert unnest.args["offset"].name == "item_index"


def test_placeholders_are_escaped_literals(con) -> None:
    """Configured values, however quoted, stay string literals (and compare trimmed,
    case-insensitively); no placeholders at all is valid SQL too."""
    rules = export_sql.ExportRules(placeholders=(" N/A ", "it's", "a\\b'); DROP TABLE x; --", ""))
    assert export_sql.placeholder_values(rules) == ["a\\b'); drop table x; --", "it's", "n/a"]
    tree = sqlglot.parse_one(export_sql.render_export_sql("plain", "t", rules=rules),
                             read="bigquery")  # fmt: skip
    case = next(s for s in _cte(tree, "checked").selects if s.alias == "first_reason").this
    test = next(w.this for w in case.args["ifs"] if w.args["true"].name == "placeholder_id")
    for side in (test.this, test.expression):
        assert sorted(lit.name for lit in side.expressions) == export_sql.placeholder_values(rules)
    con.execute("CREATE TABLE t (user_id VARCHAR, sku VARCHAR, action VARCHAR, ts VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?, 'browsed', '2024-02-03')",
                    [("u1", "IT'S"), ("N/A", "s"), ("u2", "s2")])  # fmt: skip
    rows = _run(con, export_sql.render_export_sql("plain", "t", rules=rules), rules)
    assert sorted((r[0], r[5]) for r in rows) == [
        ("N/A", "placeholder_id"), ("u1", "placeholder_id"), ("u2", None)
    ]  # fmt: skip
    none = export_sql.ExportRules(placeholders=())
    assert len(_run(con, export_sql.render_export_sql("plain", "t", rules=none), none)) == 3


def test_to_duckdb_raises_on_unsupported_construct() -> None:
    with pytest.raises(sqlglot.errors.UnsupportedError):
        export_sql.to_duckdb("SELECT ARRAY_AGG(x LIMIT 2) FROM t")


@pytest.mark.parametrize(
    ("schema", "table", "columns", "message"),
    [
        ("plain", "t; DROP TABLE x", None, "invalid table"),
        ("plain", "d.t", {"user_id": "a b"}, "invalid column"),
        ("plain", "d.t", {"ts": "x`y"}, "invalid column"),
        ("ga4", "p.d.events_*", {"sku": "item"}, "no column mapping"),
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
        "start_date": dt.date(2024, 2, 1), "end_date": dt.date(2024, 2, 29),
    }  # fmt: skip
    assert export_sql.query_parameters(PARAMS, schema="ga4") == {
        "start_date": dt.date(2024, 2, 1), "end_date": dt.date(2024, 2, 29),
        "time_zone": "UTC", "duplicate_tolerance_us": 1_000_000,
    }  # fmt: skip
    rules = export_sql.ExportRules(time_zone="Asia/Tokyo", duplicate_tolerance_s=0.25)
    ga4 = export_sql.query_parameters(PARAMS, rules, "ga4")
    assert ga4["duplicate_tolerance_us"] == 250_000 and ga4["time_zone"] == "Asia/Tokyo"
    assert "time_zone" not in export_sql.query_parameters(PARAMS, rules, "plain")
    with pytest.raises(ValueError, match="unknown time zone"):
        export_sql.ExportRules(time_zone="Mars/Olympus")


# --- exact rows: plain ----------------------------------------------------------------
PLAIN_ROWS = [
    # user_id, sku, action, ts  (all text, as read from a CSV)
    ("u1", "s1", "browsed", "2024-02-01"),  # first day, date only = midnight UTC
    (" u2 ", " s2 ", " PURCHASE ", "2024-02-29T23:59:59Z"),  # last second; trimmed, lowered
    ("u3", "s3", "basket", "2024-03-01 00:00:00"),  # the day after the window: counted after
    ("u4", "s4", "basket", "2024-01-31 23:59:59"),  # the day before: counted before
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
    (None, "s16", "browsed", "2023-06-01"),  # outside the window: counted before
    ("u17", "s17", "clicked", "2024-03-05"),
    ("u18", " (Not Set) ", "browsed", "2024-02-05"),  # placeholder, case-insensitive
    ("u19", "s19", "browsed", "2024-02-05"),  # plain sources: no duplicate rule
    ("u19", "s19", "browsed", "2024-02-05"),
]


def _raw(row):
    return tuple(row)


D05 = dt.date(2024, 2, 5)
PLAIN_EXPECTED = sorted(
    [
        ("u1", "s1", "browsed", _ts(2024, 2, 1), dt.date(2024, 2, 1), None, *_raw(PLAIN_ROWS[0])),
        ("u2", "s2", "purchase", _ts(2024, 2, 29, 23, 59, 59), dt.date(2024, 2, 29), None,
         *_raw(PLAIN_ROWS[1])),
        ("u5", "s5", "basket", _ts(2024, 2, 10, 8), dt.date(2024, 2, 10), None,
         *_raw(PLAIN_ROWS[4])),
        (None, "s6", "browsed", _ts(2024, 2, 5), D05, "missing_user_id", *_raw(PLAIN_ROWS[5])),
        (None, "s7", "browsed", _ts(2024, 2, 5), D05, "missing_user_id", *_raw(PLAIN_ROWS[6])),
        ("u8", None, "browsed", _ts(2024, 2, 5), D05, "empty_sku", *_raw(PLAIN_ROWS[7])),
        ("u9", None, "clicked", _ts(2024, 2, 5), D05, "empty_sku", *_raw(PLAIN_ROWS[8])),
        ("u10", "s10", "clicked", _ts(2024, 2, 5), D05, "unknown_action", *_raw(PLAIN_ROWS[9])),
        ("u11", "s11", None, _ts(2024, 2, 5), D05, "unknown_action", *_raw(PLAIN_ROWS[10])),
        ("u12", "s12", "browsed", None, None, "bad_timestamp", *_raw(PLAIN_ROWS[11])),
        ("u13", "s13", "browsed", None, None, "bad_timestamp", *_raw(PLAIN_ROWS[12])),
        ("u14", "s14", "browsed", None, None, "bad_timestamp", *_raw(PLAIN_ROWS[13])),
        (None, "s15", "browsed", None, None, "missing_user_id", *_raw(PLAIN_ROWS[14])),
        ("u18", "(Not Set)", "browsed", _ts(2024, 2, 5), D05, "placeholder_id",
         *_raw(PLAIN_ROWS[17])),
        ("u19", "s19", "browsed", _ts(2024, 2, 5), D05, None, *_raw(PLAIN_ROWS[18])),
        ("u19", "s19", "browsed", _ts(2024, 2, 5), D05, None, *_raw(PLAIN_ROWS[19])),
    ],
    key=repr,
)  # fmt: skip
PLAIN_EXPECTED = sorted(
    PLAIN_EXPECTED
    + [("u3", "s3", "basket", _ts(2024, 3, 1), dt.date(2024, 3, 1), "after_window",
        *_raw(PLAIN_ROWS[2])),
       ("u4", "s4", "basket", _ts(2024, 1, 31, 23, 59, 59), dt.date(2024, 1, 31),
        "before_window", *_raw(PLAIN_ROWS[3])),
       (None, "s16", "browsed", _ts(2023, 6, 1), dt.date(2023, 6, 1), "before_window",
        *_raw(PLAIN_ROWS[15])),
       ("u17", "s17", "clicked", _ts(2024, 3, 5), dt.date(2024, 3, 5), "after_window",
        *_raw(PLAIN_ROWS[16]))],
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
    assert [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows] == sorted([
        ("a", "x", "browsed", _ts(2024, 2, 3), dt.date(2024, 2, 3), None),
        ("c", "z", "basket", None, None, "bad_timestamp"),
        ("b", "y", "purchase", _ts(2024, 3, 1), dt.date(2024, 3, 1), "after_window"),
    ], key=repr)  # fmt: skip


# --- exact rows: GA4 ------------------------------------------------------------------
def _item(item_id, quantity=None):
    return {"item_id": item_id, "item_name": None if item_id is None else f"name {item_id}",
            "quantity": quantity, "item_list_name": None}  # fmt: skip


def _at(*args: int, micros: int = 0) -> int:
    return _micros(_ts(*args)) + micros


T_0201 = _at(2024, 2, 1, 10)
T_0210 = _at(2024, 2, 10, 12)
T_0229 = _at(2024, 2, 29, 23, 30)
T_0131 = _at(2024, 1, 31, 23)
T_0301_LA = _at(2024, 3, 1, 5)  # 2024-02-29 21:00 in Los Angeles
T_0201_LA = _at(2024, 2, 1, 3)  # 2024-01-31 19:00 in Los Angeles

GA4_ROWS = [
    # _TABLE_SUFFIX, event_name, event_timestamp, user_pseudo_id, user_id, items
    ("20240201", "view_item", T_0201, "p1", None, [_item("A"), _item("B")]),  # every item
    ("20240210", "view_item", T_0210, "p2", None,  # one item with a quantity: only it counts
     [_item("R1"), _item("A", 1), _item("R2")]),
    ("20240210", "add_to_cart", T_0210, "p2", None, [_item("C", 2), _item(" C ", 2)]),  # twice
    ("20240210", "purchase", T_0210, "p3", "login3", [_item("D", 1)]),
    ("20240210", "purchase", T_0210 + 500_000, "p3", "login3", [_item("D", 1)]),  # resent
    ("20240210", "purchase", T_0210 + 5_000_000, "p3", "login3", [_item("D", 1)]),  # 5 s on
    ("20240210", "page_view", T_0210, "p4", None, []),  # ignored, counted by name
    ("20240210", "view_item_list", T_0210, "p4", None, [_item("X"), _item("Y")]),  # ignored
    ("20240210", "view_item", T_0210, "p5", None, []),  # no items: empty_sku
    ("20240210", "view_item", T_0210, "p6", None, [_item("(not set)")]),  # placeholder_id
    ("20240210", "view_item", T_0210, None, None, [_item("E")]),  # missing_user_id
    ("20240210", "select_item", T_0210, "p12", None, [_item("S")]),  # browsed
    ("20240210", "add_to_wishlist", T_0210, "p12", None, [_item("W")]),  # basket
    ("20240211", "view_item", None, "p7", None, [_item("F")]),  # no ts, in-window table
    ("20240131", "view_item", None, "p8", None, [_item("F")]),  # no ts, table before window
    ("20240301", "purchase", T_0229, "p9", None, [_item("H", 1)]),  # next day's table
    ("20240131", "view_item", T_0131, "p10", None, [_item("I")]),  # scanned, ts before
    ("20240229", "purchase", T_0301_LA, "p13", None, [_item("L", 1)]),  # UTC: after
    ("20240131", "purchase", T_0201_LA, "p14", None, [_item("M", 1)]),  # UTC: in window
    ("20240304", "view_item", T_0210, "p11", None, [_item("J")]),  # table not scanned
    ("intraday_20240210", "view_item", T_0210, "p12", None, [_item("K")]),  # not scanned
]


@pytest.fixture
def ga4(con):
    con.execute(
        "CREATE TABLE ga4 (_TABLE_SUFFIX VARCHAR, event_date VARCHAR, event_name VARCHAR, "
        "event_timestamp BIGINT, user_pseudo_id VARCHAR, user_id VARCHAR, items STRUCT("
        "item_id VARCHAR, item_name VARCHAR, quantity BIGINT, item_list_name VARCHAR)[])"
    )
    con.executemany(
        "INSERT INTO ga4 VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(s, s[-8:], n, t, p, u, i) for s, n, t, p, u, i in GA4_ROWS],
    )
    return con


def _ga4(con, rules=None) -> tuple[list[tuple], dict[tuple, int]]:
    """(user, sku, action, dt, reason) of each row, and the counted-only groups."""
    # This table has no event_params / ecommerce (test_export_groups.py has them).
    text = export_sql.render_export_sql("ga4", "ga4", rules=rules, ga4_groups=())
    rows = _run(con, text, rules, "ga4")
    kept = sorted(((r[0], r[1], r[2], r[4], r[5]) for r in rows if r[5] not in SKIP_REASONS),
                  key=repr)  # fmt: skip
    skipped = Counter((r[4], r[5], r[8] if r[5] == "ignored_event" else None)
                      for r in rows if r[5] in SKIP_REASONS)  # fmt: skip
    return kept, dict(skipped)


D01, D10, D11, D29 = (dt.date(2024, 2, d) for d in (1, 10, 11, 29))
GA4_KEPT_UTC = sorted([
    ("p1", "A", "browsed", D01, None), ("p1", "B", "browsed", D01, None),
    ("p2", "A", "browsed", D10, None),
    ("p2", "R1", "browsed", D10, "item_without_quantity"),
    ("p2", "R2", "browsed", D10, "item_without_quantity"),
    ("p2", "C", "basket", D10, None), ("p2", "C", "basket", D10, "duplicate_item"),
    ("p3", "D", "purchase", D10, None), ("p3", "D", "purchase", D10, "duplicate_event"),
    ("p3", "D", "purchase", D10, None),
    ("p5", None, "browsed", D10, "empty_sku"),
    ("p6", "(not set)", "browsed", D10, "placeholder_id"),
    (None, "E", "browsed", D10, "missing_user_id"),
    ("p12", "S", "browsed", D10, None), ("p12", "W", "basket", D10, None),
    ("p7", "F", "browsed", D11, "bad_timestamp"),
    ("p9", "H", "purchase", D29, None),
    ("p14", "M", "purchase", D01, None),
], key=repr)  # fmt: skip


def test_ga4_rows_exact(ga4) -> None:
    kept, skipped = _ga4(ga4)
    assert kept == GA4_KEPT_UTC
    jan31, mar01 = dt.date(2024, 1, 31), dt.date(2024, 3, 1)
    assert skipped == {
        (D10, "ignored_event", "page_view"): 1,
        (D10, "ignored_event", "view_item_list"): 2,  # one row per listed item
        (jan31, "before_window", None): 2,  # p8 (its table's day) and p10
        (mar01, "after_window", None): 1,  # p13 at 05:00 UTC
    }


def test_ga4_time_zone_moves_the_window_and_days(ga4) -> None:
    kept, skipped = _ga4(ga4, export_sql.ExportRules(time_zone="America/Los_Angeles"))
    la = {(u, s, d, r) for u, s, _, d, r in kept}
    assert ("p13", "L", D29, None) in la  # Feb 29, 21:00 in Los Angeles
    assert ("p14", "M", D01, None) not in la  # Jan 31 there: before the window
    assert ("p9", "H", D29, None) in la
    assert skipped[(dt.date(2024, 1, 31), "before_window", None)] == 3


def test_ga4_user_key_user_id_else_pseudo_id(ga4) -> None:
    kept, _ = _ga4(ga4, export_sql.ExportRules(user_key="user_id"))
    assert sorted({u for u, *_ in kept if u}) == sorted(
        {u for u, *_ in GA4_KEPT_UTC if u} - {"p3"} | {"login3"}
    )


def test_ga4_tolerance_and_placeholders_are_settings(ga4) -> None:
    rules = export_sql.ExportRules(duplicate_tolerance_s=10, placeholders=("w",))
    kept, _ = _ga4(ga4, rules)
    reasons = {(u, s): r for u, s, _, _, r in kept if u in ("p6", "p12")}
    # Within 10 s: the second and third purchase both repeat the one before them.
    assert sorted(map(repr, (r[4] for r in kept if r[0] == "p3"))) == [
        "'duplicate_event'", "'duplicate_event'", "None"
    ]  # fmt: skip
    assert reasons[("p6", "(not set)")] is None  # no longer a placeholder
    assert reasons[("p12", "W")] == "placeholder_id"  # case-insensitive, trimmed
