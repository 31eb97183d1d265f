"""The export query: one BigQuery-dialect SQL text, run as is on BigQuery and on DuckDB
through sqlglot, so both backends select and validate events identically.

Only identifiers (table, column names) and checked names (actions, GA4 event names) are
rendered into the text, and the placeholder ids as string literals escaped by sqlglot;
dates, the time zone and the duplicate tolerance are always query parameters
(:func:`query_parameters`), never formatted into the SQL.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from string import Template
from typing import Literal, get_args

from simrec.core import layout
from simrec.core.actions import ACTIONS, GA4_EVENT_ACTIONS
from simrec.core.events import EVENT_COLUMNS, MAX_SKU_LENGTH, SourceError
from simrec.core.runs import RunParams

Schema = Literal["plain", "ga4"]
SCHEMAS: tuple[str, ...] = get_args(Schema)

#: Columns of the export query's result, in order (see export_events.sql).
OUTPUT_COLUMNS: tuple[str, ...] = (
    "user_id", "sku", "action", "ts", "dt", "reason",
    "raw_user_id", "raw_sku", "raw_action", "raw_ts", *layout.GROUP_COLUMNS,
)  # fmt: skip
#: Columns of the counts query (:func:`render_counts_sql`), the manifest's input.
COUNTS_COLUMNS: tuple[str, ...] = ("dt", "reason", "event_name", "row_count")

#: Plain-table column names by event field; ``ts`` falls back to ``date`` when absent.
DEFAULT_COLUMNS: dict[str, str] = {c: c for c in EVENT_COLUMNS}
TS_FALLBACKS: tuple[str, ...] = ("ts", "date")
#: GA4 grouping columns (``layout.GROUP_COLUMNS``): the order is the purchase's
#: ``ecommerce.transaction_id``, the session the ``ga_session_id`` event parameter.
GA4_GROUPS: dict[str, str] = {
    layout.ORDER_ID: "e.ecommerce.transaction_id",
    layout.SESSION_ID: "(SELECT p.value.int_value FROM UNNEST(e.event_params) AS p "
                       "WHERE p.key = 'ga_session_id' LIMIT 1)",
}
#: The GA4 columns each grouping expression reads (a local export may lack them).
GA4_GROUP_SOURCES: dict[str, str] = {
    layout.ORDER_ID: "ecommerce", layout.SESSION_ID: "event_params"
}
#: GA4 shopper key: ``user_pseudo_id`` (always set, one per device and browser) or
#: ``user_id`` (the shop's login id when the shopper signed in, else user_pseudo_id: one
#: person across devices, but a shopper's visits before the login stay a second user).
GA4UserKey = Literal["user_pseudo_id", "user_id"]
GA4_USER_KEYS: dict[str, str] = {
    "user_pseudo_id": "e.user_pseudo_id",
    "user_id": "COALESCE(NULLIF(TRIM(e.user_id), ''), e.user_pseudo_id)",
}
#: Ids that stand for "unknown" (GA4 writes ``(not set)``), compared case-insensitively.
PLACEHOLDER_IDS: tuple[str, ...] = ("(not set)",)
#: GA4 resends: the same user, event name and item within this many seconds count once.
DUPLICATE_TOLERANCE_S = 1.0


@dataclass(frozen=True)
class ExportRules:
    """The export's configurable rules (from :class:`simrec.config.Settings`), the same
    for BigQuery and DuckDB. ``time_zone`` is the GA4 property's: the run's days follow
    it for GA4 sources; plain sources use UTC days."""

    event_actions: Mapping[str, str] = field(default_factory=lambda: dict(GA4_EVENT_ACTIONS))
    placeholders: tuple[str, ...] = PLACEHOLDER_IDS
    duplicate_tolerance_s: float = DUPLICATE_TOLERANCE_S
    user_key: GA4UserKey = "user_pseudo_id"
    time_zone: str = "UTC"

    def __post_init__(self) -> None:
        if self.user_key not in GA4_USER_KEYS:
            raise ValueError(f"unknown GA4 user key {self.user_key!r}: {list(GA4_USER_KEYS)}")
        check_time_zone(self.time_zone)
        if not self.duplicate_tolerance_s >= 0:
            raise ValueError("the duplicate tolerance must be >= 0 seconds")


def check_time_zone(name: str) -> str:
    """``name`` if it is an IANA time zone (as both BigQuery and DuckDB know them)."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: expected an IANA name such as "
                         "'UTC' or 'America/Los_Angeles'") from None  # fmt: skip
    return name

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TABLE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*\*?$")


