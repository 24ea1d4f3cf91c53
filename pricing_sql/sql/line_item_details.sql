-- The breakdown of each line item: one row per usage group and tier with usage,
-- or the line's single row when it has no usage at all. From `rated_tiers`
-- (rate_usage.sql). Amounts are unrounded: only the line is rounded. A replaced
-- quantity's rows (line_items.sql) are its line's, negated, after its own.
SELECT
    t.invoice_id,
    coalesce(r.replaces, t.line_item_id) AS line_item_id,
    t.group_values,
    t.tier_index,
    t.lower AS first_unit,
    t.upper AS last_unit,
    CAST(CASE WHEN r.replaces IS NULL THEN t.tier_quantity ELSE -t.tier_quantity END
         AS DECIMAL(38, 9)) AS quantity,
    t.rate AS unit_amount,
    CAST(CASE WHEN r.replaces IS NULL THEN t.tier_amount ELSE -t.tier_amount END
         AS DECIMAL(38, 21)) AS amount
FROM rated_tiers AS t
LEFT JOIN (SELECT line_item_id, replaces FROM lines WHERE replaces IS NOT NULL) AS r
    ON r.line_item_id = t.line_item_id
WHERE t.tier_quantity <> 0 OR t.tier_amount <> 0 OR (t.quantity = 0 AND t.tier_index = 0)
-- group values in order, a missing value (NULL) after every value, spelled out:
-- engines order NULLs inside lists differently
ORDER BY
    coalesce(r.replaces, t.line_item_id),
    r.replaces IS NOT NULL,
    list_transform(t.group_values, lambda v: coalesce('0' || v, '1')),
    t.discount,
    t.tier_index
