"""Dunning: reminders and past-due notices by mail on a schedule, each announcing a
payment retry, until the invoice is paid (docs/payments.md#dunning).

One run at ``now``, under the lake's ``dunning`` lock, for each open receivable
(``payments.receivables.open_receivables``: issued, neither paid, void nor fully
credited, something remaining), in number order:

1. the *due step*: the latest step of the schedule whose day (due date + its days) has
   begun in the customer's time zone. Earlier steps the runs missed are not sent (one
   notice, not a burst); a step already sent, or followed by a later step's record, is
   not sent again;
2. a past-due step announces a payment retry at ``now`` when the invoice's last
   collection attempt failed and could be retried (``payments.run.retry_applies``): the
   payment run reads it from the notice record and attempts at its next run;
3. the notice's *intent* is recorded (recipient, subject, amount, retry, and a stable
   Message-ID ``<prefix>.<number>.<step>@<sender's domain>``), the mail is sent, and its
   *sent* record written. A crash between the two leaves an intent without sent record:
   the next run sends that notice again, same Message-ID and same content, if the invoice
   is still open and no later step is due: at least once, never silently lost, and a
   duplicate is recognisable by its Message-ID.

Each notice sent is an outbox event, Orb's ``invoice.dunning_schedule_step_executed``,
told from its ``sent`` record (``webhooks/lake_facts.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from email.message import EmailMessage
from email.utils import format_datetime

from billing import periods
from billing.catalog import Catalog
from billing.catalog.parties import Seller
from billing.money import quantize
from payments import notice_records
from payments.dunning_schedule import DEFAULT_STEPS, NoticeKind, Step, parse_steps
from payments.ledger import Ledger
from payments.receivables import Receivable, open_receivables
from payments.run import retry_applies
from payments.smtp import MailError, SmtpMailer, SmtpSettings
from storage.lake import Lake

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notice:
    """What one notice says (``reports.notices.NoticeFacts``)."""

    kind: NoticeKind
    step: Step
    number: str
    customer_id: str
    customer_name: str
    recipient: str
    seller_name: str
    currency: str
    remaining: Decimal
    due_date: date
    retry_at: datetime | None
    retry_on: date | None  # retry_at's day in the customer's time zone
    pay_url: str | None
    instructions: str | None
    message_id: str


# reports.notices.render_notice: (subject, text, html)
Renderer = Callable[[Notice], tuple[str, str, str]]


@dataclass
class DunningSummary:
    sent: list[tuple[str, str]] = field(default_factory=list)  # (number, step)
    resent: list[tuple[str, str]] = field(default_factory=list)  # after a crash
    missed: dict[str, list[str]] = field(default_factory=dict)  # earlier steps not sent
    retries: dict[str, datetime] = field(default_factory=dict)  # announced now
    no_recipient: list[str] = field(default_factory=list)  # customer without email
    errors: dict[str, str] = field(default_factory=dict)  # not sent: the next run tries


def due_step(steps: Sequence[Step], due_date: date, today: date) -> Step | None:
    """The latest step whose day has begun."""
    return max((s for s in steps if s.day(due_date) <= today), default=None)


def step_to_send(steps: Sequence[Step], due_date: date, today: date,
                 recorded: Collection[int], sent: Collection[int]) -> Step | None:
    """The due step, unless it was sent or a later step has a record (the schedule
    changed): each step once, in order. ``recorded``, ``sent``: days of the invoice's
    steps with an intent, with a sent record."""
    step = due_step(steps, due_date, today)
    if step is None or step.days in sent or any(days > step.days for days in recorded):
        return None
    return step


def run_dunning(lake: Lake, now: datetime, catalog: Catalog, seller: Seller,
                smtp: SmtpSettings, render: Renderer, *, processor: str = "manual",
                steps: Sequence[Step] = parse_steps(DEFAULT_STEPS),
                key_prefix: str = "orb") -> DunningSummary:
    with lake.lock("dunning"), SmtpMailer(smtp) as mailer:
        return _Run(lake, now, catalog, seller, smtp, render, processor, steps, key_prefix,
                    mailer).run()


@dataclass
class _Run:
    lake: Lake
    now: datetime
    catalog: Catalog
    seller: Seller
    smtp: SmtpSettings
    render: Renderer
    processor: str
    steps: Sequence[Step]
    prefix: str
    mailer: SmtpMailer
    summary: DunningSummary = field(default_factory=DunningSummary)

    def run(self) -> DunningSummary:
        records = notice_records.by_invoice(self.lake)
        ledger = Ledger.read(self.lake, self.processor)
        for receivable in sorted(open_receivables(self.lake, self.now.astimezone(UTC).date()),
                                 key=lambda r: r.number):
            if receivable.remaining > 0:
                self._invoice(receivable, records.get(receivable.number, {}), ledger)
        return self.summary

    def _invoice(self, receivable: Receivable, records: dict[tuple[str, str], dict],
                 ledger: Ledger) -> None:
        try:
            customer = self.catalog.customer(receivable.customer_id)
        except KeyError:
            self.summary.errors[receivable.number] = (
                f"customer {receivable.customer_id!r} is not in the state store")
            return
        step = step_to_send(self.steps, receivable.due_date,
                            periods.local_day(self.now, customer.timezone),
                            {r["days_from_due"] for r in records.values()},
                            {r["days_from_due"] for (_, phase), r in records.items()
                             if phase == "sent"})
        if step is None:
            return
        intent = records.get((step.name, "intent"))
        if intent is None:
            if not customer.email:
                self.summary.no_recipient.append(receivable.number)
                return
            retry_at = self.now if step.kind == "past_due" and self._retryable(
                ledger, receivable.number) else None
            notice = Notice(
                step.kind, step, receivable.number, customer.id, customer.name,
                customer.email, self.seller.name, receivable.currency,
                quantize(receivable.remaining, receivable.currency), receivable.due_date,
                retry_at, periods.local_day(retry_at, customer.timezone) if retry_at else None,
                self.seller.pay_url(receivable.number), self.seller.payment_instructions,
                f"<{self.prefix}.{receivable.number}.{step.name}@{self.smtp.domain}>")
            mail = self._mail(notice)
            self._record(notice, "intent", mail["Subject"])
            if retry_at is not None:
                self.summary.retries[notice.number] = retry_at
            missed = [s.name for s in self.steps if s < step and (s.name, "intent") not in
                      records]
            if missed:
                self.summary.missed[notice.number] = missed
            done = self.summary.sent
        else:  # recorded, fate unknown: the same notice again, same Message-ID
            retry_at = intent["retry_at"]
            notice = Notice(
                step.kind, step, receivable.number, customer.id, customer.name,
                intent["recipient"], self.seller.name, intent["currency"],
                quantize(intent["remaining"], intent["currency"]), intent["due_date"],
                retry_at, periods.local_day(retry_at, customer.timezone) if retry_at else None,
                self.seller.pay_url(receivable.number), self.seller.payment_instructions,
                intent["message_id"])
            mail = self._mail(notice)
            done = self.summary.resent
        try:
            self.mailer.send(mail)
        except MailError as exc:
            log.warning("%s: %s", notice.number, exc)
            self.summary.errors[notice.number] = str(exc)
            return
        self._record(notice, "sent", mail["Subject"])
        done.append((notice.number, step.name))

    def _retryable(self, ledger: Ledger, number: str) -> bool:
        attempts = ledger.attempts(number, "collect")
        if not attempts:
            return False
        last = max(attempts)
        return retry_applies(last, attempts[last].outcome)

    def _mail(self, notice: Notice) -> EmailMessage:
        subject, text, html = self.render(notice)
        mail = EmailMessage()
        mail["From"] = self.smtp.sender
        mail["To"] = notice.recipient
        mail["Subject"] = subject
        mail["Date"] = format_datetime(self.now.astimezone(UTC))
        mail["Message-ID"] = notice.message_id
        mail["X-Orb-Invoice"] = notice.number
        mail["X-Orb-Dunning-Step"] = notice.step.name
        mail.set_content(text)
        mail.add_alternative(html, subtype="html")
        return mail

    def _record(self, notice: Notice, phase: str, subject: str) -> None:
        notice_records.write(
            self.lake, number=notice.number, customer_id=notice.customer_id,
            step=notice.step.name, days_from_due=notice.step.days, kind=notice.kind,
            phase=phase, message_id=notice.message_id, at=self.now,
            recipient=notice.recipient, subject=subject, currency=notice.currency,
            remaining=notice.remaining, due_date=notice.due_date, retry_at=notice.retry_at)
