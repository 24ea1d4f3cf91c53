-- Idempotency keys that count more than once for a customer among the events that
-- count (active_events.sql): ingestion's dedup must make this empty.
SELECT customer_id, idempotency_key, count(*) AS events
FROM active_events
GROUP BY customer_id, idempotency_key
HAVING count(*) > 1
ORDER BY events DESC, customer_id, idempotency_key
LIMIT 20
