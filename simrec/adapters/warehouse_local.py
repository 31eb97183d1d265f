"""The embedded warehouse: the export query on DuckDB over local CSV/Parquet files.

The BigQuery text of :mod:`simrec.sql` is transpiled by sqlglot and run with the window
as DuckDB parameters; the result is split on ``reason`` exactly as the BigQuery adapter
splits it: valid rows into one folder per UTC day, rejects (raw values + reason) into the
run's folder.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

import duckdb

from simrec import sql as export_sql
from simrec.adapters.ports import ExportResult
from simrec.core import layout
from simrec.core.runs import RunParams
from simrec.sql import Schema

SOURCE_VIEW = "simrec_source"
_RESULT = "simrec_export"
_PLAIN_SUFFIXES = (".csv", ".csv.gz", ".parquet")


def local_path(uri: str) -> str:
    """A local filesystem path from a path or ``file://`` URI; other schemes are refused."""
    if uri.startswith("file://"):
        return uri[len("file://") :]
    if "://" in uri:
        raise ValueError(f"the DuckDB warehouse reads and writes local paths only, got {uri!r}")
    return uri


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _list(paths: list[str]) -> str:
    return "[" + ", ".join(_literal(p) for p in paths) + "]"


def _expand(source: str, pattern: str) -> list[str]:
    """Files of ``source``: a file, a glob, or a folder searched for ``pattern``."""
    path = local_path(source)
    if any(ch in path for ch in "*?["):
        files = glob.glob(path, recursive=True)
    elif os.path.isdir(path):
        files = [str(p) for p in Path(path).rglob(pattern)]
    elif os.path.isfile(path):
        files = [path]
    else:
        raise FileNotFoundError(f"events source not found: {source}")
    files = sorted(
        f for f in files if os.path.isfile(f) and not os.path.basename(f).startswith((".", "_"))
    )
    if not files:
        raise FileNotFoundError(f"no event files in {source} (looked for {pattern})")
    return files


def plain_source_sql(source: str) -> str:
    """DuckDB relation over a plain events source (CSV, CSV.gz, Parquet, folder or glob).

    CSV is read with every column as VARCHAR and short lines padded with NULLs, so a
    malformed value becomes a reject instead of aborting the read or dropping the line.
    """
    files = [f for f in _expand(source, "*") if f.lower().endswith(_PLAIN_SUFFIXES)]
    if not files:
        raise FileNotFoundError(f"no .csv, .csv.gz or .parquet files in {source}")
    kinds = {"parquet" if f.lower().endswith(".parquet") else "csv" for f in files}
    if len(kinds) > 1:
        raise ValueError(f"events source {source} mixes CSV and Parquet files")
    if kinds == {"parquet"}:
        return f"read_parquet({_list(files)}, union_by_name=true)"
    return (
        f"read_csv({_list(files)}, all_varchar=true, header=true, delim=',', quote='\"', "
        "escape='\"', null_padding=true, union_by_name=true)"
    )


def ga4_source_sql(source: str) -> str:
    """DuckDB relation over a folder of GA4 ``events_YYYYMMDD.parquet`` files.

    ``_TABLE_SUFFIX`` is derived from the file name, as BigQuery derives it from the table
    name; files not named ``events_<8 digits>`` get an empty suffix and are never read.
    """
    files = _expand(source, "events_*.parquet")
    return (
        "SELECT *, regexp_extract(filename, 'events_([0-9]{8})\\.parquet$', 1) "
        f"AS _TABLE_SUFFIX FROM read_parquet({_list(files)}, filename=true, union_by_name=true)"
    )


