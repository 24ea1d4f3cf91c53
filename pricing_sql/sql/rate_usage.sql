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
-- This file runs on DuckDB and, transpiled by sqlglot, on Spark (pricing_sql/engine.py,
-- docs/engines.md): no `* EXCLUDE`, no HUGEINT, no ordering by lists that may hold NULLs,
-- every money operand of greatest() and CASE of one DECIMAL type.
CREATE OR REPLACE TEMP TABLE lines AS
SELECT
    -- CAST(date AS VARCHAR) is ISO 8601 on every engine; strftime is DuckDB's own
    w.subscription_id || ':' || pp.price_id || ':'
        || replace(CAST(w.service_start AS VARCHAR), '-', '') AS line_item_id,
    w.invoice_id, w.invoice_date, w.billing_month, w.window_id, w.subscription_id,
    w.customer_id, w.plan_id, w.plan_version, w.cadence_months, w.in_advance, w.currency,
    w.currency_exponent, w.service_start, w.service_end, w.period_start, w.period_end,
    w.active_days, w.period_days,
    pp.prorate, pp.price_id, pp.price_name, pp.model_type, pp.billable_metric_id,
    pp.fixed_quantity,
    pt.scheme, pt.grouping, pt.package_size, pt.allocation, pt.matrix_allocation
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
        invoice_id, line_item_id, price_id, scheme, package_size, allocation,
        matrix_allocation, group_values, usage_quantity, cell_index, cell_rate,
        CAST(greatest(usage_quantity - greatest(matrix_allocation - used_before, 0), 0)
             AS DECIMAL(38, 9)) AS remaining
    FROM (
        SELECT *, coalesce(sum(usage_quantity) OVER (
            PARTITION BY line_item_id
            -- group values in order, a missing value (NULL) after every value, spelled
            -- out: engines order NULLs inside lists differently
            ORDER BY cell_index NULLS LAST,
                list_transform(group_values, lambda v: coalesce('0' || v, '1'))
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ), 0) AS used_before
        FROM cells
        WHERE matrix_allocation IS NOT NULL
    ) AS drawn
    UNION ALL
    SELECT *, usage_quantity AS remaining FROM cells WHERE matrix_allocation IS NULL
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
    invoice_id, line_item_id, scheme, group_values, usage_quantity, quantity, tier_index,
    lower, upper, minimum_amount, rate, reached,
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
