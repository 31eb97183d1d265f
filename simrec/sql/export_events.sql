-- simrec export: window selection + validation of shopper events, BigQuery dialect.
--
-- Runs as is on BigQuery and on DuckDB after `sqlglot.transpile(read="bigquery",
-- write="duckdb")`. Query parameters: @start_date, @end_date (DATE), @time_zone (STRING,
-- the zone of the run's days), @placeholders (ARRAY<STRING>, lower-case),
-- @duplicate_tolerance_us (INT64). The source_rows CTE is one of source_plain.sql /
-- source_ga4.sql; it yields, per raw row:
--   raw_user_id, raw_sku, raw_action, raw_ts  STRING  the values as read (kept for rejects)
--   action_name           STRING     the action before trimming/lowercasing
--   ts                    TIMESTAMP  NULL when missing or unparseable
--   table_day             DATE       the day of a row without ts (GA4: its day table)
--   ignored               BOOL       an event the mapping does not use (GA4)
--   not_chosen            BOOL       multi-item rule: the event counts other items (GA4)
--   duplicate_in_event    BOOL       the item is listed earlier in the same event (GA4)
--   dedupe                BOOL       repeats within the tolerance count once (GA4)
-- Output: one row per row in the window (row_count 1) with `reason` NULL for a valid
-- event, else the first failing check in simrec.core.events.REJECT_REASONS order; rows
-- outside the window and ignored events are only counted, one row per (dt, reason, event
-- name) with their row_count (simrec.core.events.SKIP_REASONS). `dt` is the event's day
-- in @time_zone. Adapters split on `reason`.
WITH source_rows AS (
${source_rows}
),
normalised AS (
  SELECT
    NULLIF(TRIM(raw_user_id), '') AS user_id,
    NULLIF(TRIM(raw_sku), '') AS sku,
    LOWER(TRIM(action_name)) AS action,
    ts,
    COALESCE(DATE(ts, @time_zone), table_day) AS day,
    ignored,
    not_chosen,
    duplicate_in_event,
    dedupe,
    raw_user_id,
    raw_sku,
    raw_action,
    raw_ts
  FROM source_rows
),
checked AS (
  SELECT
    *,
    CASE
      WHEN day < @start_date THEN 'before_window'
      WHEN day > @end_date THEN 'after_window'
      WHEN ignored THEN 'ignored_event'
      WHEN user_id IS NULL THEN 'missing_user_id'
      WHEN sku IS NULL THEN 'empty_sku'
      WHEN LOWER(user_id) IN UNNEST(@placeholders)
        OR LOWER(sku) IN UNNEST(@placeholders) THEN 'placeholder_id'
      WHEN action IS NULL OR action NOT IN (${actions}) THEN 'unknown_action'
      WHEN ts IS NULL THEN 'bad_timestamp'
      WHEN not_chosen THEN 'item_without_quantity'
      WHEN duplicate_in_event THEN 'duplicate_item'
    END AS first_reason
  FROM normalised
),
classified AS (
  -- A repeat: the same user, event name and item as the previous valid row of that
  -- user, name and item, at most @duplicate_tolerance_us later.
  SELECT
    *,
    CASE
      WHEN first_reason IS NULL AND dedupe
        AND UNIX_MICROS(ts) - LAG(UNIX_MICROS(ts)) OVER (
          PARTITION BY first_reason, user_id, raw_action, sku
          ORDER BY ts, raw_user_id, raw_sku
        ) <= @duplicate_tolerance_us THEN 'duplicate_event'
      ELSE first_reason
    END AS reason
  FROM checked
)
SELECT
  user_id,
  sku,
  action,
  ts,
  day AS dt,
  reason,
  raw_user_id,
  raw_sku,
  raw_action,
  raw_ts,
  1 AS row_count
FROM classified
WHERE reason IS NULL OR reason NOT IN (${skip_reasons})
UNION ALL
SELECT
  NULL AS user_id,
  NULL AS sku,
  NULL AS action,
  NULL AS ts,
  day AS dt,
  reason,
  NULL AS raw_user_id,
  NULL AS raw_sku,
  IF(reason = 'ignored_event', raw_action, NULL) AS raw_action,
  NULL AS raw_ts,
  COUNT(*) AS row_count
FROM classified
WHERE reason IN (${skip_reasons})
GROUP BY day, reason, IF(reason = 'ignored_event', raw_action, NULL)
