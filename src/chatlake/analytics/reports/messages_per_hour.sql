-- title: Messages per hour
-- Turns started in each hour, and about how many distinct users sent them.
SELECT
  date_trunc('HOUR', event_time) AS hour,
  COUNT(*) AS messages,
  approx_count_distinct(user_id) AS users
FROM ${chat_events}
WHERE event_time >= :since AND event_time < :until
GROUP BY 1
ORDER BY 1
