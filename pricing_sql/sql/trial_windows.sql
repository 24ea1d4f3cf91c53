-- The usage windows of a metric trial (metric_trial.py): one per customer of the trial
-- events, spanning all of that customer's events, so that usage_events.sql puts every
-- trial event in a window as a billing run puts each event in its subscription's.
-- Tables: active_events   the trial events: an empty events table, or a sample of the lake
CREATE OR REPLACE TEMP TABLE usage_windows AS
SELECT
    customer_id AS window_id,
    customer_id,
    min("timestamp") AS period_start,
    max("timestamp") + INTERVAL 1 MICROSECOND AS period_end
FROM active_events
GROUP BY customer_id
