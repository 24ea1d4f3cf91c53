-- One invoice line item per charge, from `lines` and `rated_tiers`
-- (rate_usage.sql). A group's amount is the sum of its tiers, raised to the
-- minimum_amount of the tier its quantity reached; a line's is the sum of its groups.
WITH group_amounts AS (
    SELECT
        line_item_id,
        any_value(usage_quantity) AS usage_quantity,
        -- every operand DECIMAL(38, 21): greatest() would otherwise pick a smaller scale
        greatest(
            CAST(sum(tier_amount) AS DECIMAL(38, 21)),
            CAST(coalesce(max(minimum_amount) FILTER (WHERE reached AND quantity > 0), 0)
                 AS DECIMAL(38, 21))
        ) AS amount
    FROM rated_tiers
    GROUP BY line_item_id, group_values
),
priced AS (
    SELECT
        line_item_id,
        CAST(sum(usage_quantity) AS DECIMAL(38, 9)) AS quantity,
        CAST(sum(amount) AS DECIMAL(38, 21)) AS precise_amount
    FROM group_amounts
    GROUP BY line_item_id
),
-- Rounding: the one rounding step of the pipeline. A line's precise amount (exact,
-- DECIMAL(38,21)) is rounded to the currency's minor unit half away from zero
-- (Python's ROUND_HALF_UP; round() on DECIMAL, on DuckDB and Spark alike). A prorated
-- price's amount p is first multiplied by active_days / period_days (D / O); that is
-- done in integers, so the division is exact:
--   minor units = sign(p) * floor((2 |p| 10^exponent D + O) / (2 O))
--               = sign(p) * floor(w / (2 O)),
--   w = i * 2 10^exponent D + floor(f * 2 10^exponent D + O), i = floor(|p|), f = |p| - i
-- (an integer: w is the numerator less its fraction, which does not change the floor).
-- The floor division uses the same exact method as package counts (rate_usage.sql):
-- a floating-point quotient n0, corrected once by the quotient of the exact remainder
-- (n1, within 0.51 of w / (2 O) for every amount DECIMAL(38, 21) holds), and a last
-- exact comparison.
rounded AS (
    SELECT
        l.*,
        p.quantity,
        p.precise_amount,
        CASE WHEN l.prorate THEN l.active_days ELSE 1 END AS prorated_days,
        CASE WHEN l.prorate THEN l.period_days ELSE 1 END AS prorated_over,
        CAST(floor(abs(p.precise_amount)) AS DECIMAL(38, 0)) AS whole,
        CAST(abs(p.precise_amount) - floor(abs(p.precise_amount)) AS DECIMAL(38, 21))
            AS fraction,
        CAST(CASE l.currency_exponent
            WHEN 0 THEN 1
            WHEN 2 THEN 100
            WHEN 3 THEN 1000
            WHEN 4 THEN 10000
            ELSE error('unsupported currency exponent ' || l.currency_exponent)
        END AS DECIMAL(38, 0)) AS minor_units_per_unit,
        CASE l.currency_exponent
            WHEN 0 THEN CAST(1 AS DECIMAL(5, 4))
            WHEN 2 THEN CAST(0.01 AS DECIMAL(5, 4))
            WHEN 3 THEN CAST(0.001 AS DECIMAL(5, 4))
            WHEN 4 THEN CAST(0.0001 AS DECIMAL(5, 4))
        END AS minor_unit
    FROM priced AS p
    JOIN lines AS l ON l.line_item_id = p.line_item_id
),
-- the numerator w and the divisor 2 O of a prorated line (an unprorated one has 0 / 2)
prorated AS (
    SELECT
        *,
        CASE WHEN prorate THEN CAST(
            whole * (2 * prorated_days * minor_units_per_unit)
            + floor(fraction * (2 * prorated_days * minor_units_per_unit) + prorated_over)
            AS DECIMAL(38, 0)) ELSE CAST(0 AS DECIMAL(38, 0)) END AS w,
        CAST(2 * prorated_over AS DECIMAL(38, 0)) AS divisor
    FROM rounded
),
prorated_n0 AS (
    SELECT *, CAST(CAST(w AS DOUBLE) / CAST(divisor AS DOUBLE) AS DECIMAL(38, 0)) AS n0
    FROM prorated
),
prorated_n1 AS (
    SELECT
        *,
        CAST(n0 + CAST(CAST(w - n0 * divisor AS DOUBLE) / CAST(divisor AS DOUBLE)
                       AS DECIMAL(38, 0)) AS DECIMAL(38, 0)) AS n1
    FROM prorated_n0
),
rounded_prorated AS (
    SELECT
        *,
        CAST(CASE WHEN n1 * divisor > w THEN n1 - 1 ELSE n1 END AS DECIMAL(38, 0))
            AS minor_units
    FROM prorated_n1
)
SELECT
    invoice_id,
    invoice_date,
    line_item_id,
    window_id,
    billing_month,
    customer_id,
    subscription_id,
    plan_id,
    plan_version,
    price_id,
    price_name AS name,
    model_type,
    billable_metric_id,
    currency,
    currency_exponent,
    in_advance,
    service_start,
    service_end,
    quantity,
    precise_amount,
    prorated_days,
    prorated_over AS period_days,
    CASE
        WHEN prorate THEN CAST(
            CAST(CASE WHEN precise_amount < 0 THEN -minor_units ELSE minor_units END
                 AS DECIMAL(34, 0))
            * minor_unit AS DECIMAL(38, 4))
        -- each branch cast, so the CASE keeps all four decimal places
        WHEN currency_exponent = 0 THEN CAST(round(precise_amount, 0) AS DECIMAL(38, 4))
        WHEN currency_exponent = 2 THEN CAST(round(precise_amount, 2) AS DECIMAL(38, 4))
        WHEN currency_exponent = 3 THEN CAST(round(precise_amount, 3) AS DECIMAL(38, 4))
        WHEN currency_exponent = 4 THEN CAST(round(precise_amount, 4) AS DECIMAL(38, 4))
    END AS amount
FROM rounded_prorated
ORDER BY invoice_id, line_item_id
