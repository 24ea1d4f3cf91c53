-- Rate usage by tier: one row per (charge, usage group, tier) of a billing run.
-- Creates temp tables `lines` (each charge: a price billed for a window) and
-- `rated_tiers`, which line_items.sql and line_item_details.sql read.
-- Tables: billing_windows      each subscription's service windows on the run's invoices
--                              (billing/charges.py): plan version, cadence, timing
--         plan_prices          each price of each plan version, with its cadence, timing
--                              (in advance or arrears), proration, model and metric
--         price_terms          each price's program: scheme, grouping, package, allocations
--         price_tiers          each price's tiers (lower, upper], rate, flat and minimum amounts
--         price_cells          matrix cells: dimension values and their rate
--         usage                (window_id, metric_id, grouping, group_values, quantity)
-- The normal form and each model's mapping onto it: billing/catalog/prices.py and
-- docs/pricing.md. Missing usage is quantity 0, so every charge gets a line.
CREATE OR REPLACE TEMP TABLE lines AS
SELECT
    w.subscription_id || ':' || pp.price_id || ':' || strftime(w.service_start, '%Y%m%d')
        AS line_item_id,
    w.*,
    pp.* EXCLUDE (plan_id, plan_version, cadence_months, in_advance),
    pt.* EXCLUDE (price_id)
FROM billing_windows AS w
JOIN plan_prices AS pp
    ON pp.plan_id = w.plan_id
    AND pp.plan_version = w.plan_version
    AND pp.cadence_months = w.cadence_months
    AND pp.in_advance = w.in_advance
JOIN price_terms AS pt ON pt.price_id = pp.price_id;

CREATE OR REPLACE TEMP TABLE rated_tiers AS
WITH
-- One row per usage group: a fixed fee's own quantity, or each group of the usage
-- grouped the way the price needs (a single empty group for ungrouped prices).
groups AS (
    SELECT
        l.invoice_id,
        l.line_item_id,
        l.price_id,
        l.scheme,
        l.package_size,
        l.allocation,
        l.matrix_allocation,
        coalesce(u.group_values, CAST([] AS VARCHAR[])) AS group_values,
        coalesce(l.fixed_quantity, u.quantity, 0) AS usage_quantity
    FROM lines AS l
    LEFT JOIN usage AS u
        ON l.fixed_quantity IS NULL
        AND u.window_id = l.window_id
        AND u.metric_id = l.billable_metric_id
        AND u.grouping = l.grouping
),
-- Matrix cells: a cell's rate replaces the default rate for its group.
cells AS (
    SELECT g.*, c.cell_index, c.rate AS cell_rate
    FROM groups AS g
    LEFT JOIN price_cells AS c
        ON c.price_id = g.price_id AND c.dimension_values = g.group_values
),
-- A matrix allocation is drawn down cell by cell in the order the cells are listed,
-- then over default-priced groups in order of their values. The window runs only
-- over the prices that have one.
allocated AS (
    SELECT
        * EXCLUDE (used_before),
        greatest(usage_quantity - greatest(matrix_allocation - used_before, 0), 0) AS remaining
    FROM (
        SELECT *, coalesce(sum(usage_quantity) OVER (
            PARTITION BY line_item_id
            ORDER BY cell_index NULLS LAST, group_values
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ), 0) AS used_before
        FROM cells
        WHERE matrix_allocation IS NOT NULL
    )
    UNION ALL
    SELECT *, usage_quantity AS remaining FROM cells WHERE matrix_allocation IS NULL
),
-- The quantity a group is billed for: less its allocation, then in whole packages.
-- Package counts use exact integer division (DuckDB's DECIMAL division is floating point).
billed AS (
    SELECT
        *,
        CASE
            WHEN package_size IS NULL THEN after_allocation
            ELSE CAST(
                (CAST(greatest(after_allocation, 0) * 1000000000 AS HUGEINT)
                 + CAST(package_size * 1000000000 AS HUGEINT) - 1)
                // CAST(package_size * 1000000000 AS HUGEINT) AS DECIMAL(38, 9))
        END AS quantity
    FROM (
        SELECT
            *,
            CASE
                WHEN allocation IS NULL THEN remaining
                ELSE greatest(remaining - allocation, 0)
            END AS after_allocation
        FROM allocated
    )
),
tiers AS (
    SELECT
        b.invoice_id,
        b.line_item_id,
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
        -- the tier the whole quantity falls in
        (t.lower IS NULL OR b.quantity > t.lower) AND (t.upper IS NULL OR b.quantity <= t.upper)
            AS reached,
        -- the units of the quantity inside this tier
        greatest(least(b.quantity, coalesce(t.upper, b.quantity)) - coalesce(t.lower, 0), 0)
            AS units_in_tier
    FROM billed AS b
    JOIN price_tiers AS t ON t.price_id = b.price_id
)
SELECT
    * EXCLUDE (units_in_tier, flat_amount),
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
FROM tiers;
