-- Revenue lines: every line item of the runs registered as `line_items`, in integer
-- minor units of its currency, with its share of the invoice adjustments that cover it.
-- Tables: line_items, invoice_adjustments, plan_prices (catalog_tables.plan_prices_table:
-- each price's cadence in months), with the macros of revenue_macros.sql.
--
-- Allocation of an adjustment to the lines it covers (docs/revenue.md): pro rata to the
-- lines' rounded amounts (equally when they sum to zero), by largest remainder in minor
-- units: each line gets floor(|A| w / W), the units left over go one each to the largest
-- remainders (ties: line_item_id), and the sign of A is applied. The shares of an
-- adjustment sum to it exactly, so a line's net amount sums to the invoice's total before
-- prepaid credits. Not shared: credit an invoice carries to the customer balance
-- (carried_to_balance, docs/invoicing.md): it is the customer's credit, not a charge, and
-- shared it would cancel the credit lines' negative revenue.

CREATE OR REPLACE TEMP TABLE revenue_lines AS
WITH lines AS (
    SELECT
        *,
        per_unit(currency_exponent) AS units,
        CAST(amount * per_unit(currency_exponent) AS HUGEINT) AS amount_minor
    FROM line_items
),
covered AS (
    SELECT invoice_id, source, adjustment_id, amount, unnest(line_item_ids) AS line_item_id
    FROM invoice_adjustments
    WHERE adjustment_type <> 'carried_to_balance'
),
weighted AS (
    SELECT
        c.invoice_id, c.source, c.adjustment_id, c.line_item_id,
        CAST(c.amount * l.units AS HUGEINT) AS adjustment_minor,
        abs(l.amount_minor) AS w
    FROM covered AS c
    JOIN lines AS l USING (invoice_id, line_item_id)
),
weights AS (
    SELECT
        *,
        CASE WHEN sum(w) OVER adjustment = 0 THEN 1 ELSE w END AS weight
    FROM weighted
    WINDOW adjustment AS (PARTITION BY invoice_id, source, adjustment_id)
),
shares AS (
    SELECT
        *,
        abs(adjustment_minor) * weight // sum(weight) OVER adjustment AS base,
        abs(adjustment_minor) * weight % sum(weight) OVER adjustment AS remainder
    FROM weights
    WINDOW adjustment AS (PARTITION BY invoice_id, source, adjustment_id)
),
ranked AS (
    SELECT
        *,
        abs(adjustment_minor) - sum(base) OVER adjustment AS leftover,
        row_number() OVER (PARTITION BY invoice_id, source, adjustment_id
                           ORDER BY remainder DESC, line_item_id) AS place
    FROM shares
    WINDOW adjustment AS (PARTITION BY invoice_id, source, adjustment_id)
),
allocated AS (
    SELECT
        invoice_id, line_item_id,
        sum(CAST(sign(adjustment_minor) AS HUGEINT)
            * (base + CASE WHEN place <= leftover THEN 1 ELSE 0 END)) AS adjustment_minor
    FROM ranked
    GROUP BY ALL
),
cadences AS (
    SELECT price_id, any_value(cadence_months) AS cadence_months
    FROM plan_prices
    GROUP BY price_id
)
SELECT
    l.billing_month,
    l.invoice_id,
    l.invoice_date,
    l.line_item_id,
    l.customer_id,
    l.subscription_id,
    l.plan_id,
    l.price_id,
    l.name,
    l.billable_metric_id,
    CASE WHEN l.billable_metric_id IS NULL THEN 'fixed' ELSE 'usage' END AS kind,
    l.currency,
    l.currency_exponent,
    l.units,
    l.in_advance,
    l.service_start,
    l.service_end,
    -- a price no longer in the catalog counts as monthly
    coalesce(c.cadence_months, 1) AS cadence_months,
    l.precise_amount,
    -- the precise amount as an integer number of 10^-21 (as line_items.sql does)
    CAST(trunc(l.precise_amount) AS HUGEINT) * CAST('1000000000000000000000' AS HUGEINT)
        + CAST(CAST((l.precise_amount - trunc(l.precise_amount)) * 10000000000
                    AS DECIMAL(38, 11)) * 100000000000 AS HUGEINT) AS precise_e21,
    l.amount_minor,
    coalesce(a.adjustment_minor, 0) AS adjustment_minor,
    l.amount_minor + coalesce(a.adjustment_minor, 0) AS net_minor
FROM lines AS l
LEFT JOIN allocated AS a USING (invoice_id, line_item_id)
LEFT JOIN cadences AS c USING (price_id);
