"""Taxes on invoices: the provider interface (``provider.py``) and one module per
provider (``rate_table.py``, ``stripe_tax.py``); docs/invoicing.md#taxes."""
