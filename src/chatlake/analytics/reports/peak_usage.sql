-- title: Peak usage
-- Turns by weekday (1 = Sunday ... 7 = Saturday) and hour of day, in UTC.
WITH hourly AS (
  -- Counted per hour first: the weekday and hour of day are then worked out
  -- once per hour rather than once per turn.
  SELECT date_trunc('HOUR', event_time) AS hour_start, COUNT(*) AS messages
  FROM ${chat_events}
  WHERE event_time >= :since AND event_time < :until
  GROUP BY 1
)
SELECT
  dayofweek(hour_start) AS weekday,
  hour(hour_start) AS hour,
  CAST(SUM(messages) AS BIGINT) AS messages
FROM hourly
GROUP BY 1, 2
ORDER BY 1, 2
