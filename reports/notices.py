"""Dunning notices as mail: the subject, a plain-text body and an HTML body, from the
templates ``dunning_notice.txt.j2`` and ``dunning_notice.html.j2``
(docs/payments.md#dunning). The payment stage passes the facts in; ``reports`` does not
import ``payments`` (they are siblings), so the facts are a protocol here."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import NamedTuple, Protocol

from billing.money import format_money
from reports.document_view import long_day
from reports.render import environment


class NoticeFacts(Protocol):
    @property
    def kind(self) -> str: ...  # reminder | past_due
    @property
    def number(self) -> str: ...
    @property
    def customer_name(self) -> str: ...
    @property
    def seller_name(self) -> str: ...
    @property
    def currency(self) -> str: ...
    @property
    def remaining(self) -> Decimal: ...
    @property
    def due_date(self) -> date: ...
    @property
    def retry_on(self) -> date | None: ...  # the payment retry the notice announces
    @property
    def pay_url(self) -> str | None: ...
    @property
    def instructions(self) -> str | None: ...


class RenderedNotice(NamedTuple):
    subject: str
    text: str
    html: str


def subject(facts: NoticeFacts) -> str:
    amount, due = format_money(facts.remaining, facts.currency), long_day(facts.due_date)
    if facts.kind == "reminder":
        return f"Reminder: invoice {facts.number} for {amount} is due on {due}"
    return f"Past due: invoice {facts.number}, {amount} was due on {due}"


def render_notice(facts: NoticeFacts) -> RenderedNotice:
    context = {"n": facts, "amount": format_money(facts.remaining, facts.currency),
               "due": long_day(facts.due_date),
               "retry": long_day(facts.retry_on) if facts.retry_on else None}
    env = environment()
    return RenderedNotice(subject(facts),
                          env.get_template("dunning_notice.txt.j2").render(context),
                          env.get_template("dunning_notice.html.j2").render(context))
