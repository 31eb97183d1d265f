  -- GA4 BigQuery export (`events_*` wildcard over daily `events_YYYYMMDD` tables; the
  -- `events_intraday_*` tables never match the suffix range). One row per (event, item);
  -- an event without items gives one row with a NULL sku. Events the mapping does not
  -- name are ignored (counted per name). Day tables follow the property's time zone and
  -- GA4 adds events up to three days late to a day's table, so the table before the
  -- window and three after it are scanned too (their rows outside the window are
  -- counted as such); a row without event_timestamp is placed by its table's day.
  -- Multi-item rule: when any item of an event has a quantity, only the items with one
  -- count (a view_item listing related items names the viewed one by its quantity);
  -- otherwise every item counts. An item listed again in one event counts once.
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
    COALESCE(item.quantity, 0) <= 0
      AND EXISTS (SELECT 1 FROM UNNEST(e.items) AS other WHERE other.quantity > 0)
      AS not_chosen,
    EXISTS (
      SELECT 1
      FROM UNNEST(e.items) AS earlier WITH OFFSET AS earlier_index
      WHERE earlier_index < item_index
        AND TRIM(earlier.item_id) = TRIM(item.item_id)
        AND (
          earlier.quantity > 0
          OR NOT EXISTS (SELECT 1 FROM UNNEST(e.items) AS other WHERE other.quantity > 0)
        )
    ) AS duplicate_in_event,
    TRUE AS dedupe
  FROM ${table} AS e
  LEFT JOIN UNNEST(e.items) AS item WITH OFFSET AS item_index
  WHERE
    _TABLE_SUFFIX BETWEEN FORMAT_DATE('%Y%m%d', DATE_SUB(@start_date, INTERVAL 1 DAY))
      AND FORMAT_DATE('%Y%m%d', DATE_ADD(@end_date, INTERVAL 3 DAY))
