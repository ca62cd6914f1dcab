-- title: Stream activity
-- Stream life-cycle events per hour and kind, from the ingest server's log.
SELECT
  date_trunc('HOUR', event_time) AS hour,
  event,
  COUNT(*) AS events,
  SUM(records) AS records
FROM ${stream_events}
WHERE event_time >= :since AND event_time < :until
GROUP BY 1, 2
ORDER BY 1, 2
