-- Price every (subscription, price) of a billing month: one invoice line item each.
-- Tables: subscription_prices  one row per subscription price active in the month
--         price_terms          each price's program: scheme, grouping, package, allocations
--         price_tiers          each price's tiers (lower, upper], rate, flat and minimum amounts
--         price_cells          matrix cells: dimension values and their rate
--         usage                (subscription_id, metric_id, grouping, group_values, quantity)
-- The normal form and each model's mapping onto it: billing/catalog/prices.py and
-- docs/pricing.md. Missing usage is quantity 0, so every price on the plan gets a line.
WITH lines AS (
    SELECT sp.*, pt.scheme, pt.grouping, pt.package_size, pt.allocation,
           pt.matrix_allocation, pt.prorate
    FROM subscription_prices AS sp
    JOIN price_terms AS pt ON pt.price_id = sp.price_id
),
-- One row per usage group: a fixed fee's own quantity, or each group of the usage
-- grouped the way the price needs (a single empty group for ungrouped prices).
groups AS (
    SELECT
        l.subscription_id,
        l.price_id,
        coalesce(u.group_values, CAST([] AS VARCHAR[])) AS group_values,
        coalesce(l.fixed_quantity, u.quantity, 0) AS usage_quantity
    FROM lines AS l
    LEFT JOIN usage AS u
        ON l.fixed_quantity IS NULL
        AND u.subscription_id = l.subscription_id
        AND u.metric_id = l.billable_metric_id
        AND u.grouping = l.grouping
),
-- Matrix cells: a cell's rate replaces the default rate for its group. A matrix
-- allocation is drawn down cell by cell in the order the cells are listed, then
-- over default-priced groups in order of their values.
cells AS (
    SELECT
        g.*,
        c.cell_index,
        c.rate AS cell_rate,
        l.matrix_allocation,
        coalesce(sum(g.usage_quantity) OVER (
            PARTITION BY g.subscription_id, g.price_id
            ORDER BY c.cell_index NULLS LAST, g.group_values
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ), 0) AS used_before
    FROM groups AS g
    JOIN lines AS l ON l.subscription_id = g.subscription_id AND l.price_id = g.price_id
    LEFT JOIN price_cells AS c
        ON c.price_id = g.price_id AND c.dimension_values = g.group_values
),
-- The quantity a group is billed for: less its allocation, then in whole packages.
-- Package counts use exact integer division (DuckDB's DECIMAL division is floating point).
billed AS (
    SELECT
        c.subscription_id, c.price_id, c.group_values, c.usage_quantity, c.cell_rate,
        CASE
            WHEN l.package_size IS NULL THEN allocated
            ELSE CAST(
                (CAST(greatest(allocated, 0) * 1000000000 AS HUGEINT)
                 + CAST(l.package_size * 1000000000 AS HUGEINT) - 1)
                // CAST(l.package_size * 1000000000 AS HUGEINT) AS DECIMAL(38, 9))
        END AS quantity
    FROM (
        SELECT
            *,
            CASE
                WHEN matrix_allocation IS NOT NULL THEN greatest(
                    usage_quantity - greatest(matrix_allocation - used_before, 0), 0)
                ELSE usage_quantity
            END AS after_matrix_allocation
        FROM cells
    ) AS c
    JOIN lines AS l ON l.subscription_id = c.subscription_id AND l.price_id = c.price_id
    CROSS JOIN LATERAL (
        SELECT CASE
            WHEN l.allocation IS NULL THEN c.after_matrix_allocation
            ELSE greatest(c.after_matrix_allocation - l.allocation, 0)
        END AS allocated
    )
),
tiers AS (
    SELECT
        b.*,
        l.scheme,
        t.tier_index,
        t.lower,
        t.upper,
        t.minimum_amount,
        coalesce(b.cell_rate, t.rate) AS rate,
        t.flat_amount,
        -- the tier the whole quantity falls in
        (t.lower IS NULL OR b.quantity > t.lower) AND (t.upper IS NULL OR b.quantity <= t.upper)
            AS reached,
        -- the units of the quantity inside this tier
        greatest(least(b.quantity, coalesce(t.upper, b.quantity)) - coalesce(t.lower, 0), 0)
            AS units_in_tier
    FROM billed AS b
    JOIN lines AS l ON l.subscription_id = b.subscription_id AND l.price_id = b.price_id
    JOIN price_tiers AS t ON t.price_id = b.price_id
),
tier_amounts AS (
    SELECT
        *,
        CASE scheme
            WHEN 'graduated' THEN units_in_tier
            ELSE CASE WHEN reached THEN quantity ELSE 0 END
        END AS tier_quantity,
        CASE scheme
            WHEN 'graduated' THEN units_in_tier * rate
            WHEN 'volume' THEN CASE WHEN reached THEN quantity * rate ELSE 0 END
            WHEN 'threshold' THEN CAST(CASE WHEN reached THEN flat_amount ELSE 0 END
                                       AS DECIMAL(38, 21))
        END AS tier_amount
    FROM tiers
),
group_amounts AS (
    SELECT
        subscription_id,
        price_id,
        group_values,
        any_value(usage_quantity) AS usage_quantity,
        -- a tier minimum applies once usage reaches that tier
        -- (every operand DECIMAL(38, 21): greatest() would otherwise pick a smaller scale)
        greatest(
            CAST(sum(tier_amount) AS DECIMAL(38, 21)),
            CAST(coalesce(max(minimum_amount) FILTER (WHERE reached AND quantity > 0), 0)
                 AS DECIMAL(38, 21))
        ) AS amount,
        list({
            'group_values': group_values,
            'tier_index': tier_index,
            'first_unit': lower,
            'last_unit': upper,
            'quantity': tier_quantity,
            'unit_amount': rate,
            'amount': tier_amount
        } ORDER BY tier_index) AS sub_lines
    FROM tier_amounts
    GROUP BY subscription_id, price_id, group_values
),
priced AS (
    SELECT
        subscription_id,
        price_id,
        sum(usage_quantity) AS quantity,
        CAST(sum(amount) AS DECIMAL(38, 21)) AS precise_amount,
        flatten(list(sub_lines ORDER BY group_values)) AS sub_line_items
    FROM group_amounts
    GROUP BY subscription_id, price_id
),
-- Rounding: the one rounding step of the pipeline. The line's amount is its precise
-- amount (exact, DECIMAL(38,21)), times active_days / period_days for prorated prices,
-- rounded to the currency's minor unit half away from zero (Python's ROUND_HALF_UP).
-- It is done in integers so that the proration division is exact:
--   u = precise amount in units of 10^-21, d = 10^(21 - exponent) * period_days,
--   minor units = sign(u) * floor((2 |u| active_days + d) / (2 d)).
rounded AS (
    SELECT
        *,
        CASE WHEN l.prorate THEN l.active_days ELSE 1 END AS prorate_numerator,
        CASE WHEN l.prorate THEN l.period_days ELSE 1 END AS prorate_denominator,
        CAST(trunc(p.precise_amount) AS HUGEINT) * CAST('1000000000000000000000' AS HUGEINT)
            + CAST(CAST((p.precise_amount - trunc(p.precise_amount)) * 10000000000
                        AS DECIMAL(38, 11)) * 100000000000 AS HUGEINT) AS u,
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
    JOIN lines AS l USING (subscription_id, price_id)
)
SELECT
    customer_id || '-' || strftime(billing_month, '%Y%m') || '-' || currency AS invoice_id,
    subscription_id || ':' || price_id AS line_item_id,
    billing_month,
    customer_id,
    subscription_id,
    plan_id,
    price_id,
    price_name AS name,
    model_type,
    billable_metric_id,
    currency,
    currency_exponent,
    invoice_period_start,
    invoice_period_end,
    period_start,
    period_end,
    CAST(quantity AS DECIMAL(38, 9)) AS quantity,
    precise_amount,
    prorate_numerator AS prorated_days,
    prorate_denominator AS period_days,
    CAST(
        CAST(sign(u) * ((2 * abs(u) * prorate_numerator + minor_unit_scale * prorate_denominator)
                        // (2 * minor_unit_scale * prorate_denominator)) AS DECIMAL(34, 0))
        * minor_unit AS DECIMAL(38, 4)
    ) AS amount,
    sub_line_items
FROM rounded
ORDER BY invoice_id, line_item_id
