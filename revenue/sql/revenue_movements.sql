-- MRR movements of $month against the month before, per customer and currency, from
-- mrr_history (revenue_mrr.sql). Every customer whose MRR changed has exactly one row and
-- its amount is the change, so the amounts of a currency sum to its MRR change exactly:
--   new           0 before, not 0 now, never had MRR before
--   reactivation  0 before, not 0 now, had MRR in an earlier month
--   expansion     not 0 before, more now
--   contraction   not 0 before, less now but not 0
--   churn         not 0 before, 0 now
WITH current_month AS (
    SELECT * FROM mrr_history WHERE month = CAST($month AS DATE)
),
previous_month AS (
    SELECT * FROM mrr_history WHERE month = CAST(CAST($month AS DATE) - INTERVAL 1 MONTH AS DATE)
),
earlier AS (
    SELECT DISTINCT customer_id, currency
    FROM mrr_history
    WHERE month < CAST(CAST($month AS DATE) - INTERVAL 1 MONTH AS DATE) AND mrr_minor <> 0
),
pairs AS (
    SELECT
        coalesce(c.customer_id, p.customer_id) AS customer_id,
        coalesce(c.currency, p.currency) AS currency,
        coalesce(c.currency_exponent, p.currency_exponent) AS currency_exponent,
        coalesce(p.mrr_minor, 0) AS before,
        coalesce(c.mrr_minor, 0) AS after
    FROM current_month AS c
    FULL JOIN previous_month AS p ON p.customer_id = c.customer_id AND p.currency = c.currency
)
SELECT
    CAST($month AS DATE) AS billing_month,
    p.customer_id,
    p.currency,
    CASE
        WHEN p.before = 0 AND e.customer_id IS NULL THEN 'new'
        WHEN p.before = 0 THEN 'reactivation'
        WHEN p.after = 0 THEN 'churn'
        WHEN p.after > p.before THEN 'expansion'
        ELSE 'contraction'
    END AS movement,
    to_money(p.before, p.currency_exponent) AS previous_mrr,
    to_money(p.after, p.currency_exponent) AS mrr,
    to_money(p.after - p.before, p.currency_exponent) AS amount
FROM pairs AS p
LEFT JOIN earlier AS e ON e.customer_id = p.customer_id AND e.currency = p.currency
WHERE p.after <> p.before
ORDER BY p.currency, movement, p.customer_id
