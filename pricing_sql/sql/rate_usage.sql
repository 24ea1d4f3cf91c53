-- Rate usage by tier: one row per (charge, usage group, tier) of a billing run.
-- Creates temp tables `lines` (each charge: a price billed for a window) and
-- `rated_tiers`, which line_items.sql and line_item_details.sql read; a row of a spend
-- discount's own (`discount`) is a group of its own.
-- Tables: billing_windows      each subscription's service windows on the run's invoices
--                              (billing/charges.py): plan version, cycle, timing; a
--                              fixed fee's pieces at quantities of their own
--         plan_prices          each price of each plan version, with its cycle, timing
--                              (in advance or arrears), proration, model and metric
--         price_terms          each price's program: scheme, grouping, package, allocations,
--                              group maximum, largest group only, usage filter, rate
--                              read from the first group value, allowance netting,
--                              prorated group minimum, spend discounts (by cell or a
--                              daily allowance), metered minimum
--         price_tiers          each price's tiers (lower, upper], rate, flat and minimum amounts,
--                              the matrix cell they are for (NULL: every other group), and
--                              a cap per event with the usage keys of the events over it
--         price_cells          matrix cells: dimension values and their rate (NULL: the
--                              cell has tiers of its own), the spend discount of the
--                              cell, if any; and value rates (position: the group value
--                              they rate)
--         usage                (window_id, metric_id, grouping, group_values, quantity);
--                              a filtered price reads its own usage, usage_metric_id
-- The normal form and each model's mapping onto it: billing/catalog/prices.py and
-- docs/pricing.md. Missing usage is quantity 0, so every charge gets a line; a negative
-- metric value is rated as 0 (docs/pricing.md#negative-usage) and kept as the line's
-- quantity.
-- This file runs on DuckDB and, transpiled by sqlglot, on Spark (pricing_sql/engine.py,
-- docs/engines.md): no `* EXCLUDE`, no HUGEINT, no ordering by lists that may hold NULLs,
-- every money operand of greatest() and CASE of one DECIMAL type.
CREATE OR REPLACE TEMP TABLE lines AS
SELECT
    -- CAST(date AS VARCHAR) is ISO 8601 on every engine; strftime is DuckDB's own
    w.subscription_id || ':' || pp.price_id || ':'
        || replace(CAST(w.service_start AS VARCHAR), '-', '')
        || CASE WHEN w.replaced THEN ':replaced' ELSE '' END AS line_item_id,
    -- a replaced quantity's line is subtracted from the line it names (line_items.sql)
    CASE WHEN w.replaced THEN w.subscription_id || ':' || pp.price_id || ':'
        || replace(CAST(w.service_start AS VARCHAR), '-', '') END AS replaces,
    w.invoice_id, w.invoice_date, w.billing_month, w.window_id, w.subscription_id,
    w.customer_id, w.plan_id, w.plan_version, w.cycle, w.in_advance, w.currency,
    w.currency_exponent, w.service_start, w.service_end, w.period_start, w.period_end,
    w.active_days, w.period_days,
    pp.prorate, pp.price_id, pp.price_name, pp.model_type, pp.billable_metric_id,
    coalesce(w.quantity, pp.fixed_quantity) AS fixed_quantity, pp.invoice_grouping_key,
    pt.usage_metric_id, pt.scheme, pt.grouping, pt.package_size, pt.allocation,
    pt.matrix_allocation,
    pt.allocation_per_group, pt.group_maximum, pt.max_group, pt.filter_values,
    pt.rate_from_group, pt.composite, pt.composite_rate, pt.composite_minimum,
    pt.composite_maximum, pt.components, pt.consumption_values, pt.allowance_values,
    pt.prorated_group_minimum, pt.cell_discounts, pt.daily_allowance, pt.metered_minimum
FROM billing_windows AS w
JOIN plan_prices AS pp
    ON pp.plan_id = w.plan_id
    AND pp.plan_version = w.plan_version
    AND pp.cycle = w.cycle
    AND pp.in_advance = w.in_advance
    AND (w.price_id IS NULL OR pp.price_id = w.price_id)
-- a fixed fee whose quantity changes is charged on its pieces only (billing/quantities.py)
LEFT JOIN (
    SELECT DISTINCT window_id, price_id FROM billing_windows WHERE price_id IS NOT NULL
) AS pieces
    ON w.price_id IS NULL AND pieces.window_id = w.window_id AND pieces.price_id = pp.price_id
JOIN price_terms AS pt ON pt.price_id = pp.price_id
WHERE pieces.price_id IS NULL;

CREATE OR REPLACE TEMP TABLE rated_tiers AS
WITH
-- Equal groups given twice (a hand-written usage list) are one group: a group is tiered
-- on its whole quantity, never row by row.
merged_usage AS (
    SELECT window_id, metric_id, grouping, group_values, sum(quantity) AS quantity
    FROM usage
    GROUP BY window_id, metric_id, grouping, group_values
),
-- A tier that caps each event's fee (per_unit_maximum, the bps models): the volume and
-- the count of the line's events whose fee passes the cap, each a usage of its own
-- (pricing_sql/price_usage.py). The join runs only over such tiers.
over_cap AS (
    SELECT
        l.line_item_id,
        t.tier_index,
        CAST(coalesce(v.quantity, 0) AS DECIMAL(38, 9)) AS over_volume,
        CAST(coalesce(n.quantity, 0) AS DECIMAL(38, 9)) AS over_count
    FROM lines AS l
    JOIN price_tiers AS t ON t.price_id = l.price_id AND t.per_unit_maximum IS NOT NULL
    LEFT JOIN merged_usage AS v ON v.window_id = l.window_id AND v.metric_id = t.over_volume_id
    LEFT JOIN merged_usage AS n ON n.window_id = l.window_id AND n.metric_id = t.over_count_id
),
-- One row per usage group: a fixed fee's own quantity, or each group of the usage
-- grouped the way the price needs (a single empty group for ungrouped prices). A price
-- with a usage filter groups by the filter's properties and reads only the matching group.
groups AS (
    SELECT
        l.invoice_id,
        l.line_item_id,
        l.price_id,
        l.scheme,
        l.package_size,
        l.allocation,
        l.matrix_allocation,
        l.allocation_per_group,
        l.max_group,
        l.consumption_values,
        l.allowance_values,
        coalesce(u.group_values, CAST([] AS VARCHAR[])) AS group_values,
        -- event_output: the unit rate is the first group value (an event property); one
        -- that is missing, not a number or negative takes the price's own rate
        CASE WHEN l.rate_from_group AND array_length(u.group_values) > 0 THEN
            CASE WHEN try_cast(u.group_values[1] AS DECIMAL(38, 12)) >= 0
                THEN try_cast(u.group_values[1] AS DECIMAL(38, 12)) END
        -- grouped_with_metered_minimum: the rate of the pricing value (else the minimum
        -- unit amount) times the factor of the scaling value (else 1); the catalog checks
        -- that every product is a DECIMAL(38, 12) below 10^14, so this is exact
        WHEN l.metered_minimum IS NOT NULL THEN CAST(
            CAST(coalesce(pv.rate, l.metered_minimum) AS DECIMAL(38, 12))
            * CAST(coalesce(sv.rate, 1) AS DECIMAL(38, 12)) AS DECIMAL(38, 12))
        END AS group_rate,
        -- the values a matrix cell is matched on: all, or those after the day
        -- (daily_credit_allowance); indexed only where they exist (Spark raises otherwise)
        CASE
            WHEN l.daily_allowance IS NULL THEN coalesce(u.group_values, CAST([] AS VARCHAR[]))
            WHEN array_length(u.group_values) = 2 THEN [u.group_values[2]]
            WHEN array_length(u.group_values) = 3 THEN [u.group_values[2], u.group_values[3]]
            ELSE CAST([] AS VARCHAR[])
        END AS cell_values,
        coalesce(l.fixed_quantity, u.quantity, 0) AS usage_quantity,
        CAST(greatest(coalesce(l.fixed_quantity, u.quantity, 0), 0) AS DECIMAL(38, 9))
            AS rated_quantity
    FROM lines AS l
    LEFT JOIN merged_usage AS u
        ON l.fixed_quantity IS NULL
        AND u.window_id = l.window_id
        AND u.metric_id = l.usage_metric_id
        AND u.grouping = l.grouping
        AND (l.filter_values IS NULL OR u.group_values = l.filter_values)
    -- a metered minimum's value rates: its pricing value's (2nd) and scaling value's (3rd)
    LEFT JOIN price_cells AS pv
        ON l.metered_minimum IS NOT NULL
        AND pv.price_id = l.price_id
        AND pv.position = 2
        AND pv.dimension_values
            = [CASE WHEN array_length(u.group_values) = 3 THEN u.group_values[2] END]
    LEFT JOIN price_cells AS sv
        ON l.metered_minimum IS NOT NULL
        AND sv.price_id = l.price_id
        AND sv.position = 3
        AND sv.dimension_values
            = [CASE WHEN array_length(u.group_values) = 3 THEN u.group_values[3] END]
),
-- The groups rated. Largest group only (max_group_tiered_package): the group of the most
-- usage is rated
-- (of equal ones, the first in order of values), every other group as 0. Allowance
-- netting (metered_allowance): the consumption group is rated, the allowance group for
-- at most the consumption (its cell's rate is negative: a credit), any other as 0.
-- The windows run only over the prices that say so.
selected AS (
    SELECT
        invoice_id, line_item_id, price_id, scheme, package_size, allocation,
        matrix_allocation, allocation_per_group, group_values, group_rate, cell_values,
        usage_quantity,
        CASE WHEN row_number() OVER (
            PARTITION BY line_item_id
            ORDER BY rated_quantity DESC,
                list_transform(group_values, lambda v: coalesce('0' || v, '1'))
        ) = 1 THEN rated_quantity ELSE CAST(0 AS DECIMAL(38, 9)) END AS rated_quantity
    FROM groups
    WHERE max_group
    UNION ALL
    SELECT
        invoice_id, line_item_id, price_id, scheme, package_size, allocation,
        matrix_allocation, allocation_per_group, group_values, group_rate, cell_values,
        usage_quantity,
        CASE
            WHEN group_values = consumption_values THEN rated_quantity
            WHEN group_values = allowance_values THEN least(rated_quantity, CAST(coalesce(
                sum(CASE WHEN group_values = consumption_values THEN rated_quantity END)
                    OVER (PARTITION BY line_item_id), 0) AS DECIMAL(38, 9)))
            ELSE CAST(0 AS DECIMAL(38, 9))
        END AS rated_quantity
    FROM groups
    WHERE allowance_values IS NOT NULL
    UNION ALL
    SELECT
        invoice_id, line_item_id, price_id, scheme, package_size, allocation,
        matrix_allocation, allocation_per_group, group_values, group_rate, cell_values,
        usage_quantity,
        rated_quantity
    FROM groups
    WHERE NOT max_group AND allowance_values IS NULL
),
-- Matrix cells: a cell's rate (or a rate read from the group) replaces the default rate
-- for its group.
cells AS (
    SELECT
        g.invoice_id, g.line_item_id, g.price_id, g.scheme, g.package_size, g.allocation,
        g.matrix_allocation, g.allocation_per_group, g.group_values, g.usage_quantity,
        g.rated_quantity, c.cell_index, coalesce(c.rate, g.group_rate) AS cell_rate
    FROM selected AS g
    LEFT JOIN price_cells AS c
        ON c.price_id = g.price_id AND c.dimension_values = g.cell_values
),
-- A pooled allocation (a matrix's, or cumulative_grouped_allocation's) is drawn down
-- cell by cell in the order the cells are listed, then over default-priced groups in
-- order of their values; each group draws at most its allocation_per_group, if any.
-- The window runs only over the prices that have one.
allocated AS (
    SELECT
        invoice_id, line_item_id, price_id, scheme, package_size, allocation,
        matrix_allocation, allocation_per_group, group_values, usage_quantity,
        rated_quantity, cell_index, cell_rate,
        CAST(rated_quantity - least(drawable, CAST(greatest(matrix_allocation - used_before, 0)
                                                   AS DECIMAL(38, 9)))
             AS DECIMAL(38, 9)) AS remaining
    FROM (
        SELECT *, coalesce(sum(drawable) OVER (
            PARTITION BY line_item_id
            -- group values in order, a missing value (NULL) after every value, spelled
            -- out: engines order NULLs inside lists differently
            ORDER BY cell_index NULLS LAST,
                list_transform(group_values, lambda v: coalesce('0' || v, '1'))
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ), 0) AS used_before
        FROM (
            SELECT *, least(rated_quantity, coalesce(allocation_per_group, rated_quantity))
                AS drawable
            FROM cells
            WHERE matrix_allocation IS NOT NULL
        ) AS drawable_cells
    ) AS drawn
    UNION ALL
    SELECT *, rated_quantity AS remaining FROM cells WHERE matrix_allocation IS NULL
),
-- The quantity a group is billed for: less its allocation, then in whole packages.
-- Package counts are exact: ceil(q / size) = n1, or n1 + 1 when n1 * size < q, where n1
-- is the quotient in floating point (n0) corrected once by the floating-point quotient
-- of the exact remainder q - n0 * size. n0 is within 3.3e-16 * q / size + 0.5 of
-- q / size, so n1 is within 0.52 of it for any count up to 10^29 (the most
-- DECIMAL(38, 9) holds), and the last step, exact DECIMAL arithmetic, settles it.
-- (DuckDB divides DECIMALs in floating point; Spark has no HUGEINT and its DECIMAL
-- DIV wraps past BIGINT.)
after_allocation AS (
    SELECT
        *,
        CASE
            WHEN allocation IS NULL THEN remaining
            ELSE CAST(greatest(remaining - allocation, 0) AS DECIMAL(38, 9))
        END AS after_allocation
    FROM allocated
),
packages AS (
    SELECT
        *,
        CAST(CAST(greatest(after_allocation, 0) AS DOUBLE) / CAST(package_size AS DOUBLE)
             AS DECIMAL(38, 0)) AS n0
    FROM after_allocation
    WHERE package_size IS NOT NULL
),
packages_corrected AS (
    SELECT
        *,
        CAST(n0 + CAST(CAST(greatest(after_allocation, 0) - n0 * package_size AS DOUBLE)
                       / CAST(package_size AS DOUBLE) AS DECIMAL(38, 0))
             AS DECIMAL(38, 0)) AS n1
    FROM packages
),
billed AS (
    SELECT
        invoice_id, line_item_id, price_id, scheme, package_size, allocation,
        matrix_allocation, group_values, usage_quantity, cell_index, cell_rate, remaining,
        after_allocation,
        CAST(CASE WHEN n1 * package_size < greatest(after_allocation, 0) THEN n1 + 1 ELSE n1 END
             AS DECIMAL(38, 9)) AS quantity
    FROM packages_corrected
    UNION ALL
    SELECT
        invoice_id, line_item_id, price_id, scheme, package_size, allocation,
        matrix_allocation, group_values, usage_quantity, cell_index, cell_rate, remaining,
        after_allocation, after_allocation AS quantity
    FROM after_allocation
    WHERE package_size IS NULL
),
-- cumulative_volume (cumulative_grouped_bulk): each group is charged at the rate of the
-- tier the line's total over all its groups falls in. The window runs only over such
-- prices.
tier_basis AS (
    SELECT *, CAST(sum(quantity) OVER (PARTITION BY line_item_id) AS DECIMAL(38, 9)) AS basis
    FROM billed
    WHERE scheme = 'cumulative_volume'
    UNION ALL
    SELECT *, quantity AS basis FROM billed WHERE scheme <> 'cumulative_volume'
),
tiers_all AS (
    SELECT
        b.invoice_id,
        b.line_item_id,
        b.price_id,
        b.cell_index,
        b.scheme,
        b.group_values,
        b.usage_quantity,
        b.quantity,
        t.tier_index,
        t.lower,
        t.upper,
        t.minimum_amount,
        coalesce(b.cell_rate, t.rate) AS rate,
        t.flat_amount,
        t.per_unit_maximum,
        -- the tier the whole quantity (or the line's total) falls in
        (t.lower IS NULL OR b.basis > t.lower) AND (t.upper IS NULL OR b.basis <= t.upper)
            AS reached,
        -- the units of the quantity inside this tier
        greatest(least(b.quantity, coalesce(t.upper, b.quantity)) - coalesce(t.lower, 0), 0)
            AS units_in_tier
    FROM tier_basis AS b
    JOIN price_tiers AS t
        ON t.price_id = b.price_id
        -- a cell with tiers of its own is tiered on them, any other group on the price's
        AND (t.cell_values = b.group_values
             OR (t.cell_values IS NULL AND (b.cell_index IS NULL OR b.cell_rate IS NOT NULL)))
),
-- Only capped tiers look up their line's volume and count over the cap: joined on every
-- tier, the planner (which underestimates tiers) hashed all of them to probe a usually
-- empty over_cap, a tenth of this statement's time (docs/capacity.md).
tiers AS (
    SELECT
        *,
        CAST(NULL AS DECIMAL(38, 9)) AS over_volume,
        CAST(NULL AS DECIMAL(38, 9)) AS over_count
    FROM tiers_all
    WHERE per_unit_maximum IS NULL
    UNION ALL
    SELECT a.*, o.over_volume, o.over_count
    FROM tiers_all AS a
    LEFT JOIN over_cap AS o ON o.line_item_id = a.line_item_id AND o.tier_index = a.tier_index
    WHERE a.per_unit_maximum IS NOT NULL
),
usage_tiers AS (
    SELECT
    invoice_id, line_item_id, price_id, cell_index, scheme, group_values, usage_quantity,
    quantity, tier_index, lower, upper, minimum_amount, rate, reached,
    CASE scheme
        WHEN 'graduated' THEN units_in_tier
        ELSE CASE WHEN reached THEN quantity ELSE 0 END
    END AS tier_quantity,
    CASE
        -- a capped tier's units: rate x (units - volume over the cap) + cap x events over
        -- it, so each event pays at most the cap (and the tier never below 0, whatever
        -- refunds the events hold); a capped tier is graduated from 0 or volume
        WHEN per_unit_maximum IS NOT NULL THEN CASE
            WHEN scheme = 'volume' AND NOT reached THEN CAST(0 AS DECIMAL(38, 21))
            ELSE greatest(
                CAST(rate * (CASE scheme WHEN 'graduated' THEN units_in_tier ELSE quantity END
                             - over_volume) + per_unit_maximum * over_count
                     AS DECIMAL(38, 21)),
                CAST(0 AS DECIMAL(38, 21)))
        END
        ELSE CASE scheme
            WHEN 'graduated' THEN units_in_tier * rate
            WHEN 'volume' THEN CASE WHEN reached THEN quantity * rate ELSE 0 END
            WHEN 'cumulative_volume' THEN CASE WHEN reached THEN quantity * rate ELSE 0 END
            WHEN 'threshold' THEN CAST(CASE WHEN reached THEN flat_amount ELSE 0 END
                                       AS DECIMAL(38, 21))
        END
    END AS tier_amount
FROM tiers
),
-- Spend discounts, kept exact as rates (a group's spend is exact to 21 places, a fraction
-- of it may need more). matrix_with_threshold_discounts: the cells of a discount group are
-- credited below x min(S, T) + above x max(S - T, 0) of their spend S together: when
-- S <= T each cell's quantity at its rate x below (below_rate), else at its rate x above,
-- plus T at below - above on a row of the discount's own (discount). daily_credit_allowance:
-- the groups of each day (the first group value; none without one) likewise, T being the
-- allowance, below 1 and above 0: free up to the allowance, charged past it. These models'
-- groups have one tier each, so a member is one row. The windows run only over their prices.
members AS (
    SELECT
        t.invoice_id, t.line_item_id, t.group_values, t.usage_quantity, t.quantity,
        t.tier_amount,
        CASE
            WHEN l.daily_allowance IS NULL THEN CAST(c.discount_index AS VARCHAR)
            WHEN array_length(t.group_values) > 0 THEN t.group_values[1]
        END AS discount_key,
        CASE
            WHEN l.daily_allowance IS NULL THEN [c.discount_label]
            WHEN array_length(t.group_values) > 0 THEN [t.group_values[1]]
        END AS discount_values,
        coalesce(l.daily_allowance, c.threshold) AS threshold,
        CASE WHEN l.daily_allowance IS NULL THEN c.below_rate ELSE t.rate END AS below_rate,
        CASE WHEN l.daily_allowance IS NULL THEN c.above_rate
             ELSE CAST(0 AS DECIMAL(38, 12)) END AS above_rate,
        CASE WHEN l.daily_allowance IS NULL THEN c.threshold_rate
             ELSE CAST(1 AS DECIMAL(38, 12)) END AS threshold_rate
    FROM usage_tiers AS t
    JOIN (
        SELECT line_item_id, daily_allowance FROM lines
        WHERE cell_discounts OR daily_allowance IS NOT NULL
    ) AS l ON l.line_item_id = t.line_item_id
    LEFT JOIN price_cells AS c ON c.price_id = t.price_id AND c.cell_index = t.cell_index
    WHERE CASE
        WHEN l.daily_allowance IS NULL THEN c.discount_index IS NOT NULL
        WHEN array_length(t.group_values) = 0 THEN FALSE
        ELSE t.group_values[1] IS NOT NULL
    END
),
member_spend AS (
    SELECT *, CAST(sum(tier_amount) OVER (PARTITION BY line_item_id, discount_key)
                   AS DECIMAL(38, 21)) AS spend
    FROM members
),
credits AS (
    SELECT
        invoice_id, line_item_id, group_values, usage_quantity, quantity,
        CASE WHEN spend <= threshold THEN below_rate ELSE above_rate END AS credit_rate,
        quantity AS credited, FALSE AS discount
    FROM member_spend
    WHERE spend > 0 AND CASE WHEN spend <= threshold THEN below_rate ELSE above_rate END <> 0
    UNION ALL
    SELECT DISTINCT
        invoice_id, line_item_id, discount_values, CAST(0 AS DECIMAL(38, 9)), threshold,
        threshold_rate, threshold, TRUE
    FROM member_spend
    WHERE spend > threshold AND threshold > 0 AND threshold_rate <> 0
)
SELECT
    invoice_id, line_item_id, scheme, group_values, usage_quantity, quantity, tier_index,
    lower, upper, minimum_amount, rate, reached, tier_quantity, tier_amount,
    FALSE AS discount
FROM usage_tiers
UNION ALL
SELECT
    invoice_id, line_item_id, 'graduated', group_values, usage_quantity, quantity,
    CASE WHEN discount THEN 0 ELSE 1 END,
    CAST(NULL AS DECIMAL(38, 9)),
    CAST(CASE WHEN discount THEN credited END AS DECIMAL(38, 9)),
    CAST(NULL AS DECIMAL(38, 12)),
    CAST(-credit_rate AS DECIMAL(38, 12)),
    FALSE,
    CAST(credited AS DECIMAL(38, 9)),
    CAST(credited * -credit_rate AS DECIMAL(38, 21)),
    discount
FROM credits;
