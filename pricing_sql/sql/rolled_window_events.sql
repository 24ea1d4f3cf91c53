-- The events of the rolled windows that the requests read from events still need
-- (pricing_sql/rollups.py): ``unrolled_events`` is active_events less those no such
-- request's WHERE keeps.
-- Tables: unrolled_events  (active_events.sql's columns)
--         split_windows    (split_windows.sql)
CREATE OR REPLACE TEMP TABLE rolled_window_events AS
SELECT
    w.window_id,
    e.customer_id,
    e."timestamp",
    e.event_name,
    e.properties
FROM unrolled_events AS e
JOIN split_windows AS w
    ON w.rolled
    AND e.customer_id = w.customer_id
    AND e."timestamp" >= w.period_start
    AND e."timestamp" < w.period_end
