-- simrec export: the counts of the export query's result (table ${result}), the
-- manifest's only input: per day, reason and (for ignored events) event name.
SELECT
  dt,
  reason,
  IF(reason = 'ignored_event', raw_action, NULL) AS event_name,
  COUNT(*) AS row_count
FROM ${result}
GROUP BY dt, reason, event_name
ORDER BY dt, reason, event_name
