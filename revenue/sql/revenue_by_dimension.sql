-- Billed revenue of the run for $month by plan, price, metric and customer, per currency,
-- from revenue_lines (revenue_lines.sql): each adjustment is shared among the lines it
-- covers, so every dimension's rows sum to the run's billed total (the metric dimension's
-- fixed fees are the row with a null key). Before prepaid credits, which pay invoices and
-- are not revenue.
SELECT
    CAST($month AS DATE) AS billing_month,
    currency,
    CASE
        WHEN grouping(plan_id) = 0 THEN 'plan'
        WHEN grouping(price_id) = 0 THEN 'price'
        WHEN grouping(billable_metric_id) = 0 THEN 'metric'
        ELSE 'customer'
    END AS dimension,
    CASE
        WHEN grouping(plan_id) = 0 THEN plan_id
        WHEN grouping(price_id) = 0 THEN price_id
        WHEN grouping(billable_metric_id) = 0 THEN billable_metric_id
        ELSE customer_id
    END AS key,
    CASE WHEN grouping(price_id) = 0 THEN any_value(name) END AS name,
    count(DISTINCT customer_id) AS customers,
    count(DISTINCT invoice_id) AS invoices,
    to_money(coalesce(sum(amount_minor) FILTER (WHERE kind = 'fixed'), 0),
             any_value(currency_exponent)) AS fixed_fees,
    to_money(coalesce(sum(amount_minor) FILTER (WHERE kind = 'usage'), 0),
             any_value(currency_exponent)) AS usage_fees,
    to_money(sum(adjustment_minor), any_value(currency_exponent)) AS adjustments,
    to_money(sum(net_minor), any_value(currency_exponent)) AS billed
FROM revenue_lines
WHERE billing_month = CAST($month AS DATE)
GROUP BY GROUPING SETS ((currency, plan_id), (currency, price_id),
                        (currency, billable_metric_id), (currency, customer_id))
ORDER BY currency, dimension, billed DESC, key NULLS FIRST
