CASE
      WHEN first_reason IS NULL
        AND UNIX_MICROS(ts) - LAG(UNIX_MICROS(ts)) OVER (
          PARTITION BY first_reason, user_id, raw_action, sku
          ORDER BY ts, raw_user_id, raw_sku
        ) <= @duplicate_tolerance_us THEN 'duplicate_event'
      ELSE first_reason
    END
