-- title: Latency
-- Response time and time to first token per hour: p50, p95, p99 (to 0.1 ms).
WITH hourly AS (
  -- One percentile call per column with an array of fractions: each hour's
  -- values are then sorted once instead of once per fraction.
  SELECT
    date_trunc('HOUR', event_time) AS hour,
    COUNT(response_time_ms) AS turns,
    percentile(response_time_ms, array(0.5, 0.95, 0.99)) AS response_ms,
    percentile(ttft_ms, array(0.5, 0.95)) AS ttft_ms
  FROM ${chat_events}
  WHERE event_time >= :since AND event_time < :until
  GROUP BY 1
)
-- Interpolated percentiles carry float noise (4054.3999999999996): a tenth
-- of a millisecond is all a latency means.
SELECT
  hour,
  turns,
  round(response_ms[0], 1) AS p50_ms,
  round(response_ms[1], 1) AS p95_ms,
  round(response_ms[2], 1) AS p99_ms,
  round(ttft_ms[0], 1) AS ttft_p50_ms,
  round(ttft_ms[1], 1) AS ttft_p95_ms
FROM hourly
ORDER BY 1
