-- title: Error types
-- Failed turns by error type, most frequent first.
SELECT
  coalesce(error_type, 'unknown') AS error_type,
  COUNT(*) AS errors,
  MAX(event_time) AS last_seen
FROM ${chat_events}
WHERE status = 'error' AND event_time >= :since AND event_time < :until
GROUP BY 1
ORDER BY errors DESC, error_type
