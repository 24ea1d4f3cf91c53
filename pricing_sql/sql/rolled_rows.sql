-- Each rolled window's rollup rows (pricing_sql/rollups.py): its whole UTC days from the
-- month compactions (rolled_month_rows.sql) and the day rollups none of them holds, its
-- other hours from the hour rollups (rolled_hour_rows.sql). Buckets are days counted
-- from the epoch. A view: each metric's query reads only its own request's row groups
-- and columns (kept as a table, every row's every column was read and held: slower).
-- Tables: rollup_days                (customer_id, bucket, request, group_values, partials)
--         rolled_hour_rows           (rolled_hour_rows.sql)
--         rolled_month_rows          (rolled_month_rows.sql)
--         split_windows              (split_windows.sql)
CREATE OR REPLACE TEMP VIEW rolled_rows AS
WITH rolled_windows AS (
    SELECT window_no, customer_id, start_hour, end_hour FROM split_windows WHERE rolled
)
SELECT w.window_no, r.* EXCLUDE (bucket)
FROM rollup_days AS r
JOIN rolled_windows AS w
    ON r.customer_id = w.customer_id
    AND r.bucket * 24 >= w.start_hour
    AND r.bucket * 24 + 24 <= w.end_hour
UNION ALL
SELECT * FROM rolled_hour_rows
UNION ALL
SELECT * FROM rolled_month_rows
