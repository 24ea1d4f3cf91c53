-- Which usage windows rating reads from rollups (pricing_sql/rollups.py): those whose
-- bounds fall on UTC hours and that no amendment or replacing backfill touches (those
-- deprecate single events, which a rollup cannot take back out). Hours are counted from
-- the epoch, as the rollups' buckets are.
-- Tables: usage_windows    (window_id, customer_id, period_start, period_end)
--         lake_amendments  amendments and replacing backfills (visible_batches.sql)
CREATE OR REPLACE TEMP TABLE split_windows AS
WITH touched AS (
    SELECT DISTINCT w.window_id
    FROM usage_windows AS w
    JOIN lake_amendments AS a
        ON (a.customer_id IS NULL OR a.customer_id = w.customer_id)
        AND a.timeframe_start < w.period_end
        AND a.timeframe_end > w.period_start
)
SELECT
    w.window_id,
    -- rollup rows are grouped by this number, cheaper to hash than the text id
    row_number() OVER (ORDER BY w.window_id) AS window_no,
    w.customer_id,
    w.period_start,
    w.period_end,
    epoch_us(w.period_start) // 3600000000 AS start_hour,
    epoch_us(w.period_end) // 3600000000 AS end_hour,
    epoch_us(w.period_start) % 3600000000 = 0
        AND epoch_us(w.period_end) % 3600000000 = 0
        AND t.window_id IS NULL AS rolled
FROM usage_windows AS w
LEFT JOIN touched AS t ON t.window_id = w.window_id
