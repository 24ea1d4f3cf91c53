-- Each rolled window's hours in the days it starts or ends in off midnight, from those
-- days' hour rollups (pricing_sql/rollup_slots.py): a row counts where one of its hours is
-- in the window's range [lo, hi) of the day's hours, and its partials are taken over that
-- range (rollup_slots.py appends them to the SELECT, in the rollups' column order). A day
-- the window holds whole is read from day rollups or month compactions instead.
-- Each row is joined on its customer and day to the windows holding part of that day
-- alone (window_edges.sql): joined on the customer, every row met every window of its
-- customer, and the join cost more than the scan.
-- Tables: rollup_hours  hour rollups (customer_id, request, group_values, partials,
--                       first_hour, hours)
--         window_edges  (window_edges.sql)
CREATE OR REPLACE TEMP VIEW rolled_hour_rows AS
SELECT r.window_no, r.customer_id, r.request, r.group_values
FROM (
    SELECT w.window_no, w.lo, w.hi, h.*
    FROM rollup_hours AS h
    JOIN window_edges AS w ON h.customer_id = w.customer_id AND h.first_hour = w.first_hour
) AS r
WHERE r.lo < r.hi
    AND r.hours & ((CAST(1 AS BIGINT) << r.hi) - (CAST(1 AS BIGINT) << r.lo)) <> 0
