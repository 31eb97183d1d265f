"""Export port on BigQuery: the export SQL as one multi-statement job that writes the day
partitions and the rejects with ``EXPORT DATA`` and returns the manifest's counts.

``EXPORT DATA`` cannot partition by a column, so the script loops over the window's days
that have valid rows and exports each to ``exports/<tenant>/dt=YYYY-MM-DD/part-*.parquet``
(``overwrite = true`` replaces that day's files). Its last statement is the counts query,
which is the job's result. Dates only ever reach the SQL as query parameters
(``@start_date``, ``@end_date``; each day as ``@day``); the only values rendered into the
text are identifiers and the output paths, checked first.

Idempotency: the job id derives from the run (``simrec-export-<run key>``). A redelivered
message that finds the job (``409 Conflict``) waits for that job instead of starting a
second one; only if that job failed is the next attempt id (``...-retry1``, ...) used, so
a failed export can be rerun and redeliveries during a rerun still find one job.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import re
import time
from collections.abc import Mapping
from typing import Any

from simrec import sql as export_sql
from simrec import storage
from simrec.adapters.gcp import _endpoints
from simrec.adapters.ports import ExportResult
from simrec.config import Settings
from simrec.core import layout
from simrec.core.events import REJECT_REASONS
from simrec.core.runs import RunParams, attempt_key
from simrec.sql import ExportRules

TEMP_TABLE = "simrec_export"
MAX_ATTEMPTS = 10
_URI = re.compile(r"^gs://[a-z0-9][a-z0-9._-]*(/[A-Za-z0-9._=\-]+)*$")


class ExportTimeout(TimeoutError):
    """The job is still running at the end of the function's budget; a redelivery of the
    same message finds the job by its id and waits again."""


def job_id(params: RunParams, attempt: int = 0) -> str:
    """BigQuery job id of a run's export (``[A-Za-z0-9_-]``, at most 1024 characters)."""
    return f"simrec-export-{attempt_key(params.key, attempt)}"


def _uri_literal(uri: str) -> str:
    """A gs:// prefix as a SQL string literal; anything but a plain object path is refused."""
    if not _URI.match(uri):
        raise ValueError(
            f"export destination {uri!r} must be a gs:// path of letters, digits and ._=-"
        )
    return f"'{uri}'"


def export_script(
    params: RunParams,
    schema: str,
    table: str,
    columns: Mapping[str, str] | None,
    data_root: str,
    rules: ExportRules | None = None,
) -> str:
    """The multi-statement query of one run's export (see the module docstring)."""
    query = export_sql.render_export_sql(schema, table, columns, rules)
    rejects_in = ", ".join(f"'{r}'" for r in REJECT_REASONS)
    days_root = _uri_literal(layout.join(data_root, "exports", params.tenant))
    rejects = layout.join(layout.export_run(data_root, params.tenant, params.run_id), "rejects")
    rejects_uri = _uri_literal(rejects)[:-1] + "/part-*.parquet'"
    export_day = (
        "EXPORT DATA OPTIONS (uri = '%s/dt=%s/part-*.parquet', format = 'PARQUET', "
        "overwrite = true) AS SELECT user_id, sku, action, ts, "
        + ", ".join(layout.GROUP_COLUMNS) + " FROM " + TEMP_TABLE
        + " WHERE reason IS NULL AND dt = @day ORDER BY ts, user_id, sku, action"
    )  # fmt: skip
    return f"""-- simrec export of run {params.run_id} (tenant {params.tenant})
CREATE TEMP TABLE {TEMP_TABLE} AS
{query};

FOR export_day IN (
  SELECT DISTINCT dt FROM {TEMP_TABLE} WHERE reason IS NULL ORDER BY dt
) DO
  EXECUTE IMMEDIATE FORMAT(
    "{export_day}",
    {days_root}, FORMAT_DATE('%F', export_day.dt)
  ) USING export_day.dt AS day;
END FOR;

IF EXISTS (SELECT 1 FROM {TEMP_TABLE} WHERE reason IN ({rejects_in})) THEN
  EXPORT DATA OPTIONS (uri = {rejects_uri}, format = 'PARQUET', overwrite = true) AS
  SELECT raw_user_id AS user_id, raw_sku AS sku, raw_action AS action, raw_ts AS ts, reason
  FROM {TEMP_TABLE}
  WHERE reason IN ({rejects_in})
  ORDER BY reason, user_id, sku, action, ts;
END IF;

{export_sql.render_counts_sql(TEMP_TABLE).rstrip()};
"""


#: BigQuery type of each kind of export parameter value.
_PARAM_TYPES = {dt.date: "DATE", str: "STRING", int: "INT64"}


def query_parameters(
    params: RunParams, rules: ExportRules | None = None, schema: str = "plain"
) -> list[Any]:
    """The export query's parameters (:func:`simrec.sql.query_parameters`), typed."""
    from google.cloud import bigquery

    return [
        bigquery.ScalarQueryParameter(name, _PARAM_TYPES[type(value)], value)
        for name, value in export_sql.query_parameters(params, rules, schema).items()
    ]


def bigquery_kind(field: Any) -> str:
    """The :data:`simrec.sql.FIELD_KINDS` kind of a BigQuery ``SchemaField``."""
    if field.mode == "REPEATED" or field.field_type in ("RECORD", "STRUCT", "JSON"):
        return "nested"
    return {"STRING": "text", "INTEGER": "integer", "INT64": "integer", "DATE": "date",
            "TIMESTAMP": "timestamp", "DATETIME": "timestamp", "FLOAT": "number",
            "FLOAT64": "number", "NUMERIC": "number", "BIGNUMERIC": "number",
            }.get(field.field_type, field.field_type.lower())  # fmt: skip


