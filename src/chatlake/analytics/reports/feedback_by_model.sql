-- title: Feedback by model
-- Thumbs up and down per model; when a turn was rated twice the last rating wins.
WITH last_rating AS (
  SELECT telemetry_id, rating
  FROM ${feedback}
  -- A turn is rated after it happened: older ratings cannot be of turns in range.
  WHERE event_time >= :since
  QUALIFY row_number() OVER (
    PARTITION BY telemetry_id ORDER BY event_time DESC, ingestion_time DESC
  ) = 1
)
SELECT
  coalesce(t.model, 'unknown') AS model,
  count_if(r.rating > 0) AS thumbs_up,
  count_if(r.rating < 0) AS thumbs_down,
  COUNT(*) AS ratings,
  count_if(r.rating > 0) / COUNT(*) AS thumbs_up_ratio
FROM last_rating AS r
JOIN ${chat_events} AS t ON t.telemetry_id = r.telemetry_id
WHERE t.event_time >= :since AND t.event_time < :until
GROUP BY 1
ORDER BY 1
