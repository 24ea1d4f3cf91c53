-- Each rolled window's UTC days it starts or ends in off midnight, with its range
-- [lo, hi) of the day's hours: the only days a window holds part of, so the only ones
-- whose hour rollups are read (rolled_edge_days.sql) and joined to it
-- (rolled_hour_rows.sql); a day it holds whole is read from day rollups or compactions.
-- Days and hours are counted from the epoch, as the rollups' buckets are.
-- Tables: split_windows  (split_windows.sql)
CREATE OR REPLACE TEMP TABLE window_edges AS
WITH days AS (
    SELECT window_no, customer_id, start_hour, end_hour, start_hour // 24 AS day
    FROM split_windows WHERE rolled AND start_hour % 24 <> 0
    UNION  -- a window starting and ending in one day has one range in it
    SELECT window_no, customer_id, start_hour, end_hour, end_hour // 24 AS day
    FROM split_windows WHERE rolled AND end_hour % 24 <> 0
)
SELECT
    window_no,
    customer_id,
    day * 24 AS first_hour,
    greatest(0, least(24, start_hour - day * 24)) AS lo,
    greatest(0, least(24, end_hour - day * 24)) AS hi
FROM days
