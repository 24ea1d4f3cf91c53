-- Billed revenue of one run by currency and plan, from its line items and adjustments.
-- Tables: line_items, invoice_adjustments
-- An adjustment counts for the plan of the lines it covers (its first line's plan).
-- Amounts are sums of rounded amounts, so they reconcile to the invoices exactly
-- (before prepaid credits, which pay invoices and are not revenue of the run).
WITH adjusted AS (
    SELECT l.currency, l.plan_id, sum(a.amount) AS adjustments
    FROM invoice_adjustments AS a
    JOIN line_items AS l ON l.line_item_id = a.line_item_ids[1]
    GROUP BY ALL
),
lines AS (
    SELECT
        billing_month,
        currency,
        plan_id,
        count(DISTINCT invoice_id) AS invoices,
        count(DISTINCT customer_id) AS customers,
        coalesce(sum(amount) FILTER (WHERE billable_metric_id IS NULL), 0) AS fixed_fees,
        coalesce(sum(amount) FILTER (WHERE billable_metric_id IS NOT NULL), 0) AS usage_fees
    FROM line_items
    GROUP BY ALL
)
SELECT
    l.*,
    CAST(coalesce(a.adjustments, 0) AS DECIMAL(38, 4)) AS adjustments,
    CAST(l.fixed_fees + l.usage_fees + coalesce(a.adjustments, 0) AS DECIMAL(38, 4)) AS billed
FROM lines AS l
LEFT JOIN adjusted AS a USING (currency, plan_id)
ORDER BY l.currency, l.plan_id
