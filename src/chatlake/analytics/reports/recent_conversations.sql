-- title: Recent conversations
-- The latest turns, newest first, with the start of each message.
SELECT
  ingestion_time,
  event_time,
  session_id,
  user_id,
  model,
  LEFT(user_message, 200) AS user_message,
  LEFT(assistant_message, 200) AS assistant_message,
  response_time_ms,
  status
FROM ${chat_events}
WHERE event_time >= :since AND event_time < :until
ORDER BY ingestion_time DESC, telemetry_id
LIMIT 100
