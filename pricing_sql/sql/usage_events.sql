-- The events each usage window is billed for.
-- Tables: active_events   the events that count (active_events.sql), over the day
--                         partitions the windows reach
--         usage_windows   (window_id, customer_id, period_start, period_end)
-- A window is a subscription's service period for a usage price (its billing cycle cut
-- to the subscription's dates and phase), as half-open UTC instants
-- [period_start, period_end) from the customer's local midnights.
-- properties stays the JSON text it was ingested as (ingestion checked it is JSON): the
-- metric queries read keys from it with ->> (Spark: get_json_object), on either engine.
CREATE OR REPLACE TEMP TABLE period_events AS
SELECT
    w.window_id,
    e.customer_id,
    e."timestamp",
    e.event_name,
    e.properties
FROM active_events AS e
JOIN usage_windows AS w
    ON e.customer_id = w.customer_id
    AND e."timestamp" >= w.period_start
    AND e."timestamp" < w.period_end
