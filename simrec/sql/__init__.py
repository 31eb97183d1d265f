"""The export query: one BigQuery-dialect SQL text, run as is on BigQuery and on DuckDB
through sqlglot, so both backends select and validate events identically.

Only identifiers (table, column names) and constants of the core (actions, GA4 event
names) are rendered into the text; dates are always query parameters (``@start_date``,
``@end_date``), never formatted into the SQL.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from string import Template
from typing import Literal, get_args

from simrec.core.actions import ACTIONS, GA4_EVENT_ACTIONS
from simrec.core.events import EVENT_COLUMNS, MAX_SKU_LENGTH
from simrec.core.runs import RunParams

Schema = Literal["plain", "ga4"]
SCHEMAS: tuple[str, ...] = get_args(Schema)

#: Columns of the export query's result, in order (see export_events.sql).
OUTPUT_COLUMNS: tuple[str, ...] = (
    "user_id", "sku", "action", "ts", "dt", "reason",
    "raw_user_id", "raw_sku", "raw_action", "raw_ts",
)  # fmt: skip

#: Plain-table column names by event field; ``ts`` falls back to ``date`` when absent.
DEFAULT_COLUMNS: dict[str, str] = {c: c for c in EVENT_COLUMNS}
TS_FALLBACKS: tuple[str, ...] = ("ts", "date")
#: GA4 field used as the shopper id. ``user_pseudo_id`` is always set and stable per
#: device; GA4's ``user_id`` exists only after a login, so mixing the two would split one
#: shopper's history in two. Override with ``columns={"user_id": "user_id"}``.
GA4_DEFAULT_USER_FIELD = "user_pseudo_id"

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
    return {field: by_lower[name.lower()] for field, name in wanted.items()}


def render_export_sql(
    schema: str, table: str, columns: Mapping[str, str] | None = None
) -> str:
    """The export query in BigQuery dialect for one source.

    ``table``: the exact table to read (plain: ``project.dataset.events``; GA4: the
    wildcard, see :func:`ga4_table`; locally a DuckDB view name). ``columns``: for plain,
    the resolved mapping (:func:`resolve_columns`; defaults if omitted); for GA4 only
    ``user_id`` may be given (the GA4 field holding the shopper id).
    """
    if schema == "plain":
        cols = dict(DEFAULT_COLUMNS)
        cols.update(columns or {})
        source = Template(_load("source_plain.sql")).substitute(
            table=_table(table), **{k: _ident(cols[k]) for k in EVENT_COLUMNS}
        )
    elif schema == "ga4":
        extra = set(columns or {}) - {"user_id"}
        if extra:
            raise ValueError(f"GA4 sources only accept a 'user_id' column override, got {extra}")
        user_field = (columns or {}).get("user_id", GA4_DEFAULT_USER_FIELD)
        cases = "\n".join(
            f"      WHEN {_literals([name])} THEN {_literals([str(action)])}"
            for name, action in GA4_EVENT_ACTIONS.items()
        )
        source = Template(_load("source_ga4.sql")).substitute(
            table=_table(table),
            user_field=_ident(user_field),
            event_cases=cases,
            event_names=_literals(GA4_EVENT_ACTIONS),
        )
    else:
        raise ValueError(f"unknown events schema {schema!r}; expected one of {SCHEMAS}")
    return Template(_load("export_events.sql")).substitute(
        source_rows=source.rstrip("\n"),
        actions=_literals(ACTIONS),
        max_sku_length=str(int(MAX_SKU_LENGTH)),
    )


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


def query_parameters(params: RunParams) -> dict[str, dt.date]:
    """The export query's parameters: the inclusive window ``[start_date, end_date]``."""
    return {"start_date": params.start_date, "end_date": params.end_date}
