-- Each revenue line's net amount recognized ratably by day over its service period
-- [service_start, service_end) (the customer's local dates), from revenue_lines.
-- Cumulative rounding in integer minor units: through the k-th month of the period,
--   recognized_through(k) = round_half_away(net x days_through(k) / days),
-- and month k recognizes recognized_through(k) - recognized_through(k - 1). The last
-- month's recognized_through is net exactly, so the months sum to the line's net amount.
-- Service days before the month of the run that billed the line are recognized in that
-- run's month (a catch-up; there is no unbilled revenue): `month` below.
CREATE OR REPLACE TEMP TABLE recognition_schedule AS
WITH spans AS (
    SELECT
        line_item_id, invoice_id, billing_month, customer_id, currency, currency_exponent,
        net_minor, service_start,
        -- a zero-day window (never made by the rating step) is recognized on its day
        greatest(service_end, service_start + 1) AS service_end
    FROM revenue_lines
),
months AS (
    SELECT
        *,
        CAST(unnest(generate_series(month_of(service_start), month_of(service_end - 1),
                                    INTERVAL 1 MONTH)) AS DATE) AS service_month
    FROM spans
),
days AS (
    SELECT
        *,
        service_end - service_start AS period_days,
        least(service_end, next_month(service_month))
            - greatest(service_start, service_month) AS month_days
    FROM months
),
cumulative AS (
    SELECT
        *,
        sum(month_days) OVER (PARTITION BY invoice_id, line_item_id ORDER BY service_month
                              ROWS UNBOUNDED PRECEDING) AS days_through
    FROM days
)
SELECT
    line_item_id,
    invoice_id,
    billing_month,
    customer_id,
    currency,
    currency_exponent,
    service_month,
    greatest(service_month, billing_month) AS month,
    month_days,
    div_half_up(net_minor * days_through, period_days)
        - div_half_up(net_minor * (days_through - month_days), period_days) AS recognized_minor
FROM cumulative;
