"""Credit top-ups in Orb's model (``customers.credits.top_ups``, docs/api.md#top-ups): a
configuration per customer and currency, replaced by a new one or ended by a delete,
each by an appended row; and its triggers, the evaluations that fired it (a grant and a
purchase) or re-armed it. Nothing is updated in place.

A top-up is armed when created. An evaluation that finds the balance at or below the
threshold fires an armed top-up (one "fired" row, which disarms it); one that finds the
balance above the threshold re-arms a disarmed one (a "cleared" row). A trigger is
written inside a write transaction (one writer at a time) that first reads the latest
trigger, and (top_up_id, sequence) is unique: one crossing fires once, whoever
evaluates it.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa

from billing import money
from state import schema
from state.database import reading, writing
from state.errors import StateError

UNITS = ("day", "month")


@dataclass(frozen=True)
class TopUp:
    top_up_id: str
    customer_id: str
    currency: str
    amount: Decimal  # credits granted per trigger
    threshold: Decimal  # fires at or below it (Orb's rule)
    per_unit_cost_basis: Decimal  # charged per credit
    invoice_settings: dict[str, Any]  # Orb's TopUpInvoiceSettings
    active_from: datetime
    expires_after: int | None
    expires_after_unit: str | None
    recorded_at: datetime

    def as_orb(self) -> dict[str, Any]:
        """Orb's ``TopUp``: amounts as decimal strings."""
        return {"id": self.top_up_id, "amount": str(self.amount), "currency": self.currency,
                "threshold": str(self.threshold),
                "per_unit_cost_basis": str(self.per_unit_cost_basis),
                "invoice_settings": self.invoice_settings,
                "expires_after": self.expires_after,
                "expires_after_unit": self.expires_after_unit}


@dataclass(frozen=True)
class Trigger:
    top_up_id: str
    sequence: int
    kind: str  # fired | cleared
    balance: Decimal
    grant_id: str | None = None
    purchase_amount: Decimal | None = None
    invoice_id: str | None = None  # the purchase invoice, once made


def decimal_field(value: object, field: str, problems: list[str]) -> Decimal:
    """A decimal string (Orb sends amounts as strings), finite; else a problem named."""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite():
        problems.append(f"{field}: expected a decimal string, got {value!r}")
        return Decimal(0)
    return number


def checked(top_up: TopUp, where: str = "body") -> TopUp:
    """The top-up with its amounts at the currency's minor unit; StateError names every
    field that breaks a rule: an ISO currency, an amount above 0 and a threshold of 0 or
    more in its minor unit, a cost basis of 0 or more, ``expires_after`` above 0 with its
    unit."""
    problems: list[str] = []
    try:
        currency = money.currency_code(top_up.currency)
    except money.UnknownCurrencyError as exc:
        raise StateError([f"{where}.currency: {exc}"]) from exc
    try:
        amount = money.check_amount(top_up.amount, currency, f"{where}.amount")
    except money.AmountError as exc:
        problems.append(str(exc))
        amount = top_up.amount
    threshold = top_up.threshold
    if threshold < 0 or money.quantize(threshold, currency) != threshold:
        problems.append(f"{where}.threshold: {threshold} must be 0 or more, in {currency}'s "
                        f"minor unit ({money.exponent(currency)} decimal places)")
    threshold = money.quantize(threshold, currency)  # exact: shown as 100.00
    if top_up.per_unit_cost_basis < 0:
        problems.append(f"{where}.per_unit_cost_basis: {top_up.per_unit_cost_basis} must be "
                        "0 or more")
    if (top_up.expires_after is None) != (top_up.expires_after_unit is None):
        problems.append(f"{where}.expires_after_unit: give it with expires_after, and only "
                        "then")
    elif top_up.expires_after is not None and top_up.expires_after < 1:
        problems.append(f"{where}.expires_after: {top_up.expires_after} must be 1 or more")
    elif top_up.expires_after_unit not in (None, *UNITS):
        problems.append(f"{where}.expires_after_unit: one of {', '.join(UNITS)}")
    if problems:
        raise StateError(problems)
    return TopUp(top_up.top_up_id, top_up.customer_id, currency, amount, threshold,
                 top_up.per_unit_cost_basis, top_up.invoice_settings, top_up.active_from,
                 top_up.expires_after, top_up.expires_after_unit, top_up.recorded_at)


def create(engine: sa.Engine, top_up: TopUp, actor: str) -> str | None:
    """Write ``top_up`` (checked by ``checked``), ending the customer's active one in the
    same currency (Orb replaces it); the id replaced, if any."""
    table = schema.credit_top_ups
    with writing(engine) as connection:
        if not connection.execute(sa.select(schema.customers.c.customer_id).where(
                schema.customers.c.customer_id == top_up.customer_id)).first():
            raise StateError([f"customer_id: unknown customer {top_up.customer_id!r}"])
        replaced = next((t.top_up_id for t in _active(connection, [top_up.customer_id])
                         if t.currency == top_up.currency), None)
        if replaced is not None:
            _end(connection, replaced, "replaced", actor, top_up.recorded_at)
        connection.execute(sa.insert(table), [{
            "top_up_id": top_up.top_up_id, "customer_id": top_up.customer_id,
            "currency": top_up.currency, "amount": str(top_up.amount),
            "threshold": str(top_up.threshold),
            "per_unit_cost_basis": str(top_up.per_unit_cost_basis),
            "invoice_settings": json.dumps(top_up.invoice_settings, sort_keys=True),
            "active_from": top_up.active_from, "expires_after": top_up.expires_after,
            "expires_after_unit": top_up.expires_after_unit,
            "recorded_at": top_up.recorded_at, "actor": actor}])
    return replaced


