-- Usage of each metric in the run for $month: the ungrouped metric quantity summed over the
-- run's usage windows (tables usage and line_items, which names each window's customer).
WITH customers AS (
    SELECT DISTINCT window_id, customer_id FROM line_items
)
SELECT
    CAST($month AS DATE) AS billing_month,
    u.metric_id,
    count(DISTINCT c.customer_id) AS customers,
    count(*) AS windows,
    CAST(sum(u.quantity) AS DECIMAL(38, 9)) AS quantity
FROM usage AS u
LEFT JOIN customers AS c USING (window_id)
WHERE len(u.grouping) = 0
GROUP BY u.metric_id
ORDER BY u.metric_id
