-- Billed, recognized and deferred revenue per currency: the row of $month ('actual') and
-- the months after it in which the deferred balance at the end of $month will be
-- recognized ('scheduled'). From revenue_lines (runs up to $month) and
-- recognition_schedule (revenue_recognition_schedule.sql).
--   billed     net line amounts (after adjustments, before prepaid credits) of the month's run
--   recognized amounts recognized in the month
--   deferred   closing balance: everything billed so far - everything recognized so far
WITH billed AS (
    SELECT currency, billing_month AS month, any_value(currency_exponent) AS e,
           sum(net_minor) AS billed_minor, CAST(0 AS HUGEINT) AS recognized_minor
    FROM revenue_lines
    GROUP BY ALL
),
recognized AS (
    SELECT currency, month, any_value(currency_exponent) AS e,
           CAST(0 AS HUGEINT) AS billed_minor, sum(recognized_minor) AS recognized_minor
    FROM recognition_schedule
    GROUP BY ALL
),
this_month AS (
    -- every currency has a row for $month, even with nothing billed or recognized in it
    SELECT DISTINCT currency, CAST($month AS DATE) AS month, currency_exponent AS e,
           CAST(0 AS HUGEINT) AS billed_minor, CAST(0 AS HUGEINT) AS recognized_minor
    FROM revenue_lines
),
flows AS (
    SELECT currency, month, any_value(e) AS e, sum(billed_minor) AS billed_minor,
           sum(recognized_minor) AS recognized_minor
    FROM (SELECT * FROM billed UNION ALL SELECT * FROM recognized
          UNION ALL SELECT * FROM this_month)
    GROUP BY currency, month
),
balances AS (
    SELECT
        *,
        sum(billed_minor - recognized_minor) OVER (PARTITION BY currency ORDER BY month
                                                   ROWS UNBOUNDED PRECEDING) AS deferred_minor
    FROM flows
)
SELECT
    CAST($month AS DATE) AS billing_month,
    currency,
    month,
    CASE WHEN month = CAST($month AS DATE) THEN 'actual' ELSE 'scheduled' END AS status,
    to_money(deferred_minor - billed_minor + recognized_minor, e) AS deferred_opening,
    to_money(billed_minor, e) AS billed,
    to_money(recognized_minor, e) AS recognized,
    to_money(deferred_minor, e) AS deferred
FROM balances
WHERE month >= CAST($month AS DATE)
ORDER BY currency, month