def end(engine: sa.Engine, customer_id: str, top_up_id: str, actor: str,
        now: datetime) -> bool:
    """Deactivate the customer's active top-up ``top_up_id`` (Orb's delete); False when it
    has none of that id."""
    with writing(engine) as connection:
        if not any(t.top_up_id == top_up_id for t in _active(connection, [customer_id])):
            return False
        _end(connection, top_up_id, "deleted", actor, now)
    return True


def _end(connection: sa.Connection, top_up_id: str, reason: str, actor: str,
         now: datetime) -> None:
    connection.execute(sa.insert(schema.credit_top_up_ends), [{
        "top_up_id": top_up_id, "reason": reason, "recorded_at": now, "actor": actor}])


def active(engine: sa.Engine, customer_ids: Collection[str] | None = None) -> list[TopUp]:
    """The active top-ups (not replaced nor deleted) of ``customer_ids`` (None: all),
    newest first."""
    with reading(engine) as connection:
        return _active(connection, customer_ids)


def _active(connection: sa.Connection, customer_ids: Collection[str] | None
            ) -> list[TopUp]:
    table, ends = schema.credit_top_ups, schema.credit_top_up_ends
    query = (sa.select(table).where(~sa.exists().where(ends.c.top_up_id == table.c.top_up_id))
             .order_by(table.c.recorded_at.desc(), table.c.top_up_id))
    if customer_ids is not None:
        query = query.where(table.c.customer_id.in_(list(customer_ids)))
    return [TopUp(r.top_up_id, r.customer_id, r.currency, Decimal(r.amount),
                  Decimal(r.threshold), Decimal(r.per_unit_cost_basis),
                  json.loads(r.invoice_settings), r.active_from, r.expires_after,
                  r.expires_after_unit, r.recorded_at)
            for r in connection.execute(query)]


def latest_triggers(engine: sa.Engine, top_up_ids: Collection[str]) -> dict[str, Trigger]:
    """Each top-up's latest trigger, with its purchase invoice if made."""
    with reading(engine) as connection:
        return {t.top_up_id: t for t in _triggers(connection, top_up_ids)}


def _triggers(connection: sa.Connection, top_up_ids: Collection[str]) -> list[Trigger]:
    """Every trigger of ``top_up_ids``, in sequence order."""
    triggers, invoices = schema.credit_top_up_triggers, schema.credit_top_up_invoices
    rows = connection.execute(
        sa.select(triggers, invoices.c.invoice_id)
        .outerjoin(invoices, sa.and_(invoices.c.top_up_id == triggers.c.top_up_id,
                                     invoices.c.sequence == triggers.c.sequence))
        .where(triggers.c.top_up_id.in_(list(top_up_ids)))
        .order_by(triggers.c.top_up_id, triggers.c.sequence))
    return [Trigger(r.top_up_id, r.sequence, r.kind, Decimal(r.balance), r.grant_id,
                    None if r.purchase_amount is None else Decimal(r.purchase_amount),
                    r.invoice_id) for r in rows]


def record_trigger(engine: sa.Engine, top_up_id: str, kind: str, balance: Decimal,
                   actor: str, now: datetime, purchase_amount: Decimal | None = None
                   ) -> Trigger | None:
    """Append the next trigger of ``top_up_id`` unless the latest is already of ``kind``
    (an evaluation at the same time wrote it): the trigger written, else None. A fired
    trigger's grant id is made from it, so the grant is written once."""
    table = schema.credit_top_up_triggers
    with writing(engine) as connection:
        found = _triggers(connection, [top_up_id])
        latest = found[-1] if found else None
        if (latest.kind if latest else "cleared") == kind:
            return None
        sequence = latest.sequence + 1 if latest else 1
        grant_id = f"topup_{top_up_id}_{sequence}" if kind == "fired" else None
        connection.execute(sa.insert(table), [{
            "top_up_id": top_up_id, "sequence": sequence, "kind": kind,
            "balance": str(balance), "grant_id": grant_id,
            "purchase_amount": None if purchase_amount is None else str(purchase_amount),
            "recorded_at": now, "actor": actor}])
    return Trigger(top_up_id, sequence, kind, balance, grant_id, purchase_amount)


def record_invoice(engine: sa.Engine, trigger: Trigger, invoice_id: str, actor: str,
                   now: datetime) -> None:
    with writing(engine) as connection:
        connection.execute(sa.insert(schema.credit_top_up_invoices), [{
            "top_up_id": trigger.top_up_id, "sequence": trigger.sequence,
            "invoice_id": invoice_id, "recorded_at": now, "actor": actor}])


def fired(engine: sa.Engine, top_up_ids: Sequence[str]) -> list[Trigger]:
    """Every fired trigger of ``top_up_ids``: the grants and purchases they made."""
    with reading(engine) as connection:
        return [t for t in _triggers(connection, top_up_ids) if t.kind == "fired"]
