-- The events that count while no amendment was ever made: every event of a committed
-- batch. active_events.sql less its anti join, which costs about 7 s per 100M events
-- even with no amendment to match (bench/close_bench.py); the same rows.
-- Tables: lake_events      event files (all of them, or the days being rated)
--         lake_batches     batches whose events count (visible_batches.sql)
CREATE OR REPLACE TEMP VIEW active_events AS
SELECT e.*
FROM lake_events AS e
JOIN lake_batches AS b ON b.batch_id = e.batch_id
