-- The line items each adjustment covers on each invoice, and their rounded sum.
-- Tables: adjustment_lines      (adjustment_lines.sql) each adjustment with each line
--         usage_discount_lines  (usage_discount_lines.sql) what each usage discount
--                               takes off each line it covers, rounded
-- A usage discount's parameter becomes that amount, summed over its lines (its units
-- are spent: the amount is what applied_adjustments.sql applies). An adjustment none of
-- whose lines is on the invoice does not appear.
CREATE OR REPLACE TEMP TABLE adjustment_scopes AS
SELECT
    a.invoice_id,
    a.subscription_id,
    a.source,
    a.adjustment_id,
    any_value(a.adjustment_type) AS adjustment_type,
    CASE any_value(a.adjustment_type)
        WHEN 'usage_discount' THEN CAST(sum(u.amount) AS DECIMAL(38, 18))
        ELSE any_value(a.parameter)
    END AS parameter,
    any_value(a.currency) AS currency,
    any_value(a.currency_exponent) AS currency_exponent,
    list(a.line_item_id ORDER BY a.line_item_id) AS line_item_ids,
    sum(a.amount) AS lines_amount
FROM adjustment_lines AS a
LEFT JOIN usage_discount_lines AS u
    USING (invoice_id, subscription_id, source, adjustment_id, line_item_id)
GROUP BY a.invoice_id, a.subscription_id, a.source, a.adjustment_id
