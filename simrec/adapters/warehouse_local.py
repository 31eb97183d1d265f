"""The embedded warehouse: the export query on DuckDB over local CSV/Parquet/NDJSON files.

The BigQuery text of :mod:`simrec.sql` is transpiled by sqlglot and run with the same
parameters; the result is split on ``reason`` exactly as the BigQuery adapter splits it:
valid rows into one folder per day, rejects (raw values + reason) into the run's folder.
Whatever the files hold, a failure ends in one :class:`SourceError` line naming the file
(and line or column where known), never in an engine traceback.
"""

from __future__ import annotations

import csv
import datetime as dt
import glob
import gzip
import os
import re
import shutil
import time
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from simrec import sql as export_sql
from simrec.adapters.ports import ExportResult
from simrec.core import layout
from simrec.core.events import REJECT_REASONS, SourceError
from simrec.core.runs import RunParams
from simrec.sql import ExportRules, Schema

SOURCE_VIEW = "simrec_source"
_RESULT = "simrec_export"
_PLAIN_SUFFIXES = (".csv", ".csv.gz", ".parquet")
#: GA4 day files as ``bq extract`` / ``EXPORT DATA`` write them: ``events_YYYYMMDD`` in
#: the file name (``events_20201101.parquet``, ``events_20201101-000000000000.parquet``)
#: or in a folder name (``events_20201101/000000000000.json.gz``).
_GA4_DAY = re.compile(r"events_([0-9]{8})(?![0-9])")
_GA4_FORMATS = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".ndjson": "json"}
#: The GA4 fields the query reads, typed as the export has them; an NDJSON export
#: writes INT64 as JSON strings, which this typing reads back as integers.
GA4_JSON_COLUMNS = {
    "event_date": "VARCHAR", "event_timestamp": "BIGINT", "event_name": "VARCHAR",
    "user_pseudo_id": "VARCHAR", "user_id": "VARCHAR",
    "items": "STRUCT(item_id VARCHAR, quantity BIGINT)[]",
    "event_params": "STRUCT(key VARCHAR, value STRUCT(string_value VARCHAR, "
                    "int_value BIGINT, float_value DOUBLE, double_value DOUBLE))[]",
    "ecommerce": "STRUCT(transaction_id VARCHAR)",
}  # fmt: skip
_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT",
                  "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}  # fmt: skip


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


def _expand(source: str, pattern: str = "*") -> list[str]:
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


def duckdb_kind(type_name: str) -> str:
    """The :data:`simrec.sql.FIELD_KINDS` kind of a DuckDB type."""
    t = type_name.upper()
    if t == "VARCHAR" or t.startswith("VARCHAR("):
        return "text"
    if t in _INTEGER_TYPES:
        return "integer"
    if t == "DATE":
        return "date"
    if t.startswith("TIMESTAMP"):
        return "timestamp"
    if t == '"NULL"' or t == "NULL":
        return "null"
    if t.endswith("]") or t.startswith(("STRUCT", "MAP", "UNION")):
        return "nested"
    if t in ("DOUBLE", "FLOAT", "REAL") or t.startswith("DECIMAL"):
        return "number"
    return t.lower()


@dataclass(frozen=True)
class LocalSource:
    """The files of an events source and the DuckDB relation that reads them."""

    fmt: str  # "csv", "parquet" or "json"
    files: tuple[str, ...]
    relation: str

    @property
    def where(self) -> str:
        return self.files[0] if len(self.files) == 1 else f"{len(self.files)} files"


def plain_source(source: str, parallel: bool = True) -> LocalSource:
    """A plain events source (CSV, CSV.gz, Parquet, folder or glob).

    CSV is read with every column as VARCHAR and short lines padded with NULLs, so a
    malformed value becomes a reject instead of aborting the read or dropping the line.
    """
    files = [f for f in _expand(source, "*") if f.lower().endswith(_PLAIN_SUFFIXES)]
    if not files:
        raise FileNotFoundError(f"no .csv, .csv.gz or .parquet files in {source}")
    kinds = {"parquet" if f.lower().endswith(".parquet") else "csv" for f in files}
    if len(kinds) > 1:
        raise ValueError(f"events source {source} mixes CSV and Parquet files")
    empty = [f for f in files if os.path.getsize(f) == 0]
    if empty:
        raise SourceError(f"{empty[0]}: empty file (expected a header line and events)")
    if kinds == {"parquet"}:
        return LocalSource("parquet", tuple(files),
                           f"read_parquet({_list(files)}, union_by_name=true)")  # fmt: skip
    return LocalSource("csv", tuple(files), (
        f"read_csv({_list(files)}, all_varchar=true, header=true, delim=',', quote='\"', "
        f"escape='\"', null_padding=true, union_by_name=true, parallel={str(parallel).lower()})"
    ))  # fmt: skip