class BigQueryWarehouse:
    """Export port on BigQuery (see the module docstring).

    ``client``: an injected ``google.cloud.bigquery.Client``; by default one is created
    on first use for ``project``/``location`` (``endpoint`` as in
    :mod:`simrec.adapters.gcp._endpoints`). Output objects are listed and removed through
    :mod:`simrec.storage` (gcsfs).
    """

    def __init__(
        self,
        project: str,
        location: str = "EU",
        timeout_s: float = 480.0,
        *,
        endpoint: str = "",
        client: Any = None,
        columns: Mapping[str, str] | None = None,
        rules: ExportRules | None = None,
    ) -> None:
        self.project = project
        self.location = location
        self.timeout_s = timeout_s
        self.endpoint = endpoint
        self.columns = dict(columns or {})
        self.rules = rules or ExportRules()
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> BigQueryWarehouse:
        return cls(
            settings.gcp_project,
            settings.bigquery_location,
            settings.export_timeout_seconds,
            endpoint=settings.bigquery_endpoint,
            rules=settings.export_rules,
        )

    @property
    def client(self) -> Any:
        if self._client is None:
            from google.cloud import bigquery

            if not self.project:
                raise ValueError("SIMREC_GCP_PROJECT is required for the BigQuery export")
            kwargs: dict[str, Any] = {}
            if self.endpoint:
                kwargs["client_options"] = {"api_endpoint": self.endpoint}
            if _endpoints.is_local(self.endpoint):
                from google.auth.credentials import AnonymousCredentials

                kwargs["credentials"] = AnonymousCredentials()
            self._client = bigquery.Client(project=self.project, location=self.location, **kwargs)
        return self._client

    # --- the export -------------------------------------------------------------------
    def source_table(self, source: str, schema: str) -> str:
        if schema == "ga4":
            return export_sql.ga4_table(source)
        if schema == "plain":
            return source
        raise ValueError(f"unknown events schema {schema!r}; expected one of {export_sql.SCHEMAS}")

    def source_columns(self, table: str, schema: str) -> dict[str, str]:
        """Plain: map event fields to the table's columns (its schema is read once) and
        refuse a column of a kind the query would mangle (a FLOAT sku, a REPEATED one)."""
        if schema == "ga4":
            return {}
        fields = self.client.get_table(table).schema
        mapping = export_sql.resolve_columns([f.name for f in fields], self.columns)
        kinds = {f.name: (bigquery_kind(f), f.field_type) for f in fields}
        export_sql.check_column_kinds(mapping, kinds, table)
        return mapping

    def export(
        self, params: RunParams, source: str, schema: str, data_root: str
    ) -> ExportResult:
        if not data_root.startswith("gs://"):
            raise ValueError(f"the BigQuery export writes to gs:// only, not {data_root!r}")
        deadline = time.monotonic() + self.timeout_s
        table = self.source_table(source, schema)
        script = export_script(
            params, schema, table, self.source_columns(table, schema), data_root, self.rules
        )
        started = time.perf_counter()
        job = self.start_or_find(params, script, schema)
        remaining = max(1.0, deadline - time.monotonic())
        try:
            rows = list(job.result(timeout=remaining))
        except concurrent.futures.TimeoutError as exc:
            raise ExportTimeout(
                f"BigQuery job {job.job_id} still running after {self.timeout_s:.0f}s; "
                "a redelivered message will wait for it again"
            ) from exc
        counts = [tuple(row[c] for c in export_sql.COUNTS_COLUMNS) for row in rows]
        rejects_uri = layout.join(
            layout.export_run(data_root, params.tenant, params.run_id), "rejects"
        )
        result = ExportResult.from_counts(
            counts,
            rejects_uri=rejects_uri,
            timings={"bigquery_s": round(time.perf_counter() - started, 3)},
        )
        self.remove_stale(params, data_root, result)
        return result

    def start_or_find(self, params: RunParams, script: str, schema: str = "plain") -> Any:
        """Start the run's job, or find the one a previous delivery started.

        A found job that failed is skipped for the next attempt id; a found job that is
        running or done is returned as is (its result is the same counts).
        """
        from google.api_core.exceptions import Conflict
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(
            query_parameters=query_parameters(params, self.rules, schema),
            labels={"simrec-stage": "export", "simrec-run": params.run_id.lower()},
        )
        for attempt in range(MAX_ATTEMPTS):
            jid = job_id(params, attempt)
            try:
                return self.client.query(
                    script, job_config=config, job_id=jid, location=self.location,
                    job_retry=None,  # a failed job id cannot be reused: see start_or_find
                )
            except Conflict:
                job = self.client.get_job(jid, location=self.location)
                if job.state == "DONE" and job.error_result:
                    continue
                return job
        raise RuntimeError(
            f"the export of run {params.run_id} failed {MAX_ATTEMPTS} times; "
            f"see BigQuery jobs {job_id(params)}*"
        )

    def remove_stale(self, params: RunParams, data_root: str, result: ExportResult) -> None:
        """Days of the window without rows, and rejects when there are none, must not keep
        an earlier export's files (``overwrite`` only replaces what is exported).

        One listing of the tenant's export folder finds the day folders that exist.
        """
        fs, root = storage.filesystem(layout.join(data_root, "exports", params.tenant))
        try:
            present = {n.rstrip("/").rsplit("/", 1)[-1] for n in fs.ls(root, detail=False,
                                                                     refresh=True)}
        except FileNotFoundError:
            present = set()
        for day in params.days():
            if day not in result.days and f"dt={day.isoformat()}" in present:
                storage.remove(layout.export_day(data_root, params.tenant, day), recursive=True)
        if result.rows_rejected == 0:
            storage.remove(result.rejects_uri, recursive=True)
