  -- GA4 BigQuery export (`events_*` wildcard over daily `events_YYYYMMDD` tables; the
  -- `events_intraday_*` tables never match the suffix range). One row per (event, item);
  -- an event without items gives one row with a NULL sku. Events the mapping does not
  -- name are ignored (counted per name). Day tables follow the property's time zone and
  -- GA4 adds events up to three days late to a day's table, so the table before the
  -- window and three after it are scanned too (their rows outside the window are
  -- counted as such); a row without event_timestamp is placed by its table's day.
  -- Multi-item rule: when any item of an event has a quantity, only the items with one
  -- count (a view_item listing related items names the viewed one by its quantity);
  -- otherwise every item counts. An item listed again in one event counts once. The
  -- export has no event id: an event is its (user, name, timestamp), so copies sent with
  -- the very same microsecond count as one event. The order is the event's
  -- ecommerce.transaction_id, the session its ga_session_id event parameter (an INT64
  -- in value.int_value, unique per user); NULL where the export lacks them.
  SELECT
    raw_user_id,
    raw_sku,
    raw_action,
    raw_ts,
    action_name,
    ts,
    table_day,
    ignored,
    COALESCE(quantity, 0) <= 0
      AND LOGICAL_OR(COALESCE(quantity, 0) > 0) OVER (
        PARTITION BY raw_user_id, raw_action, raw_ts
      ) AS not_chosen,
    ROW_NUMBER() OVER (
      PARTITION BY raw_user_id, raw_action, raw_ts, TRIM(raw_sku), COALESCE(quantity, 0) > 0
      ORDER BY item_index
    ) > 1 AS duplicate_in_event,
    raw_order_id,
    raw_session_id
  FROM (
    SELECT
      CAST(${user_key} AS STRING) AS raw_user_id,
      CAST(item.item_id AS STRING) AS raw_sku,
      e.event_name AS raw_action,
      CAST(e.event_timestamp AS STRING) AS raw_ts,
      CASE e.event_name
${event_cases}
      END AS action_name,
      TIMESTAMP_MICROS(e.event_timestamp) AS ts,
      PARSE_DATE('%Y%m%d', _TABLE_SUFFIX) AS table_day,
      e.event_name IS NULL OR e.event_name NOT IN (${event_names}) AS ignored,
      item.quantity AS quantity,
      item_index,
      CAST(${order_id} AS STRING) AS raw_order_id,
      CAST(${session_id} AS STRING) AS raw_session_id
    FROM ${table} AS e
    LEFT JOIN UNNEST(e.items) AS item WITH OFFSET AS item_index
    WHERE
      _TABLE_SUFFIX BETWEEN FORMAT_DATE('%Y%m%d', DATE_SUB(@start_date, INTERVAL 1 DAY))
        AND FORMAT_DATE('%Y%m%d', DATE_ADD(@end_date, INTERVAL 3 DAY))
  ) AS expanded
