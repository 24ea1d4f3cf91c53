-- The rate-table provider's tax lines (invoicing/taxes/rate_table.py; the rules:
-- billing/taxes.py): each taxable line's tax (per line), or one of each invoice's
-- taxable sum (per invoice), for the customers a rate applies to.
-- Exact: an amount's tax is amount × factor_num / factor_den (r, or r/(1+r) for an
-- inclusive rate), computed on integers (the amount in 10^-4 units, AMOUNT's scale) and
-- rounded once to the currency's minor unit, half away from zero (ROUND_HALF_UP):
-- q = floor((2|n| + d) / 2d), signed.
-- Tables: taxable_lines (taxable_lines.sql)
--         tax_treatments (customer_id, tax_rate_id, description, jurisdiction,
--                         percentage, inclusive, reason, factor_num, factor_den)
-- Parameters: $per_invoice (BOOLEAN)
WITH taxable AS (
    SELECT invoice_id, customer_id, currency_exponent, line_key, amount
    FROM taxable_lines
    WHERE NOT $per_invoice
    UNION ALL
    SELECT invoice_id, any_value(customer_id), any_value(currency_exponent), NULL,
           sum(amount)
    FROM taxable_lines
    WHERE $per_invoice
    GROUP BY invoice_id
),
exact AS (
    SELECT
        x.*,
        t.tax_rate_id, t.description, t.jurisdiction, t.percentage, t.inclusive, t.reason,
        CAST(x.amount * 10000 AS HUGEINT) * t.factor_num AS n,
        t.factor_den * CASE x.currency_exponent
            WHEN 0 THEN 10000 WHEN 2 THEN 100 WHEN 3 THEN 10 ELSE 1 END AS d
    FROM taxable AS x
    JOIN tax_treatments AS t USING (customer_id)
)
SELECT
    invoice_id,
    line_key,
    tax_rate_id,
    description,
    jurisdiction,
    percentage,
    inclusive,
    reason,
    amount AS taxable,
    CAST(sign(n) * ((2 * abs(n) + d) // (2 * d)) AS DECIMAL(38, 0))
        * CASE currency_exponent
            WHEN 0 THEN CAST(1 AS DECIMAL(38, 4)) WHEN 2 THEN CAST(0.01 AS DECIMAL(38, 4))
            WHEN 3 THEN CAST(0.001 AS DECIMAL(38, 4)) ELSE CAST(0.0001 AS DECIMAL(38, 4)) END
        AS amount,
    'rate_table' AS provider
FROM exact
ORDER BY invoice_id, line_key
