"""Payments: collect issued invoices through a payment processor, record every attempt in
the lake, retry failures on a schedule and reconcile the processor's state back.

``processor.py`` is the interface, ``manual.py`` the embedded default (payments recorded
in a file), ``stripe_processor.py`` the Stripe adapter, ``ledger.py`` the append-only
attempt records and ``run.py`` the run that ties them together. See docs/payments.md.
"""
