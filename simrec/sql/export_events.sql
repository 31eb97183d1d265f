-- simrec export: window selection + validation of shopper events, BigQuery dialect.
--
-- Runs as is on BigQuery and on DuckDB after `sqlglot.transpile(read="bigquery",
-- write="duckdb")`. Query parameters: @start_date, @end_date (DATE), @time_zone (STRING,
-- GA4 only: the zone of the run's days), @duplicate_tolerance_us (INT64, GA4 only). The
-- placeholder ids are rendered as escaped string literals (a constant list per deployment
-- that DuckDB compares far faster than an array parameter). The source_rows CTE is one of source_plain.sql /
-- source_ga4.sql; it yields, per raw row:
--   raw_user_id, raw_sku, raw_action, raw_ts  STRING  the values as read (kept for rejects)
--   action_name           STRING     the action before trimming/lowercasing
--   ts                    TIMESTAMP  NULL when missing or unparseable
--   table_day             DATE       the day of a row without ts (GA4: its day table)
--   ignored               BOOL       an event the mapping does not use (GA4)
--   not_chosen            BOOL       multi-item rule: the event counts other items (GA4)
--   duplicate_in_event    BOOL       the item is listed earlier in the same event (GA4)
--   raw_order_id, raw_session_id STRING  the order / session of the event, or NULL
-- Output: one row per row read, in one pass over the source: `reason` is NULL for a
-- valid event, else a reason of simrec.core.events.SKIP_REASONS (outside the window, an
-- ignored event: only counted) or the first failing check in REJECT_REASONS order. `dt`
-- is the event's day (GA4: in @time_zone; plain: UTC). Adapters split on `reason`.
WITH source_rows AS (
${source_rows}
),
normalised AS (
  SELECT
    NULLIF(TRIM(raw_user_id), '') AS user_id,
    NULLIF(TRIM(raw_sku), '') AS sku,
    LOWER(TRIM(action_name)) AS action,
    ts,
    COALESCE(${day_of_ts}, table_day) AS day,
    ignored,
    not_chosen,
    duplicate_in_event,
    NULLIF(TRIM(raw_order_id), '') AS order_id,
    NULLIF(TRIM(raw_session_id), '') AS session_id,
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
      WHEN ${is_placeholder} THEN 'placeholder_id'
      WHEN LENGTH(sku) > ${max_sku_length} THEN 'sku_too_long'
      WHEN action IS NULL OR action NOT IN (${actions}) THEN 'unknown_action'
      WHEN ts IS NULL THEN 'bad_timestamp'
      WHEN not_chosen THEN 'item_without_quantity'
      WHEN duplicate_in_event THEN 'duplicate_item'
    END AS first_reason
  FROM normalised
),
classified AS (
  -- GA4 only (the repeat rule of export_repeats.sql): a valid row is a repeat when the
  -- previous valid row of the same user, event name and item is at most
  -- @duplicate_tolerance_us earlier. Plain sources: reason = first_reason.
  SELECT
    *,
    ${repeat_rule} AS reason
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
  order_id,
  session_id
FROM classified
