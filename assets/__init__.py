"""Dagster assets by billing domain: events -> rating -> invoicing -> reporting."""
