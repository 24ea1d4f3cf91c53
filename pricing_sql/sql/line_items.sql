-- One invoice line item per charge, from `lines` and `rated_tiers`
-- (rate_usage.sql). A group's amount is the sum of its tiers (negative only for an
-- allowance's credit or a spend discount), raised to the minimum_amount of the tier its
-- quantity reached, if any, and capped at the price's group_maximum; a line's is the sum
-- of its groups, and of its metered minimums' shortfalls.
-- A composite price's line (percent, minimum_composite) is charged on its components'
-- rounded amounts, last.
WITH group_amounts AS (
    SELECT
        line_item_id,
        group_values,
        any_value(usage_quantity) AS usage_quantity,
        any_value(quantity) AS billed_quantity,
        -- every operand DECIMAL(38, 21): greatest() would otherwise pick a smaller scale
        CASE
            WHEN max(minimum_amount) FILTER (WHERE reached AND quantity > 0) IS NULL
                THEN CAST(sum(tier_amount) AS DECIMAL(38, 21))
            ELSE greatest(
                CAST(sum(tier_amount) AS DECIMAL(38, 21)),
                CAST(max(minimum_amount) FILTER (WHERE reached AND quantity > 0)
                     AS DECIMAL(38, 21)))
        END AS amount
    FROM rated_tiers
    GROUP BY line_item_id, group_values, discount
),
capped AS (
    SELECT
        g.line_item_id,
        g.usage_quantity,
        CASE
            WHEN m.group_maximum IS NULL THEN g.amount
            ELSE least(g.amount, CAST(m.group_maximum AS DECIMAL(38, 21)))
        END AS amount,
        m.group_minimum,
        m.active_days,
        m.period_days,
        m.metered_minimum,
        g.group_values,
        g.billed_quantity
    FROM group_amounts AS g
    LEFT JOIN (
        SELECT line_item_id, group_maximum, prorated_group_minimum AS group_minimum,
            active_days, period_days, metered_minimum
        FROM lines
        WHERE group_maximum IS NOT NULL OR prorated_group_minimum IS NOT NULL
            OR metered_minimum IS NOT NULL
    ) AS m ON m.line_item_id = g.line_item_id
),
-- A prorated group minimum (grouped_with_prorated_minimum): each group with usage pays at
-- least the minimum M prorated by day, M D / O, and its usage unprorated. That is kept
-- exact as the line's numerator over O, scaled_amount = sum of greatest(amount O, M D),
-- which the rounding below divides by O (as a prorated amount with D = 1). The precise
-- amount is, as for every prorated line, the amount before proration.
minimums AS (
    SELECT
        line_item_id,
        usage_quantity,
        CASE
            WHEN group_minimum IS NULL OR usage_quantity <= 0 THEN amount
            ELSE greatest(amount, CAST(group_minimum AS DECIMAL(38, 21)))
        END AS amount,
        CASE
            WHEN group_minimum IS NULL THEN NULL
            WHEN usage_quantity <= 0 THEN CAST(amount * period_days AS DECIMAL(38, 21))
            ELSE greatest(CAST(amount * period_days AS DECIMAL(38, 21)),
                          CAST(group_minimum * active_days AS DECIMAL(38, 21)))
        END AS scaled_amount
    FROM capped
),
-- A metered minimum (grouped_with_metered_minimum): the groups of each value of the
-- grouping key (the first group value) pay at least the minimum unit amount times their
-- quantity together; what they fall short of it is added to the line.
metered_minimums AS (
    SELECT
        line_item_id,
        CAST(0 AS DECIMAL(38, 9)) AS usage_quantity,
        CAST(greatest(
            CAST(metered_minimum * sum(billed_quantity) AS DECIMAL(38, 21)) - sum(amount),
            CAST(0 AS DECIMAL(38, 21))) AS DECIMAL(38, 21)) AS amount,
        CAST(NULL AS DECIMAL(38, 21)) AS scaled_amount
    FROM capped
    WHERE metered_minimum IS NOT NULL
    -- a line with no usage has one group of no values (Spark raises on indexing it)
    GROUP BY line_item_id, metered_minimum,
        CASE WHEN array_length(group_values) > 0 THEN group_values[1] END
),
-- A replaced quantity's line (the quantity an in-advance fixed fee was invoiced at,
-- billing/quantities.py) is subtracted from the line it replaces: that line charges the
-- difference, price(new) - price(old), and is prorated and rounded once.
priced AS (
    SELECT
        coalesce(r.replaces, t.line_item_id) AS line_item_id,
        CAST(sum(CASE WHEN r.replaces IS NULL THEN t.usage_quantity ELSE -t.usage_quantity END)
             AS DECIMAL(38, 9)) AS quantity,
        CAST(sum(CASE WHEN r.replaces IS NULL THEN t.amount ELSE -t.amount END)
             AS DECIMAL(38, 21)) AS precise_amount,
        CAST(sum(t.scaled_amount) AS DECIMAL(38, 21)) AS scaled_amount
    FROM (
        SELECT line_item_id, usage_quantity, amount, scaled_amount FROM minimums
        UNION ALL
        SELECT line_item_id, usage_quantity, amount, scaled_amount FROM metered_minimums
    ) AS t
    LEFT JOIN (SELECT line_item_id, replaces FROM lines WHERE replaces IS NOT NULL) AS r
        ON r.line_item_id = t.line_item_id
    GROUP BY coalesce(r.replaces, t.line_item_id)
),
-- A composite line is first rated as its minimum (0 without one), so that the minimum is
-- rounded, and prorated, exactly as any amount is; the composite is applied at the end.
composite_minimums AS (
    SELECT
        p.line_item_id,
        p.quantity,
        p.scaled_amount,
        CASE
            WHEN m.line_item_id IS NULL THEN p.precise_amount
            ELSE CAST(coalesce(m.composite_minimum, 0) AS DECIMAL(38, 21))
        END AS precise_amount
    FROM priced AS p
    LEFT JOIN (
        SELECT line_item_id, composite_minimum FROM lines WHERE composite IS NOT NULL
    ) AS m ON m.line_item_id = p.line_item_id
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
        -- D of the division below: 1 where the amount is already a numerator over O
        CASE WHEN l.prorate AND p.scaled_amount IS NULL THEN l.active_days ELSE 1 END
            AS numerator_days,
        CAST(floor(abs(coalesce(p.scaled_amount, p.precise_amount))) AS DECIMAL(38, 0))
            AS whole,
        CAST(abs(coalesce(p.scaled_amount, p.precise_amount))
             - floor(abs(coalesce(p.scaled_amount, p.precise_amount))) AS DECIMAL(38, 21))
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
    FROM composite_minimums AS p
    JOIN lines AS l ON l.line_item_id = p.line_item_id
),
-- the numerator w and the divisor 2 O of a prorated line (an unprorated one has 0 / 2)
prorated AS (
    SELECT
        *,
        CASE WHEN prorate THEN CAST(
            whole * (2 * numerator_days * minor_units_per_unit)
            + floor(fraction * (2 * numerator_days * minor_units_per_unit) + prorated_over)
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
),
rated_lines AS (
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
        invoice_grouping_key,
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
),
-- Composite prices, on the sum of their components' rounded amounts on the same invoice
-- and subscription: percent, the percent of it, at least the minimum (rounded and
-- prorated above) and at most the maximum; minimum_composite, what the components fall
-- short of the minimum. Rounding is monotone, so bounding the rounded percent by the
-- rounded bounds is rounding the bounded percent.
composite_bases AS (
    SELECT
        k.line_item_id,
        l.composite,
        CAST(l.composite_rate * coalesce(sum(c.amount), 0) AS DECIMAL(38, 21)) AS share,
        CAST(coalesce(sum(c.amount), 0) AS DECIMAL(38, 4)) AS base,
        k.amount AS minimum,
        CAST(l.composite_maximum AS DECIMAL(38, 21)) AS maximum,
        k.currency_exponent
    FROM rated_lines AS k
    JOIN lines AS l ON l.line_item_id = k.line_item_id AND l.composite IS NOT NULL
    LEFT JOIN rated_lines AS c
        ON c.invoice_id = k.invoice_id
        AND c.subscription_id = k.subscription_id
        AND list_contains(l.components, c.price_id)
    GROUP BY k.line_item_id, l.composite, l.composite_rate, l.composite_maximum, k.amount,
        k.currency_exponent
),
composite_rounded AS (
    SELECT
        *,
        CASE currency_exponent
            WHEN 0 THEN CAST(round(share, 0) AS DECIMAL(38, 4))
            WHEN 2 THEN CAST(round(share, 2) AS DECIMAL(38, 4))
            WHEN 3 THEN CAST(round(share, 3) AS DECIMAL(38, 4))
            WHEN 4 THEN CAST(round(share, 4) AS DECIMAL(38, 4))
        END AS rounded_share,
        CASE currency_exponent
            WHEN 0 THEN CAST(round(maximum, 0) AS DECIMAL(38, 4))
            WHEN 2 THEN CAST(round(maximum, 2) AS DECIMAL(38, 4))
            WHEN 3 THEN CAST(round(maximum, 3) AS DECIMAL(38, 4))
            WHEN 4 THEN CAST(round(maximum, 4) AS DECIMAL(38, 4))
        END AS rounded_maximum
    FROM composite_bases
),
composite_amounts AS (
    SELECT
        line_item_id,
        CASE composite
            WHEN 'percent' THEN least(
                greatest(share, CAST(minimum AS DECIMAL(38, 21))),
                coalesce(maximum, greatest(share, CAST(minimum AS DECIMAL(38, 21)))))
            ELSE CAST(greatest(minimum - base, 0) AS DECIMAL(38, 21))
        END AS precise_amount,
        CASE composite
            WHEN 'percent' THEN least(greatest(rounded_share, minimum),
                                      coalesce(rounded_maximum, greatest(rounded_share, minimum)))
            ELSE CAST(greatest(minimum - base, 0) AS DECIMAL(38, 4))
        END AS amount
    FROM composite_rounded
)
SELECT
    r.invoice_id,
    r.invoice_date,
    r.line_item_id,
    r.window_id,
    r.billing_month,
    r.customer_id,
    r.subscription_id,
    r.plan_id,
    r.plan_version,
    r.price_id,
    r.name,
    r.model_type,
    r.billable_metric_id,
    r.currency,
    r.currency_exponent,
    r.in_advance,
    r.service_start,
    r.service_end,
    r.quantity,
    coalesce(a.precise_amount, r.precise_amount) AS precise_amount,
    r.prorated_days,
    r.period_days,
    coalesce(a.amount, r.amount) AS amount,
    r.invoice_grouping_key
FROM rated_lines AS r
LEFT JOIN composite_amounts AS a ON a.line_item_id = r.line_item_id
ORDER BY r.invoice_id, r.line_item_id
