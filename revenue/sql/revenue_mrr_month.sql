-- The mrr table's rows for $month: one per customer and currency with MRR, from
-- mrr_history (revenue_mrr.sql). ARR = 12 x MRR. The cohort is the customer's first
-- month with MRR in that currency.
WITH cohorts AS (
    SELECT customer_id, currency, min(month) AS cohort_month
    FROM mrr_history
    WHERE mrr_minor <> 0
    GROUP BY ALL
)
SELECT
    h.month AS billing_month,
    h.customer_id,
    h.currency,
    to_money(h.fixed_minor, h.currency_exponent) AS fixed_mrr,
    to_money(h.usage_minor, h.currency_exponent) AS usage_mrr,
    to_money(h.mrr_minor, h.currency_exponent) AS mrr,
    to_money(12 * h.mrr_minor, h.currency_exponent) AS arr,
    c.cohort_month
FROM mrr_history AS h
LEFT JOIN cohorts AS c USING (customer_id, currency)
WHERE h.month = CAST($month AS DATE)
ORDER BY h.currency, h.customer_id
