  -- GA4 BigQuery export (`events_*` wildcard over daily `events_YYYYMMDD` tables).
  -- One row per (event, item); an event without items gives one row with a NULL sku
  -- (rejected as empty_sku). Only the events in GA4_EVENT_ACTIONS count; the
  -- others are skipped (not rejects). Daily tables follow the property's time zone while
  -- the window is in UTC, so one table on each side of the window is scanned too.
  -- A row without event_timestamp is placed by its table's day.
  SELECT
    CAST(e.${user_field} AS STRING) AS raw_user_id,
    CAST(item.item_id AS STRING) AS raw_sku,
    e.event_name AS raw_action,
    CAST(e.event_timestamp AS STRING) AS raw_ts,
    CASE e.event_name
${event_cases}
    END AS action_name,
    TIMESTAMP_MICROS(e.event_timestamp) AS ts,
    _TABLE_SUFFIX BETWEEN FORMAT_DATE('%Y%m%d', @start_date)
      AND FORMAT_DATE('%Y%m%d', @end_date) AS undated_in_scope
  FROM ${table} AS e
  LEFT JOIN UNNEST(e.items) AS item
  WHERE
    _TABLE_SUFFIX BETWEEN FORMAT_DATE('%Y%m%d', DATE_SUB(@start_date, INTERVAL 1 DAY))
      AND FORMAT_DATE('%Y%m%d', DATE_ADD(@end_date, INTERVAL 1 DAY))
    AND e.event_name IN (${event_names})
