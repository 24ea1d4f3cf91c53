-- The events each subscription is billed for in one billing month.
-- Tables: active_events   the events that count (active_events.sql), over the day
--                         partitions that can hold the month's events (its UTC days
--                         plus one day either side, for time zones)
--         billing_windows (subscription_id, customer_id, period_start, period_end)
-- A subscription's window is its customer's local month cut to the subscription's
-- dates, as half-open UTC instants [period_start, period_end).
CREATE OR REPLACE TEMP TABLE period_events AS
SELECT
    w.subscription_id,
    e.customer_id,
    e."timestamp",
    e.event_name,
    CAST(e.properties AS JSON) AS properties
FROM active_events AS e
JOIN billing_windows AS w
    ON e.customer_id = w.customer_id
    AND e."timestamp" >= w.period_start
    AND e."timestamp" < w.period_end