def ga4_files(source: str) -> tuple[str, list[str]]:
    """(format, files) of a local GA4 export: every layout ``bq extract`` writes for
    Parquet or NDJSON (optionally gzip). ``events_intraday_*`` files are left out, as
    the BigQuery query leaves those tables out; anything else is refused by name."""
    files, formats = [], set()
    for f in _expand(source, "*"):
        rel = os.path.relpath(f, local_path(source)) if os.path.isdir(local_path(source)) else f
        if "events_intraday_" in rel:
            continue
        name = f.lower().removesuffix(".gz")
        ext = os.path.splitext(name)[1]
        if ext == ".avro":
            raise SourceError(f"{f}: Avro is not read locally; extract the GA4 tables with "
                              "--destination_format=PARQUET or NEWLINE_DELIMITED_JSON")  # fmt: skip
        if ext not in _GA4_FORMATS or (f.lower().endswith(".gz") and ext == ".parquet"):
            raise SourceError(f"{f}: not a GA4 export file (.parquet, or .json/.jsonl/.ndjson "
                              "optionally .gz)")  # fmt: skip
        if not _GA4_DAY.search(f):
            raise SourceError(f"{f}: not named after its day table (events_YYYYMMDD in the "
                              "file or folder name)")  # fmt: skip
        files.append(f)
        formats.add(_GA4_FORMATS[ext])
    if not files:
        raise FileNotFoundError(f"no GA4 day files (events_YYYYMMDD...) in {source}")
    if len(formats) > 1:
        raise SourceError(f"events source {source} mixes Parquet and NDJSON GA4 files")
    return formats.pop(), files


def ga4_source(source: str) -> LocalSource:
    """DuckDB relation over a local GA4 export (see :func:`ga4_files`).

    ``_TABLE_SUFFIX`` is the file's ``YYYYMMDD``, as BigQuery derives it from the table
    name of the ``events_*`` wildcard.
    """
    fmt, files = ga4_files(source)
    if fmt == "parquet":
        read = f"read_parquet({_list(files)}, filename=true, union_by_name=true)"
    else:
        columns = "{" + ", ".join(f"{_literal(k)}: {_literal(v)}"
                                  for k, v in GA4_JSON_COLUMNS.items()) + "}"  # fmt: skip
        read = (f"read_json({_list(files)}, format='newline_delimited', filename=true, "
                f"columns={columns})")  # fmt: skip
    suffix = "regexp_extract(filename, '.*events_([0-9]{8})', 1)"
    return LocalSource(fmt, tuple(files), f"(SELECT *, {suffix} AS _TABLE_SUFFIX FROM {read})")


def _check_ga4_columns(types: Mapping[str, str], rules: ExportRules, where: str) -> None:
    """The GA4 fields the query reads exist with the export's types (one line if not)."""
    wanted = {"event_name": ("text",), "event_timestamp": ("integer", "null"),
              "user_pseudo_id": ("text", "null"), "items": ("nested",)}  # fmt: skip
    if rules.user_key == "user_id":
        wanted["user_id"] = ("text", "null")
    for name, kinds in wanted.items():
        if name not in types:
            raise SourceError(f"{where}: no GA4 column {name!r}; it has {sorted(types)}")
        if duckdb_kind(types[name]) not in kinds:
            raise SourceError(f"{where}: GA4 column {name!r} is {types[name]}; expected "
                              f"{kinds[0]} as in the BigQuery export")  # fmt: skip
    item = types["items"].replace(" ", "").lower()
    if not item.startswith("struct(") or not item.endswith("[]") or not all(
        re.search(rf"[(,]{f}[a-z]", item) for f in ("item_id", "quantity")
    ):
        raise SourceError(f"{where}: GA4 column 'items' is {types['items']}; expected a "
                          "repeated record with item_id and quantity")  # fmt: skip


