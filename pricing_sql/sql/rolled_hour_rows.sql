-- Each rolled window's hours in the days it starts or ends in off midnight, from those
-- days' hour rollups (pricing_sql/rollup_slots.py): a row counts where one of its hours is
-- in the window's range [lo, hi) of the day's hours, and its partials are taken over that
-- range (rollup_slots.py appends them to the SELECT, in the rollups' column order). A day
-- the window holds whole is read from day rollups or month compactions instead.
-- A window holds part of a day only if it starts or ends in it, so each row is joined on
-- its customer and day to those windows alone (`edges`): joined on the customer, every
-- row met every window of its customer, and the join cost more than the scan.
-- Tables: rollup_hours   hour rollups (customer_id, request, group_values, partials,
--                        first_hour, hours)
--         split_windows  (split_windows.sql)
CREATE OR REPLACE TEMP VIEW rolled_hour_rows AS
WITH days AS (
    SELECT window_no, customer_id, start_hour, end_hour, start_hour // 24 AS day
    FROM split_windows WHERE rolled AND start_hour % 24 <> 0
    UNION  -- a window starting and ending in one day has one range in it
    SELECT window_no, customer_id, start_hour, end_hour, end_hour // 24 AS day
    FROM split_windows WHERE rolled AND end_hour % 24 <> 0
),
edges AS (
    SELECT
        window_no,
        customer_id,
        day * 24 AS first_hour,
        greatest(0, least(24, start_hour - day * 24)) AS lo,
        greatest(0, least(24, end_hour - day * 24)) AS hi
    FROM days
)
SELECT r.window_no, r.customer_id, r.request, r.group_values
FROM (
    SELECT w.window_no, w.lo, w.hi, h.*
    FROM rollup_hours AS h
    JOIN edges AS w ON h.customer_id = w.customer_id AND h.first_hour = w.first_hour
) AS r
WHERE r.lo < r.hi
    AND r.hours & ((CAST(1 AS BIGINT) << r.hi) - (CAST(1 AS BIGINT) << r.lo)) <> 0