@cache
def _load(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"invalid column name {name!r}: expected letters, digits and '_'")
    return f"`{name}`"


def _table(name: str) -> str:
    if not _TABLE.match(name) or ".." in name:
        raise ValueError(
            f"invalid table {name!r}: expected [project.]dataset.table (GA4: ...events_*)"
        )
    return f"`{name}`"


def _literals(values: Iterable[str]) -> str:
    out = []
    for v in values:
        if not re.match(r"^[A-Za-z0-9_]+$", v):  # constants of the core; never user input
            raise ValueError(f"unexpected literal {v!r}")
        out.append(f"'{v}'")
    return ", ".join(out)


def _strings(values: Iterable[str]) -> str:
    """SQL string literals of configured values, escaped by sqlglot's BigQuery writer."""
    from sqlglot import exp

    return ", ".join(exp.Literal.string(v).sql(dialect="bigquery") for v in values)


def placeholder_values(rules: ExportRules) -> list[str]:
    """The placeholders as compared: trimmed, lower-case, without blanks (those are
    already missing ids)."""
    return sorted({p.strip().lower() for p in rules.placeholders if p.strip()})


def ga4_table(dataset: str) -> str:
    """The wildcard table of a GA4 export dataset (``project.analytics_123.events_*``)."""
    return dataset if dataset.endswith("*") else f"{dataset.rstrip('.')}.events_*"