class DuckDBWarehouse:
    """Export port on DuckDB. ``columns`` maps event fields to plain-source columns
    (default: same names, ``date`` when there is no ``ts``); ``ga4_user_field`` names the
    GA4 field used as shopper id."""

    def __init__(
        self,
        columns: Mapping[str, str] | None = None,
        ga4_user_field: str = export_sql.GA4_DEFAULT_USER_FIELD,
        threads: int | None = None,
    ) -> None:
        self.columns = dict(columns or {})
        self.ga4_user_field = ga4_user_field
        self.threads = threads

    def connect(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        con.execute("SET TimeZone='UTC'")
        if self.threads:
            con.execute(f"SET threads={int(self.threads)}")
        return con

    def create_source_view(
        self, con: duckdb.DuckDBPyConnection, source: str, schema: str
    ) -> dict[str, str]:
        """Expose ``source`` as the view the query reads; return the column mapping."""
        if schema == "plain":
            con.execute(f"CREATE OR REPLACE TEMP VIEW {SOURCE_VIEW} AS "
                        f"SELECT * FROM {plain_source_sql(source)}")  # fmt: skip
            names = [d[0] for d in con.execute(f"SELECT * FROM {SOURCE_VIEW} LIMIT 0").description]
            return export_sql.resolve_columns(names, self.columns)
        if schema == "ga4":
            con.execute(f"CREATE OR REPLACE TEMP VIEW {SOURCE_VIEW} AS {ga4_source_sql(source)}")
            return {"user_id": self.ga4_user_field}
        raise ValueError(f"unknown events schema {schema!r}; expected one of {export_sql.SCHEMAS}")

    def query(
        self, con: duckdb.DuckDBPyConnection, params: RunParams, source: str, schema: str
    ) -> str:
        """Run the export query into a temp table (its name is returned)."""
        columns = self.create_source_view(con, source, schema)
        text = export_sql.to_duckdb(export_sql.render_export_sql(schema, SOURCE_VIEW, columns))
        con.execute(f"CREATE OR REPLACE TEMP TABLE {_RESULT} AS {text}",
                    export_sql.query_parameters(params))  # fmt: skip
        return _RESULT

    def export(
        self, params: RunParams, source: str, schema: Schema, data_root: str
    ) -> ExportResult:
        root = local_path(data_root)
        run_dir = layout.export_run(root, params.tenant, params.run_id)
        rejects_dir = layout.join(run_dir, "rejects")
        staging = layout.join(run_dir, "_staging_days")
        timings: dict[str, float] = {}
        con = self.connect()
        try:
            t0 = time.perf_counter()
            table = self.query(con, params, source, schema)
            counts = con.execute(
                f"SELECT dt, reason, count(*) FROM {table} GROUP BY ALL"
            ).fetchall()
            timings["query_s"] = round(time.perf_counter() - t0, 3)

            t0 = time.perf_counter()
            shutil.rmtree(staging, ignore_errors=True)
            os.makedirs(run_dir, exist_ok=True)
            if any(reason is None for _, reason, _ in counts):
                con.execute(
                    f"COPY (SELECT user_id, sku, action, CAST(ts AS TIMESTAMPTZ) AS ts, dt "
                    f"FROM {table} WHERE reason IS NULL ORDER BY dt, ts, user_id, sku, action) "
                    f"TO {_literal(staging)} (FORMAT parquet, PARTITION_BY (dt), "
                    "FILENAME_PATTERN 'part-{i}')"
                )
            self._replace_days(params, root, staging)
            shutil.rmtree(rejects_dir, ignore_errors=True)
            os.makedirs(rejects_dir)
            con.execute(
                "COPY (SELECT raw_user_id AS user_id, raw_sku AS sku, raw_action AS action, "
                f"raw_ts AS ts, reason FROM {table} WHERE reason IS NOT NULL "
                "ORDER BY reason, user_id, sku, action, ts) "
                f"TO {_literal(layout.join(rejects_dir, 'part-0.parquet'))} (FORMAT parquet)"
            )
            timings["write_s"] = round(time.perf_counter() - t0, 3)
        finally:
            con.close()
            shutil.rmtree(staging, ignore_errors=True)
        rejects_uri = layout.join(layout.export_run(data_root, params.tenant, params.run_id),
                                  "rejects")  # fmt: skip
        return ExportResult.from_counts(counts, rejects_uri=rejects_uri, timings=timings)

    @staticmethod
    def _replace_days(params: RunParams, root: str, staging: str) -> None:
        """Make each window day exactly what this run staged (a day without rows: no folder).

        A whole folder is renamed into place, so a day is never half old, half new.
        """
        for day in params.days():
            target = layout.export_day(root, params.tenant, day)
            staged = os.path.join(staging, f"dt={day.isoformat()}")
            os.makedirs(staging, exist_ok=True)
            old = os.path.join(staging, f"replaced-{day.isoformat()}")
            if os.path.isdir(target):
                os.replace(target, old)
            if os.path.isdir(staged):
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.replace(staged, target)
            shutil.rmtree(old, ignore_errors=True)


def newest_event_date(
    source: str, schema: str, columns: Mapping[str, str] | None = None
) -> dt.date | None:
    """UTC day of the newest parseable event in ``source`` (None if there is none).

    Lets a local run over a historical file default its date to the day after its data.
    Parses ts exactly as the export query does (text through TIMESTAMP, GA4 micros).
    """
    warehouse = DuckDBWarehouse(columns=columns)
    con = warehouse.connect()
    try:
        mapping = warehouse.create_source_view(con, source, schema)
        if schema == "plain":
            ts = mapping["ts"].replace('"', '""')
            expr = f'TRY_CAST(trim(CAST("{ts}" AS VARCHAR)) AS TIMESTAMPTZ)'
        else:
            expr = "CAST(make_timestamp(event_timestamp) AS TIMESTAMPTZ)"
        (newest,) = con.execute(f"SELECT CAST(max({expr}) AS DATE) FROM {SOURCE_VIEW}").fetchone()
    finally:
        con.close()
    return newest
