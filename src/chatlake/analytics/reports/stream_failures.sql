-- title: Stream failures
-- The latest streams that ended with an error, newest first.
SELECT
  event_time,
  table_name,
  status,
  detail,
  records,
  duration_ms
FROM ${stream_events}
WHERE event = 'failed' AND event_time >= :since AND event_time < :until
ORDER BY event_time DESC
LIMIT 50