def resolve_columns(
    available: Iterable[str], columns: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Map each event field to a column of a plain table, matching names case-insensitively.

    ``columns`` overrides some or all of the defaults; without an explicit ``ts`` the
    first of ``ts``/``date`` present is used. Raises ``ValueError`` naming what is missing.
    """
    by_lower = {c.lower(): c for c in available}
    unknown = set(columns or {}) - set(EVENT_COLUMNS)
    if unknown:
        raise ValueError(f"unknown event fields in columns: {sorted(unknown)}")
    wanted = dict(DEFAULT_COLUMNS)
    wanted.update(columns or {})
    if not (columns and "ts" in columns):
        found = [c for c in TS_FALLBACKS if c in by_lower]
        wanted["ts"] = found[0] if found else "ts"
    missing = [f"{field} (column {name!r})" for field, name in wanted.items()
               if name.lower() not in by_lower]  # fmt: skip
    if missing:
        raise ValueError(
            f"events source lacks {', '.join(missing)}; it has {sorted(by_lower.values())}"
        )
    found = {field: by_lower[name.lower()] for field, name in wanted.items()}
    found.update({g: by_lower[g] for g in layout.GROUP_COLUMNS if g in by_lower})
    return found


#: Column kinds a plain source's fields may have: an integer id reads as its digits, a
#: text, DATE or TIMESTAMP ts parses; a float id ("1.0"), a list or a struct would be
#: mangled silently, and an integer ts has no unit, so those are refused by name.
FIELD_KINDS: dict[str, tuple[str, ...]] = {
    "user_id": ("text", "integer", "null"),
    "sku": ("text", "integer", "null"),
    "action": ("text", "null"),
    "ts": ("text", "timestamp", "date", "null"),
    layout.ORDER_ID: ("text", "integer", "null"),
    layout.SESSION_ID: ("text", "integer", "null"),
}


def check_column_kinds(
    columns: Mapping[str, str], kinds: Mapping[str, tuple[str, str]], where: str
) -> None:
    """Raise :class:`SourceError` naming the first mapped column of a refused kind.

    ``kinds``: column -> (kind, the engine's type name), kinds as in :data:`FIELD_KINDS`.
    """
    for field_name, column in columns.items():
        kind, type_name = kinds[column]
        if kind not in FIELD_KINDS[field_name]:
            hint = " (epoch numbers have no unit: write ISO 8601 text)" if (
                field_name == "ts" and kind in ("integer", "number")) else ""  # fmt: skip
            raise SourceError(
                f"{where}: column {column!r} ({field_name}) is {type_name}; expected "
                f"{' or '.join(k for k in FIELD_KINDS[field_name] if k != 'null')}{hint}"
            )


def render_export_sql(
    schema: str,
    table: str,
    columns: Mapping[str, str] | None = None,
    rules: ExportRules | None = None,
    ga4_groups: Iterable[str] = tuple(GA4_GROUPS),
) -> str:
    """The export query in BigQuery dialect for one source.

    ``table``: the exact table to read (plain: ``project.dataset.events``; GA4: the
    wildcard, see :func:`ga4_table`; locally a DuckDB view name). ``columns``: for plain,
    the resolved mapping (:func:`resolve_columns`; defaults if omitted). ``rules``: the
    GA4 event mapping and user key (the other rules are query parameters). The plain
    mapping's ``order_id`` / ``session_id`` entries (present when the table has those
    columns) fill the grouping columns, else they are NULL; ``ga4_groups``: the GA4
    grouping columns the source can fill (BigQuery's export always has both).
    """
    rules = rules or ExportRules()
    if schema == "plain":
        cols = dict(DEFAULT_COLUMNS)
        cols.update(columns or {})
        groups = {g: _ident(cols[g]) if g in cols else "NULL" for g in layout.GROUP_COLUMNS}
        source = Template(_load("source_plain.sql")).substitute(
            table=_table(table), **{k: _ident(cols[k]) for k in EVENT_COLUMNS}, **groups
        )
    elif schema == "ga4":
        if columns:
            raise ValueError("GA4 sources take no column mapping (see SIMREC_GA4_USER_KEY)")
        cases = "\n".join(
            f"        WHEN {_literals([name])} THEN {_literals([str(action)])}"
            for name, action in rules.event_actions.items()
        )
        source = Template(_load("source_ga4.sql")).substitute(
            table=_table(table),
            user_key=GA4_USER_KEYS[rules.user_key],
            event_cases=cases,
            event_names=_literals(rules.event_actions),
            **{g: GA4_GROUPS[g] if g in set(ga4_groups) else "NULL" for g in GA4_GROUPS},
        )
    else:
        raise ValueError(f"unknown events schema {schema!r}; expected one of {SCHEMAS}")
    placeholders = placeholder_values(rules)
    is_placeholder = (
        f"LOWER(user_id) IN ({_strings(placeholders)}) OR LOWER(sku) IN ({_strings(placeholders)})"
        if placeholders else "FALSE"
    )
    repeat_rule = _load("export_repeats.sql").strip() if schema == "ga4" else "first_reason"
    return Template(_load("export_events.sql")).substitute(
        source_rows=source.rstrip("\n"),
        repeat_rule=repeat_rule,
        is_placeholder=is_placeholder,
        day_of_ts="DATE(ts, @time_zone)" if schema == "ga4" else "DATE(ts)",
        actions=_literals(ACTIONS),
        max_sku_length=str(int(MAX_SKU_LENGTH)),
    )


def render_counts_sql(result_table: str) -> str:
    """The counts of the export query's result table (BigQuery dialect)."""
    return Template(_load("export_counts.sql")).substitute(result=_table(result_table))


def to_duckdb(sql: str) -> str:
    """Transpile BigQuery SQL to DuckDB; fails loudly on anything sqlglot cannot express."""
    import sqlglot  # only the embedded backend needs it

    statements = sqlglot.transpile(
        sql,
        read="bigquery",
        write="duckdb",
        unsupported_level=sqlglot.ErrorLevel.RAISE,
        comments=False,
    )
    if len(statements) != 1:
        raise ValueError(f"expected one statement, got {len(statements)}")
    return statements[0]


def query_parameters(
    params: RunParams, rules: ExportRules | None = None, schema: str = "plain"
) -> dict[str, object]:
    """The parameters of the export query of ``schema``: the inclusive window
    ``[start_date, end_date]`` (plain: UTC days; GA4: days in ``time_zone``, the
    property's) and (GA4) the repeat tolerance."""
    rules = rules or ExportRules()
    values: dict[str, object] = {
        "start_date": params.start_date,
        "end_date": params.end_date,
    }
    if schema == "ga4":
        values["time_zone"] = rules.time_zone
        values["duplicate_tolerance_us"] = round(rules.duplicate_tolerance_s * 1_000_000)
    return values
