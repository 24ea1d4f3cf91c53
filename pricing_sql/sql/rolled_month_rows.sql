-- Each rolled window's whole UTC days in the months read from compactions
-- (pricing_sql/rollup_compaction.py): a compaction row counts where one of its days is in
-- the window's range [lo, hi) of the month's days, and its partials are taken over that
-- range (rollup_slots.py appends them to the SELECT, in the rollups' column order).
-- Both bounds are clamped to the month's bits, so that no shift goes out of range.
-- Tables: rollup_months  compactions (customer_id, request, group_values, partials,
--                        first_day, days)
--         split_windows  (split_windows.sql)
CREATE OR REPLACE TEMP VIEW rolled_month_rows AS
SELECT r.window_no, r.customer_id, r.request, r.group_values
FROM (
    SELECT
        w.window_no,
        m.*,
        greatest(0, least(31, (w.start_hour + 23) // 24 - m.first_day)) AS lo,
        greatest(0, least(31, w.end_hour // 24 - m.first_day)) AS hi
    FROM rollup_months AS m
    JOIN split_windows AS w ON m.customer_id = w.customer_id AND w.rolled
) AS r
WHERE r.lo < r.hi
    AND r.days & ((CAST(1 AS BIGINT) << r.hi) - (CAST(1 AS BIGINT) << r.lo)) <> 0
