-- Each rolled window's hours in the days it starts or ends in off midnight, from those
-- days' hour rollups (pricing_sql/rollup_slots.py): a row counts where one of its hours is
-- in the window's range [lo, hi) of the day's hours, and its partials are taken over that
-- range (rollup_slots.py appends them to the SELECT, in the rollups' column order). A day
-- the window holds whole is read from day rollups or month compactions instead.
-- Tables: rollup_hours   hour rollups (customer_id, request, group_values, partials,
--                        first_hour, hours)
--         split_windows  (split_windows.sql)
CREATE OR REPLACE TEMP VIEW rolled_hour_rows AS
SELECT r.window_no, r.customer_id, r.request, r.group_values
FROM (
    SELECT
        w.window_no,
        h.*,
        greatest(0, least(24, w.start_hour - h.first_hour)) AS lo,
        greatest(0, least(24, w.end_hour - h.first_hour)) AS hi
    FROM rollup_hours AS h
    JOIN split_windows AS w ON h.customer_id = w.customer_id AND w.rolled
) AS r
WHERE r.lo < r.hi
    AND NOT (r.lo = 0 AND r.hi = 24)
    AND r.hours & ((CAST(1 AS BIGINT) << r.hi) - (CAST(1 AS BIGINT) << r.lo)) <> 0
