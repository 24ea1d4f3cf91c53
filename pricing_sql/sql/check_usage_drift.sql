-- Usage that differs between what a run billed and the event lake now.
-- Tables: billed  the month's usage partition
--         now     the same month's usage computed again (pricing_sql/rating.py)
WITH keyed AS (
    SELECT window_id, metric_id, grouping, group_values, quantity, 'billed' AS side
    FROM billed
    UNION ALL
    SELECT window_id, metric_id, grouping, group_values, quantity, 'now' FROM now
)
SELECT
    window_id,
    metric_id,
    group_values,
    coalesce(sum(quantity) FILTER (WHERE side = 'billed'), 0) AS billed,
    coalesce(sum(quantity) FILTER (WHERE side = 'now'), 0) AS now
FROM keyed
GROUP BY window_id, metric_id, grouping, group_values
HAVING billed <> now
ORDER BY window_id, metric_id, group_values
