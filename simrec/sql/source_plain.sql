  -- Plain events table (user_id, sku, action, ts and, when the table has them,
  -- order_id / session_id; names injected, an absent one is NULL). Any column type is
  -- read through STRING, so a TIMESTAMP, a DATE ('2024-03-01' = midnight UTC) or a text
  -- timestamp all parse the same way; anything else is a bad timestamp. A row whose ts
  -- cannot be parsed cannot be placed in a window, so every run counts it as a reject.
  SELECT
    CAST(${user_id} AS STRING) AS raw_user_id,
    CAST(${sku} AS STRING) AS raw_sku,
    CAST(${action} AS STRING) AS raw_action,
    CAST(${ts} AS STRING) AS raw_ts,
    CAST(${action} AS STRING) AS action_name,
    SAFE_CAST(TRIM(CAST(${ts} AS STRING)) AS TIMESTAMP) AS ts,
    CAST(NULL AS DATE) AS table_day,
    FALSE AS ignored,
    FALSE AS not_chosen,
    FALSE AS duplicate_in_event,
    CAST(${order_id} AS STRING) AS raw_order_id,
    CAST(${session_id} AS STRING) AS raw_session_id
  FROM ${table}
