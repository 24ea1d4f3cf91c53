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
-- (Python's ROUND_HALF_UP; DuckDB's round() on DECIMAL). A prorated price's amount
-- is first multiplied by active_days / period_days; that is done in integers, so
-- the division is exact:
--   u = precise amount in units of 10^-21, d = 10^(21 - exponent) * period_days,
--   minor units = sign(u) * floor((2 |u| active_days + d) / (2 d)).
rounded AS (
    SELECT
        l.*,
        p.quantity,
        p.precise_amount,
        CASE WHEN l.prorate THEN l.active_days ELSE 1 END AS prorated_days,
        CASE WHEN l.prorate THEN l.period_days ELSE 1 END AS prorated_over,
        -- the precise amount as an integer number of 10^-21 (only prorated lines need it)
        CASE WHEN l.prorate THEN
            CAST(trunc(p.precise_amount) AS HUGEINT) * CAST('1000000000000000000000' AS HUGEINT)
            + CAST(CAST((p.precise_amount - trunc(p.precise_amount)) * 10000000000
                        AS DECIMAL(38, 11)) * 100000000000 AS HUGEINT)
        END AS u,
        CASE l.currency_exponent
            WHEN 0 THEN CAST('1000000000000000000000' AS HUGEINT)
            WHEN 2 THEN CAST('10000000000000000000' AS HUGEINT)
            WHEN 3 THEN CAST('1000000000000000000' AS HUGEINT)
            WHEN 4 THEN CAST('100000000000000000' AS HUGEINT)
            ELSE error('unsupported currency exponent ' || l.currency_exponent)
        END AS minor_unit_scale,
        CASE l.currency_exponent
            WHEN 0 THEN CAST(1 AS DECIMAL(5, 4))
            WHEN 2 THEN CAST(0.01 AS DECIMAL(5, 4))
            WHEN 3 THEN CAST(0.001 AS DECIMAL(5, 4))
            WHEN 4 THEN CAST(0.0001 AS DECIMAL(5, 4))
        END AS minor_unit
    FROM priced AS p
    JOIN lines AS l ON l.line_item_id = p.line_item_id
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
            CAST(sign(u) * ((2 * abs(u) * prorated_days + minor_unit_scale * prorated_over)
                            // (2 * minor_unit_scale * prorated_over)) AS DECIMAL(34, 0))
            * minor_unit AS DECIMAL(38, 4))
        -- each branch cast, so the CASE keeps all four decimal places
        WHEN currency_exponent = 0 THEN CAST(round(precise_amount, 0) AS DECIMAL(38, 4))
        WHEN currency_exponent = 2 THEN CAST(round(precise_amount, 2) AS DECIMAL(38, 4))
        WHEN currency_exponent = 3 THEN CAST(round(precise_amount, 3) AS DECIMAL(38, 4))
        WHEN currency_exponent = 4 THEN CAST(round(precise_amount, 4) AS DECIMAL(38, 4))
    END AS amount
FROM rounded
ORDER BY invoice_id, line_item_id
