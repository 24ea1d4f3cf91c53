-- Price every (subscription, price) of a billing month: one invoice line item each.
-- Tables: subscription_prices  one row per subscription price active in the month
--         price_tiers          every price as graduated tiers (first_unit, last_unit]
--         usage                (subscription_id, metric_id, quantity) for the month
-- A unit price is a single tier from 0; a fixed fee is a unit price whose quantity is
-- fixed_quantity. Missing usage is quantity 0, so every price on the plan gets a line.
-- Rounding: the one rounding step of the pipeline. Each line's precise amount (the sum
-- of its tiers, DECIMAL(38,21)) is rounded to the currency's minor unit, half away from
-- zero (Python's ROUND_HALF_UP). DuckDB's round() needs a constant precision, hence one
-- branch per exponent; each branch is cast so the CASE keeps all four decimal places.
WITH quantities AS (
    SELECT
        sp.*,
        CAST(coalesce(sp.fixed_quantity, u.quantity, 0) AS DECIMAL(38, 9)) AS quantity
    FROM subscription_prices AS sp
    LEFT JOIN usage AS u
        ON u.subscription_id = sp.subscription_id AND u.metric_id = sp.billable_metric_id
),
tiers AS (
    SELECT
        q.subscription_id,
        q.price_id,
        t.tier_index,
        t.first_unit,
        t.last_unit,
        t.unit_amount,
        greatest(least(q.quantity, coalesce(t.last_unit, q.quantity)) - t.first_unit, 0)
            AS tier_quantity
    FROM quantities AS q
    JOIN price_tiers AS t ON t.price_id = q.price_id
),
priced AS (
    SELECT
        subscription_id,
        price_id,
        sum(tier_quantity * unit_amount) AS precise_amount,
        list({
            'tier_index': tier_index,
            'first_unit': first_unit,
            'last_unit': last_unit,
            'quantity': tier_quantity,
            'unit_amount': unit_amount,
            'amount': tier_quantity * unit_amount
        } ORDER BY tier_index) AS sub_line_items
    FROM tiers
    GROUP BY subscription_id, price_id
)
SELECT
    q.customer_id || '-' || strftime(q.billing_month, '%Y%m') || '-' || q.currency AS invoice_id,
    q.subscription_id || ':' || q.price_id AS line_item_id,
    q.billing_month,
    q.customer_id,
    q.subscription_id,
    q.plan_id,
    q.price_id,
    q.price_name AS name,
    q.model_type,
    q.billable_metric_id,
    q.currency,
    q.currency_exponent,
    q.invoice_period_start,
    q.invoice_period_end,
    q.period_start,
    q.period_end,
    q.quantity,
    p.precise_amount,
    CASE q.currency_exponent
        WHEN 0 THEN CAST(round(p.precise_amount, 0) AS DECIMAL(38, 4))
        WHEN 2 THEN CAST(round(p.precise_amount, 2) AS DECIMAL(38, 4))
        WHEN 3 THEN CAST(round(p.precise_amount, 3) AS DECIMAL(38, 4))
        WHEN 4 THEN CAST(round(p.precise_amount, 4) AS DECIMAL(38, 4))
        ELSE error('unsupported currency exponent ' || q.currency_exponent)
    END AS amount,
    p.sub_line_items
FROM quantities AS q
JOIN priced AS p ON p.subscription_id = q.subscription_id AND p.price_id = q.price_id
ORDER BY invoice_id, line_item_id