def _diagnose_text(path: str) -> str | None:
    """What makes a CSV file unreadable, with its line (only called after a failure)."""
    opener = gzip.open if path.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            if b"\0" in fh.read(1 << 16):
                return "binary data, not CSV text"
        with opener(path, "rb") as fh:
            for n, line in enumerate(fh, 1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError:
                    return f"line {n}: not UTF-8 text (Latin-1?); save the file as UTF-8"
        with opener(path, "rt", encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh, strict=True)
            start = 1
            while True:
                try:
                    next(reader)
                except StopIteration:
                    return None
                except csv.Error as exc:
                    return f"line {start}: {exc} (an unbalanced quote?)"
                start = reader.line_num + 1
    except (EOFError, zlib.error):
        return "truncated gzip file"
    except gzip.BadGzipFile:
        return "not a gzip file despite its .gz name"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"^[A-Za-z ]*Error: ", "", text)


def source_error(exc: duckdb.Error, src: LocalSource) -> SourceError:
    """One line for a DuckDB failure while reading ``src``: the file and what is wrong."""
    text = str(exc)
    named = re.search(r"""file = (\S+)|[Ff]ile ["']([^"']+)["']|: (/\S+)$""", text, re.M)
    culprit = next((g for g in named.groups() if g), None) if named else None
    files = [f for f in src.files if culprit and f.endswith(culprit)] or list(src.files)
    if src.fmt == "csv":
        for f in files:
            problem = _diagnose_text(f)
            if problem:
                return SourceError(f"cannot read events file {f}: {problem}")
    line = re.search(r"CSV Error on Line: (\d+)", text)
    where = files[0] if len(files) == 1 else src.where
    detail = _first_line(exc)
    if "gzip" in text.lower():
        detail = "truncated or corrupt gzip file"
    elif "magic bytes" in text.lower() or "not a parquet file" in text.lower():
        detail = "not a Parquet file, or a truncated one"
    elif line:
        detail = f"line {line.group(1)}: " + next(
            (ln.strip() for ln in text.splitlines()[1:] if ln.strip()
             and not ln.strip().startswith(("Original Line", "file ="))), detail)  # fmt: skip
    return SourceError(f"cannot read events {src.fmt.upper()} {where}: {detail}")


@contextmanager
def reading(src: LocalSource) -> Iterator[None]:
    """Turn any DuckDB failure while the source is read into one :class:`SourceError`."""
    try:
        yield
    except duckdb.Error as exc:
        raise source_error(exc, src) from exc


