-- The UTC days (counted from the epoch) in which some rolled window starts or ends off
-- midnight: only their hour rollups are read, every other day's is read whole.
-- Tables: window_edges  (window_edges.sql)
SELECT DISTINCT first_hour // 24 AS day FROM window_edges ORDER BY day
