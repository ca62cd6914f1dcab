-- title: Latency
-- Response time and time to first token per hour: p50, p95, p99 (exact).
SELECT
  date_trunc('HOUR', event_time) AS hour,
  COUNT(response_time_ms) AS turns,
  percentile(response_time_ms, 0.5) AS p50_ms,
  percentile(response_time_ms, 0.95) AS p95_ms,
  percentile(response_time_ms, 0.99) AS p99_ms,
  percentile(ttft_ms, 0.5) AS ttft_p50_ms,
  percentile(ttft_ms, 0.95) AS ttft_p95_ms
FROM ${chat_events}
WHERE event_time >= :since AND event_time < :until
GROUP BY 1
ORDER BY 1
