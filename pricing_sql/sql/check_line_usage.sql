-- Usage line items whose quantity is not the usage of their window: the metric's value
-- (summed over groups for grouped prices; the matching group for bulk_with_filters; for a
-- price with a `filter`, its own filtered usage), or 0 where the window had no usage.
-- Tables: line_items, usage (one billing run), price_terms (catalog_tables.py)
-- A threshold invoice's line (id ending `~T<n>`, invoicing/thresholds.py) counts its
-- window's usage only up to a cutoff, rated by this same SQL; it is not checked here.
WITH expected AS (
    SELECT
        l.line_item_id,
        l.quantity,
        coalesce(sum(u.quantity), 0) AS usage
    FROM line_items AS l
    JOIN price_terms AS g USING (price_id)
    LEFT JOIN usage AS u
        ON u.window_id = l.window_id
        AND u.metric_id = g.usage_metric_id
        AND u.grouping = g.grouping
        AND (g.filter_values IS NULL OR u.group_values = g.filter_values)
    WHERE l.billable_metric_id IS NOT NULL AND NOT regexp_matches(l.line_item_id, '~T[0-9]+$')
    GROUP BY l.line_item_id, l.quantity
)
SELECT line_item_id, quantity, usage
FROM expected
WHERE quantity <> usage
ORDER BY line_item_id
