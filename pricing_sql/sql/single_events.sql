-- The events of customers left out of a billing run, each as a window of its own
-- (window_id: its idempotency key), to tell which of them make a metric fail
-- (pricing_sql/isolation.py); and those of them to try next.
-- Tables: active_events, usage_windows  as for usage_events.sql
--         subset_customers  (customer_id) the customers whose events to look at
--         subset_keys       (idempotency_key) the events to try
-- An event in two windows of its customer (two subscriptions) is one row.
CREATE OR REPLACE TEMP VIEW customer_events AS
SELECT DISTINCT
    e.idempotency_key AS window_id,
    e.customer_id,
    e."timestamp",
    e.event_name,
    e.properties
FROM active_events AS e
JOIN usage_windows AS w
    ON e.customer_id = w.customer_id
    AND e."timestamp" >= w.period_start
    AND e."timestamp" < w.period_end
WHERE e.customer_id IN (SELECT customer_id FROM subset_customers);

CREATE OR REPLACE TEMP VIEW single_events AS
SELECT *
FROM customer_events
WHERE window_id IN (SELECT idempotency_key FROM subset_keys)
