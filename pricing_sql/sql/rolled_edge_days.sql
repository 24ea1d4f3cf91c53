-- The UTC days (counted from the epoch) in which some rolled window starts or ends off
-- midnight: only their hour rollups are read, every other day's is read whole.
-- Tables: split_windows  (split_windows.sql)
SELECT start_hour // 24 AS day FROM split_windows WHERE rolled AND start_hour % 24 <> 0
UNION
SELECT end_hour // 24 AS day FROM split_windows WHERE rolled AND end_hour % 24 <> 0
ORDER BY day