class DuckDBWarehouse:
    """Export port on DuckDB. ``columns`` maps event fields to plain-source columns
    (default: same names, ``date`` when there is no ``ts``); ``rules`` are the export
    rules of the settings (GA4 mapping, placeholders, duplicates, user key, time zone)."""

    def __init__(
        self,
        columns: Mapping[str, str] | None = None,
        rules: ExportRules | None = None,
        threads: int | None = None,
    ) -> None:
        self.columns = dict(columns or {})
        self.rules = rules or ExportRules()
        self.threads = threads

    def connect(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        con.execute("SET TimeZone='UTC'")
        if self.threads:
            con.execute(f"SET threads={int(self.threads)}")
        return con

    def create_source_view(
        self, con: duckdb.DuckDBPyConnection, source: str, schema: str, parallel: bool = True
    ) -> tuple[LocalSource, dict[str, str]]:
        """Expose ``source`` as the view the query reads; return it and the column mapping.

        Column types are checked here, so a wrong one is an error naming the column.
        """
        if schema == "plain":
            src = plain_source(source, parallel)
        elif schema == "ga4":
            src = ga4_source(source)
        else:
            raise ValueError(
                f"unknown events schema {schema!r}; expected one of {export_sql.SCHEMAS}"
            )
        with reading(src):
            con.execute(f"CREATE OR REPLACE TEMP VIEW {SOURCE_VIEW} AS "
                        f"SELECT * FROM {src.relation}")  # fmt: skip
            desc = con.execute(f"SELECT * FROM {SOURCE_VIEW} LIMIT 0").description
        types = {d[0]: str(d[1]) for d in desc}
        if schema == "ga4":  # the mapping: the grouping columns the export can fill
            _check_ga4_columns(types, self.rules, src.where)
            sources = export_sql.GA4_GROUP_SOURCES
            return src, {g: g for g, column in sources.items() if column in types}
        mapping = export_sql.resolve_columns(list(types), self.columns)
        kinds = {c: (duckdb_kind(t), t) for c, t in types.items()}
        export_sql.check_column_kinds(mapping, kinds, src.where)
        return src, mapping

    def query(
        self, con: duckdb.DuckDBPyConnection, params: RunParams, source: str, schema: str
    ) -> tuple[str, LocalSource]:
        """Run the export query into a temp table (its name is returned with the source).

        A CSV with quoted newlines cannot be split across threads with null padding on;
        DuckDB says so, and the read is repeated on one thread.
        """
        for parallel in (True, False):
            src, columns = self.create_source_view(con, source, schema, parallel)
            ga4 = schema == "ga4"
            text = export_sql.to_duckdb(export_sql.render_export_sql(
                schema, SOURCE_VIEW, None if ga4 else columns, self.rules,
                **({"ga4_groups": columns} if ga4 else {}),
            ))  # fmt: skip
            values = export_sql.query_parameters(params, self.rules, schema)
            try:
                con.execute(f"CREATE OR REPLACE TEMP TABLE {_RESULT} AS {text}", values)
            except duckdb.Error as exc:
                if parallel and src.fmt == "csv" and "parallel=false" in str(exc):
                    continue
                raise source_error(exc, src) from exc
            return _RESULT, src
        raise AssertionError("unreachable")

    def export(
        self, params: RunParams, source: str, schema: Schema, data_root: str
    ) -> ExportResult:
        root = local_path(data_root)
        run_dir = layout.export_run(root, params.tenant, params.run_id)
        rejects_dir = layout.join(run_dir, "rejects")
        staging = layout.join(run_dir, "_staging_days")
        timings: dict[str, float] = {}
        rejects = ", ".join(_literal(r) for r in REJECT_REASONS)
        con = self.connect()
        try:
            t0 = time.perf_counter()
            table, _ = self.query(con, params, source, schema)
            counts = con.execute(
                export_sql.to_duckdb(export_sql.render_counts_sql(table))
            ).fetchall()
            timings["query_s"] = round(time.perf_counter() - t0, 3)

            t0 = time.perf_counter()
            shutil.rmtree(staging, ignore_errors=True)
            os.makedirs(run_dir, exist_ok=True)
            if any(reason is None for _, reason, _, _ in counts):
                con.execute(
                    f"COPY (SELECT user_id, sku, action, CAST(ts AS TIMESTAMPTZ) AS ts, "
                    f"{', '.join(layout.GROUP_COLUMNS)}, dt "
                    f"FROM {table} WHERE reason IS NULL ORDER BY dt, ts, user_id, sku, action) "
                    f"TO {_literal(staging)} (FORMAT parquet, PARTITION_BY (dt), "
                    "FILENAME_PATTERN 'part-{i}')"
                )
            self._replace_days(params, root, staging)
            shutil.rmtree(rejects_dir, ignore_errors=True)
            os.makedirs(rejects_dir)
            con.execute(
                "COPY (SELECT raw_user_id AS user_id, raw_sku AS sku, raw_action AS action, "
                f"raw_ts AS ts, reason FROM {table} WHERE reason IN ({rejects}) "
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
    source: str,
    schema: str,
    columns: Mapping[str, str] | None = None,
    not_after: dt.date | None = None,
) -> dt.date | None:
    """UTC day of the newest parseable event in ``source`` (None if there is none).

    Lets a local run over a historical file default its date to the day after its data.
    Parses ts exactly as the export query does (text through TIMESTAMP, GA4 micros).
    Events after ``not_after`` (future-dated: a clock or unit error) do not count.
    """
    warehouse = DuckDBWarehouse(columns=columns)
    con = warehouse.connect()
    try:
        src, mapping = warehouse.create_source_view(con, source, schema)
        if schema == "plain":
            ts = mapping["ts"].replace('"', '""')
            expr = f'TRY_CAST(trim(CAST("{ts}" AS VARCHAR)) AS TIMESTAMPTZ)'
        else:
            expr = "CAST(make_timestamp(event_timestamp) AS TIMESTAMPTZ)"
        day = f"CAST({expr} AS DATE)"
        where = f"WHERE {day} <= ?" if not_after else ""
        with reading(src):
            (newest,) = con.execute(f"SELECT max({day}) FROM {SOURCE_VIEW} {where}",
                                    [not_after] if not_after else []).fetchone()  # fmt: skip
    finally:
        con.close()
    return newest
