-- Each adjustment on each invoice with each line item it covers.
-- Tables: adjustment_terms  (billing/charges.py) an adjustment on an invoice for one
--                           subscription, narrowed to a plan version, to prices and to
--                           service dates (coupons), where given; with its type and
--                           parameter (its amount, its fraction for a percentage, its
--                           units for a usage discount)
--         line_items        (line_items.sql)
-- A usage discount covers usage lines only: it takes units off a quantity of usage.
CREATE OR REPLACE TEMP TABLE adjustment_lines AS
SELECT
    t.invoice_id,
    t.subscription_id,
    t.source,
    t.adjustment_id,
    t.adjustment_type,
    t.parameter,
    l.line_item_id,
    l.currency,
    l.currency_exponent,
    l.amount
FROM adjustment_terms AS t
JOIN line_items AS l
    ON l.invoice_id = t.invoice_id
    AND l.subscription_id = t.subscription_id
    AND (t.plan_id IS NULL OR (l.plan_id = t.plan_id AND l.plan_version = t.plan_version))
    AND (t.applies_to_price_ids IS NULL OR list_contains(t.applies_to_price_ids, l.price_id))
    AND (t.valid_from IS NULL OR l.service_start >= t.valid_from)
    AND (t.valid_until IS NULL OR l.service_start < t.valid_until)
    AND (t.adjustment_type <> 'usage_discount' OR l.billable_metric_id IS NOT NULL)
