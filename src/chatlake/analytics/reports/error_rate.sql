-- title: Error rate
-- Share of turns per hour whose status is error.
SELECT
  date_trunc('HOUR', event_time) AS hour,
  COUNT(*) AS turns,
  count_if(status = 'error') AS errors,
  count_if(status = 'error') / COUNT(*) AS error_rate
FROM ${chat_events}
WHERE event_time >= :since AND event_time < :until
GROUP BY 1
ORDER BY 1
