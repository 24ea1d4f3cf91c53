"""The pure billing domain: money, periods and the catalog. No Dagster, no Stripe."""
