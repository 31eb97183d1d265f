-- simrec export: window selection + validation of shopper events, BigQuery dialect.
--
-- Runs as is on BigQuery (query parameters @start_date, @end_date: DATE) and on DuckDB
-- after `sqlglot.transpile(read="bigquery", write="duckdb")`. The source_rows CTE is one of
-- source_plain.sql / source_ga4.sql; it yields, per raw row:
--   raw_user_id, raw_sku, raw_action, raw_ts  STRING  the values as read (kept for rejects)
--   action_name                                STRING  action before trimming/lowercasing
--   ts                                         TIMESTAMP  NULL when missing or unparseable
--   undated_in_scope                           BOOL    whether a row WITHOUT a usable ts
--                                                      belongs to this run (it cannot be
--                                                      placed in the window by its ts)
-- Output: one row per row in scope; `reason` is NULL for a valid event, else the first
-- failing check in simrec.core.events.REJECT_REASONS order. `dt` is the UTC day of ts.
-- Adapters split on `reason` (valid rows by `dt`, rejects keep the raw_* values).
WITH source_rows AS (
${source_rows}
),
normalised AS (
  SELECT
    NULLIF(TRIM(raw_user_id), '') AS user_id,
    NULLIF(TRIM(raw_sku), '') AS sku,
    LOWER(TRIM(action_name)) AS action,
    ts,
    undated_in_scope,
    raw_user_id,
    raw_sku,
    raw_action,
    raw_ts
  FROM source_rows
),
in_scope AS (
  SELECT *
  FROM normalised
  WHERE
    (ts IS NULL AND undated_in_scope)
    OR (
      ts >= TIMESTAMP(@start_date)
      AND ts < TIMESTAMP(DATE_ADD(@end_date, INTERVAL 1 DAY))
    )
)
SELECT
  user_id,
  sku,
  action,
  ts,
  DATE(ts) AS dt,
  CASE
    WHEN user_id IS NULL THEN 'missing_user_id'
    WHEN sku IS NULL THEN 'empty_sku'
    WHEN LENGTH(sku) > ${max_sku_length} THEN 'sku_too_long'
    WHEN action IS NULL OR action NOT IN (${actions}) THEN 'unknown_action'
    WHEN ts IS NULL THEN 'bad_timestamp'
  END AS reason,
  raw_user_id,
  raw_sku,
  raw_action,
  raw_ts
FROM in_scope
