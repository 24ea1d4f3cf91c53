-- Net revenue retention of every cohort in $month, from mrr_history (revenue_mrr.sql).
-- A customer's cohort is its first month with MRR (per currency); NRR of a cohort in $month
-- = the cohort's MRR in $month / its MRR in the cohort month (churned customers count 0,
-- expansions count in full), as a ratio rounded half away from zero to 4 decimals.
WITH cohorts AS (
    SELECT customer_id, currency, any_value(currency_exponent) AS currency_exponent,
           min(month) AS cohort_month
    FROM mrr_history
    WHERE mrr_minor <> 0
    GROUP BY customer_id, currency
),
members AS (
    SELECT
        c.*,
        s.mrr_minor AS starting_minor,
        coalesce(n.mrr_minor, 0) AS mrr_minor
    FROM cohorts AS c
    JOIN mrr_history AS s
        ON s.customer_id = c.customer_id AND s.currency = c.currency AND s.month = c.cohort_month
    LEFT JOIN mrr_history AS n
        ON n.customer_id = c.customer_id AND n.currency = c.currency
        AND n.month = CAST($month AS DATE)
    WHERE c.cohort_month <= CAST($month AS DATE)
)
SELECT
    CAST($month AS DATE) AS billing_month,
    cohort_month,
    currency,
    CAST(datediff('month', cohort_month, CAST($month AS DATE)) AS INTEGER) AS months_since_start,
    count(*) AS customers,
    count(*) FILTER (WHERE mrr_minor <> 0) AS retained_customers,
    to_money(sum(starting_minor), any_value(currency_exponent)) AS starting_mrr,
    to_money(sum(mrr_minor), any_value(currency_exponent)) AS mrr,
    CASE WHEN sum(starting_minor) > 0 THEN CAST(
        CAST(div_half_up(sum(mrr_minor) * 10000, sum(starting_minor)) AS DECIMAL(34, 0))
        * CAST(0.0001 AS DECIMAL(5, 4)) AS DECIMAL(38, 4)) END AS nrr
FROM members
GROUP BY cohort_month, currency
ORDER BY currency, cohort_month
