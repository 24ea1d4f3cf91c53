-- Billed revenue of one month by currency and plan, from the month's line items.
-- Tables: line_items
-- Amounts are sums of rounded line amounts, so they reconcile to the invoices exactly.
SELECT
    billing_month,
    currency,
    plan_id,
    count(DISTINCT invoice_id) AS invoices,
    count(DISTINCT customer_id) AS customers,
    sum(amount) FILTER (WHERE billable_metric_id IS NULL) AS fixed_fees,
    sum(amount) FILTER (WHERE billable_metric_id IS NOT NULL) AS usage_fees,
    sum(amount) AS billed
FROM line_items
GROUP BY ALL
ORDER BY currency, plan_id
