-- title: Most common questions
-- The 20 most frequent first 100 characters of user messages.
SELECT
  LEFT(user_message, 100) AS question,
  COUNT(*) AS times_asked
FROM ${chat_events}
WHERE user_message IS NOT NULL AND event_time >= :since AND event_time < :until
GROUP BY 1
ORDER BY times_asked DESC, question
LIMIT 20
