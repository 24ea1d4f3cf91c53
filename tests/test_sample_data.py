"""The demo's sample payments file."""

from datetime import date
from decimal import Decimal

from sample_data.generate import write_payments


def test_sample_payments_pay_invoices_in_full_within_their_terms(tmp_path):
    head = {"document_type": "invoice", "currency": "USD", "total": Decimal("123.4500"),
            "invoice_date": date(2026, 9, 1), "due_date": date(2026, 10, 1)}
    note = {**head, "document_type": "credit_note", "total": Decimal("-5.0000")}
    yen = {**head, "currency": "JPY", "total": Decimal("81792.0000")}
    path = tmp_path / "payments.csv"
    assert write_payments(path, [("INV-1", head), ("CN-1", note), ("INV-2", yen)], 1.0, 7) == 2
    header, *rows = path.read_text().splitlines()
    assert header == "invoice_number,amount,currency,paid_at,reference"
    assert [r.split(",")[:3] for r in rows] == [["INV-1", "123.45", "USD"],
                                                ["INV-2", "81792", "JPY"]]
    assert all(date(2026, 9, 1) <= date.fromisoformat(r.split(",")[3]) < date(2026, 10, 1)
               for r in rows)
