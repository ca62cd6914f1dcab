-- title: Peak usage
-- Turns by weekday (1 = Sunday ... 7 = Saturday) and hour of day, in UTC.
SELECT
  dayofweek(event_time) AS weekday,
  hour(event_time) AS hour,
  COUNT(*) AS messages
FROM ${chat_events}
WHERE event_time >= :since AND event_time < :until
GROUP BY 1, 2
ORDER BY 1, 2
