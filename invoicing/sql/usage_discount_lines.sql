-- What each usage discount takes off each line it covers: the line's rounded amount
-- after it less the amount after the discounts before it (the line's own amount before
-- the first). The amount after a step is the line priced again at the step's quantity
-- and rounded, as every line is; a discount never raises a line (a volume price can
-- cost more at a lower quantity: there the discount takes 0 off), so the amount after a
-- step is the least of the line's and of every step's so far.
-- Tables: usage_discount_steps  (usage_discount_steps.sql)
--         reduced_amounts       (reduced_id, amount) each step's line priced again
--                               (pricing_sql/reduced_rating.py)
SELECT
    invoice_id,
    subscription_id,
    source,
    adjustment_id,
    line_item_id,
    CAST(after_step - coalesce(lag(after_step) OVER steps, line_amount) AS DECIMAL(38, 4))
        AS amount
FROM (
    SELECT
        s.*,
        least(s.line_amount, min(
            CASE WHEN r.amount IS NULL
                THEN error('line ' || s.reduced_id || ' was not priced again')
                ELSE r.amount END) OVER (
            PARTITION BY s.invoice_id, s.line_item_id ORDER BY s.step
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)) AS after_step
    FROM usage_discount_steps AS s
    LEFT JOIN reduced_amounts AS r USING (reduced_id)
) AS stepped
WINDOW steps AS (PARTITION BY invoice_id, line_item_id ORDER BY step)
