-- title: Sessions
-- Sessions started per day and how many turns they had.
WITH per_session AS (
  SELECT session_id, MIN(event_time) AS started, COUNT(*) AS turns
  FROM ${chat_events}
  WHERE session_id IS NOT NULL AND event_time >= :since AND event_time < :until
  GROUP BY session_id
)
SELECT
  DATE(started) AS day,
  COUNT(*) AS sessions,
  SUM(turns) AS turns,
  AVG(turns) AS avg_turns_per_session,
  MAX(turns) AS max_turns_per_session
FROM per_session
GROUP BY 1
ORDER BY 1
