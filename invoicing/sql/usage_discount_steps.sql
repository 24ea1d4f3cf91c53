-- Each usage discount on each usage line it covers, in the order they apply on the line
-- (by adjustment id, then source, as applied_adjustments.sql orders them), with the
-- quantity the line is priced at after it and those before it: the line's quantity
-- less all their units, never below zero (Orb: a usage discount "reduces the billable
-- quantity before applying the pricing function").
-- Tables: adjustment_lines  (adjustment_lines.sql)
--         line_items        (line_items.sql)
-- reduced_id names the line priced again at that quantity (pricing_sql/reduced_rating.py).
SELECT
    a.line_item_id || '#' || CAST(row_number() OVER steps AS VARCHAR) AS reduced_id,
    a.invoice_id,
    a.subscription_id,
    a.source,
    a.adjustment_id,
    a.line_item_id,
    row_number() OVER steps AS step,
    l.window_id,
    l.plan_id,
    l.plan_version,
    l.price_id,
    l.amount AS line_amount,
    CAST(greatest(l.quantity - sum(a.parameter) OVER steps, 0) AS DECIMAL(38, 9)) AS quantity
FROM adjustment_lines AS a
JOIN line_items AS l ON l.invoice_id = a.invoice_id AND l.line_item_id = a.line_item_id
WHERE a.adjustment_type = 'usage_discount'
WINDOW steps AS (PARTITION BY a.invoice_id, a.line_item_id ORDER BY a.adjustment_id, a.source
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
ORDER BY a.invoice_id, a.line_item_id, step
