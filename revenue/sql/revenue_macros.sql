-- Macros of the revenue SQL (revenue_*.sql): exact integer rounding and money in minor units.

-- x / d rounded half away from zero, in integers (d > 0): exact, no floating point.
CREATE OR REPLACE TEMP MACRO div_half_up(x, d) AS
    CAST(sign(x) AS HUGEINT) * ((2 * abs(x) + d) // (2 * d));
-- Minor units per major unit, and the minor unit as a DECIMAL, by currency exponent.
CREATE OR REPLACE TEMP MACRO per_unit(e) AS CAST(CASE e
    WHEN 0 THEN 1 WHEN 2 THEN 100 WHEN 3 THEN 1000 WHEN 4 THEN 10000
    ELSE error('unsupported currency exponent ' || e) END AS HUGEINT);
CREATE OR REPLACE TEMP MACRO to_money(x, e) AS CAST(CAST(x AS DECIMAL(34, 0)) * CASE e
    WHEN 0 THEN CAST(1 AS DECIMAL(5, 4)) WHEN 2 THEN CAST(0.01 AS DECIMAL(5, 4))
    WHEN 3 THEN CAST(0.001 AS DECIMAL(5, 4)) WHEN 4 THEN CAST(0.0001 AS DECIMAL(5, 4))
    END AS DECIMAL(38, 4));
CREATE OR REPLACE TEMP MACRO month_of(d) AS CAST(date_trunc('month', d) AS DATE);
CREATE OR REPLACE TEMP MACRO next_month(d) AS CAST(date_trunc('month', d) + INTERVAL 1 MONTH AS DATE);
