-- title: Feedback by day
-- Thumbs up and down per day the turn was rated; the last rating of a turn wins.
WITH last_rating AS (
  SELECT telemetry_id, rating, event_time
  FROM ${feedback}
  -- Safe before picking the last rating: one given before :since is never a
  -- last rating that falls in the range.
  WHERE event_time >= :since
  QUALIFY row_number() OVER (
    PARTITION BY telemetry_id ORDER BY event_time DESC, ingestion_time DESC
  ) = 1
)
SELECT
  DATE(event_time) AS day,
  count_if(rating > 0) AS thumbs_up,
  count_if(rating < 0) AS thumbs_down,
  COUNT(*) AS ratings,
  count_if(rating > 0) / COUNT(*) AS thumbs_up_ratio
FROM last_rating
WHERE event_time >= :since AND event_time < :until
GROUP BY 1
ORDER BY 1
