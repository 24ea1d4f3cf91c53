-- The line items each adjustment covers on each invoice, and their rounded sum.
-- Tables: adjustment_terms  (billing/charges.py) an adjustment on an invoice for one
--                           subscription, narrowed to a plan version, to prices and to
--                           service dates (coupons), where given; with its type and
--                           parameter (its amount, or its fraction for a percentage)
--         line_items        (line_items.sql)
-- An adjustment none of whose lines is on the invoice does not appear.
CREATE OR REPLACE TEMP TABLE adjustment_scopes AS
SELECT
    t.invoice_id,
    t.subscription_id,
    t.source,
    t.adjustment_id,
    any_value(t.adjustment_type) AS adjustment_type,
    any_value(t.parameter) AS parameter,
    any_value(l.currency) AS currency,
    any_value(l.currency_exponent) AS currency_exponent,
    list(l.line_item_id ORDER BY l.line_item_id) AS line_item_ids,
    sum(l.amount) AS lines_amount
FROM adjustment_terms AS t
JOIN line_items AS l
    ON l.invoice_id = t.invoice_id
    AND l.subscription_id = t.subscription_id
    AND (t.plan_id IS NULL OR (l.plan_id = t.plan_id AND l.plan_version = t.plan_version))
    AND (t.applies_to_price_ids IS NULL OR list_contains(t.applies_to_price_ids, l.price_id))
    AND (t.valid_from IS NULL OR l.service_start >= t.valid_from)
    AND (t.valid_until IS NULL OR l.service_start < t.valid_until)
GROUP BY t.invoice_id, t.subscription_id, t.source, t.adjustment_id
