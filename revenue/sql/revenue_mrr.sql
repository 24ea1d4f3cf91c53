-- MRR per customer, currency and month, for every month up to $month, from revenue_lines
-- (revenue_lines.sql). Definitions in docs/revenue.md:
--   fixed MRR of month M: each fixed fee in effect on M's last day (service_start <= last
--     day < service_end), at its full-period rate normalized to a month: the precise fee
--     before proration / the price's cadence in months, times net / amount when adjustments
--     cover the line; rounded half away from zero to the minor unit, per line.
--   usage MRR of month M: the net amount of each usage line whose service period ends in M
--     (its last day), / its cadence in months.
-- A line counts toward month M only if the run that billed it is M's or earlier; a line
-- billed by a later run counts from that run's month (usage) or not before it (fees). So
-- MRR of a month never moves when later months are billed, only when M or earlier is re-rated.
CREATE OR REPLACE TEMP TABLE mrr_history AS
WITH months AS (
    SELECT CAST(unnest(generate_series(
        (SELECT min(least(month_of(service_start), billing_month)) FROM revenue_lines),
        CAST($month AS DATE), INTERVAL 1 MONTH)) AS DATE) AS month
),
fixed AS (
    SELECT
        m.month,
        l.customer_id,
        l.currency,
        l.currency_exponent,
        CASE
            WHEN l.amount_minor = 0 THEN div_half_up(
                l.precise_e21, CAST('1000000000000000000000' AS HUGEINT) // l.units
                               * l.cadence_months)
            ELSE div_half_up(
                l.precise_e21 * l.net_minor * CAST(sign(l.amount_minor) AS HUGEINT),
                CAST('1000000000000000000000' AS HUGEINT) // l.units
                * abs(l.amount_minor) * l.cadence_months)
        END AS fixed_minor,
        CAST(0 AS HUGEINT) AS usage_minor
    FROM months AS m
    JOIN revenue_lines AS l
        ON l.kind = 'fixed'
        AND l.billing_month <= m.month
        AND l.service_start < next_month(m.month)
        AND l.service_end >= next_month(m.month)
),
usage AS (
    SELECT
        greatest(month_of(service_end - 1), billing_month) AS month,
        customer_id,
        currency,
        currency_exponent,
        CAST(0 AS HUGEINT) AS fixed_minor,
        div_half_up(net_minor, cadence_months) AS usage_minor
    FROM revenue_lines
    WHERE kind = 'usage'
)
SELECT
    month,
    customer_id,
    currency,
    any_value(currency_exponent) AS currency_exponent,
    sum(fixed_minor) AS fixed_minor,
    sum(usage_minor) AS usage_minor,
    sum(fixed_minor) + sum(usage_minor) AS mrr_minor
FROM (SELECT * FROM fixed UNION ALL SELECT * FROM usage)
WHERE month <= CAST($month AS DATE)
GROUP BY month, customer_id, currency
HAVING sum(fixed_minor) <> 0 OR sum(usage_minor) <> 0;
