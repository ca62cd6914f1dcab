-- title: Tokens by model
-- Input and output tokens per model, with the average per turn.
SELECT
  coalesce(model, 'unknown') AS model,
  COUNT(*) AS turns,
  SUM(input_tokens) AS input_tokens,
  SUM(output_tokens) AS output_tokens,
  SUM(input_tokens) + SUM(output_tokens) AS total_tokens,
  AVG(output_tokens) AS avg_output_tokens
FROM ${chat_events}
WHERE event_time >= :since AND event_time < :until
GROUP BY 1
ORDER BY total_tokens DESC, model
