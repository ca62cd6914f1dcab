-- title: Messages per minute
-- Turns started in each minute.
SELECT
  date_trunc('MINUTE', event_time) AS minute,
  COUNT(*) AS messages
FROM ${chat_events}
WHERE event_time >= :since AND event_time < :until
GROUP BY 1
ORDER BY 1
