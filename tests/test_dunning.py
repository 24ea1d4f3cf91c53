"""Dunning over SMTP: reminders and past-due notices received by a real SMTP server
(aiosmtpd on loopback), in order, once each, stopped by payment, with the payment retry
each past-due notice announces, and crash-safe (docs/payments.md#dunning).

The lake is tests/test_payments.py's: acme's November fee, 100.00 USD, INV-000001, dated
Nov 1 2026 and due Dec 1 2026 (net 30). The default schedule -3, +1, +7, +14 days puts
the reminder on Nov 28 and the past-due notices on Dec 2, Dec 8 and Dec 15, each from
the customer's local midnight.
"""

from __future__ import annotations

import email
import email.policy
import json
import shutil
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import parseaddr

import dagster as dg
import hypothesis
import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from orb.types.invoice_dunning_schedule_step_executed_webhook_event import (
    PropertiesDunningStep,
)

from assets.resources import OrbStore, PaymentsConfig
from billing.catalog import Catalog
from billing.catalog.parties import Seller
from cli.main import main
from invoicing import documents
from payments import notice_records
from payments.dunning import DunningSummary, due_step, run_dunning, step_to_send
from payments.dunning_schedule import Step, parse_steps
from payments.run import run_payments
from payments.smtp import SmtpSettings
from reports.notices import render_notice
from state import StateStore
from storage.lake import Lake
from storage.settings import Settings
from tests.servers import free_port
from tests.test_payments import ISSUED, Crash, FakeGateway, issued_lake, statuses
from webhooks import lake_facts

ACME = {"acme": ("USD", "100.00")}
SELLER = Seller(name="Example Cloud, Inc.",
                pay_link="https://pay.example.com/invoices/{number}",
                payment_instructions="Wire to Example Cloud, account 000123456789.")
FROM = "Example Cloud Billing <billing@example.com>"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Inbox:
    """What the SMTP server received: (envelope recipients, parsed message)."""

    def __init__(self) -> None:
        self.mails: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.mails.append((list(envelope.rcpt_tos), message))
        return "250 OK"

    def subjects(self) -> list[str]:
        return [m["Subject"] for _, m in self.mails]


@pytest.fixture(scope="module")
def smtp_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


@pytest.fixture
def smtp(smtp_server):
    controller, inbox = smtp_server
    inbox.mails.clear()
    return SmtpSettings(host="127.0.0.1", port=controller.port, sender=FROM), inbox


@pytest.fixture(scope="module")
def acme_template(tmp_path_factory):
    """acme's issued invoice, billed once per module; each test copies it."""
    root = tmp_path_factory.mktemp("acme")
    return root, issued_lake(root, ACME)[1]


@pytest.fixture
def acme(acme_template, tmp_path):
    template, catalog = acme_template
    shutil.copytree(template, tmp_path / "data")
    return Lake(tmp_path / "data"), catalog


def dun(lake: Lake, catalog: Catalog, settings: SmtpSettings, now: datetime,
        processor: str = "manual") -> DunningSummary:
    return run_dunning(lake, now, catalog, SELLER, settings, render_notice,
                       processor=processor)


def text_of(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")  # as sent


def test_reminder_then_past_due_notices_in_order_with_retries_until_paid(acme, smtp):
    settings, inbox = smtp
    lake, catalog = acme
    gateway = FakeGateway(declines={"acme"})
    # Attempts on Nov 2, 3, 6 and 13 (the retry schedule: +1, +3, +7 days) all declined:
    # out of retries, the invoice waits for a human.
    for day in (ISSUED, ISSUED + timedelta(days=1), ISSUED + timedelta(days=4),
                ISSUED + timedelta(days=11)):
        run_payments(lake, gateway, day, catalog)
    assert run_payments(lake, gateway, at("2026-11-20T06:00"), catalog).exhausted == [
        "INV-000001"]

    assert dun(lake, catalog, settings, at("2026-11-27T12:00"), "fake").sent == []  # Nov 27
    summary = dun(lake, catalog, settings, at("2026-11-28T12:00"), "fake")  # due - 3 days
    assert (summary.sent, summary.retries) == ([("INV-000001", "d-3")], {})
    assert dun(lake, catalog, settings, at("2026-11-28T18:00"), "fake").sent == []  # same day

    summary = dun(lake, catalog, settings, at("2026-12-02T05:00"), "fake")  # due + 1 day
    assert summary.sent == [("INV-000001", "d+1")]
    assert summary.retries == {"INV-000001": at("2026-12-02T05:00")}
    # the payment run an hour later makes the retry the notice announced: a 5th attempt
    run_payments(lake, gateway, at("2026-12-02T06:00"), catalog)
    assert gateway.calls.count("orb:INV-000001:collect:5") == 1
    run_payments(lake, gateway, at("2026-12-03T06:00"), catalog)  # no notice: no attempt
    assert "orb:INV-000001:collect:6" not in gateway.calls

    assert dun(lake, catalog, settings, at("2026-12-08T05:00"), "fake").sent == [
        ("INV-000001", "d+7")]
    gateway.declines.clear()  # the customer fixed the card: the announced retry pays
    assert run_payments(lake, gateway, at("2026-12-08T06:00"), catalog).paid == ["INV-000001"]
    assert statuses(lake) == {"INV-000001": "paid"}
    # paid: the +14 days notice (Dec 15) is never sent
    assert dun(lake, catalog, settings, at("2026-12-15T05:00"), "fake").sent == []
    assert dun(lake, catalog, settings, at("2027-01-15T05:00"), "fake").sent == []

    assert inbox.subjects() == [
        "Reminder: invoice INV-000001 for $100.00 is due on 1 December 2026",
        "Past due: invoice INV-000001, $100.00 was due on 1 December 2026",
        "Past due: invoice INV-000001, $100.00 was due on 1 December 2026"]
    assert [rcpt for rcpt, _ in inbox.mails] == [["billing@acme.example"]] * 3
    assert [m["Message-ID"] for _, m in inbox.mails] == [
        "<orb.INV-000001.d-3@example.com>", "<orb.INV-000001.d+1@example.com>",
        "<orb.INV-000001.d+7@example.com>"]
    reminder, first, second = (m for _, m in inbox.mails)
    assert (reminder["From"], reminder["To"]) == (FROM, "billing@acme.example")
    assert text_of(reminder) == (
        "Hello Acme,\n\n"
        "Invoice INV-000001 from Example Cloud, Inc. is due on 1 December 2026.\n"
        "Amount remaining: $100.00\n\n"
        "Pay online: https://pay.example.com/invoices/INV-000001\n\n"
        "Wire to Example Cloud, account 000123456789.\n\n"
        "If you have paid already, thank you: please disregard this message.\n")
    assert "was due on 1 December 2026 and is not paid yet" in text_of(first)
    assert ("We will try to collect it again from your payment method on file on "
            "2 December 2026.") in text_of(first)
    assert "on 8 December 2026." in text_of(second)
    html = reminder.get_body(("html",)).get_content()
    assert '<a href="https://pay.example.com/invoices/INV-000001">' in html
    assert "<td class=\"num\">$100.00</td>" in html

    rows = [(r["step"], r["kind"], r["state"], r["retry_at"], r["remaining"])
            for r in notice_records.listing(lake)]
    assert rows == [("d-3", "reminder", "sent", None, 100),
                    ("d+1", "past_due", "sent", at("2026-12-02T05:00"), 100),
                    ("d+7", "past_due", "sent", at("2026-12-08T05:00"), 100)]

    # each notice sent is Orb's invoice.dunning_schedule_step_executed, once
    with StateStore.open(Settings(data_dir=str(lake.root)).state_store_url) as store:
        told = [e for e in lake_facts.lake_events(lake, store.engine)
                if e.type == "invoice.dunning_schedule_step_executed"]
    steps = [PropertiesDunningStep.model_validate(e.payload["properties"]["dunning_step"])
             for e in told]
    assert [(e.created_at, s.actions, s.status) for e, s in zip(told, steps, strict=True)] == [
        (at("2026-11-28T12:00"), ["email"], "executed"),
        (at("2026-12-02T05:00"), ["email", "retry_payment"], "executed"),
        (at("2026-12-08T05:00"), ["email", "retry_payment"], "executed")]
    assert told[0].payload["invoice"]["invoice_number"] == "INV-000001"


def test_a_late_first_run_sends_only_the_latest_due_step(acme, smtp):
    settings, inbox = smtp
    lake, catalog = acme
    # Dec 9: the reminder (Nov 28) and the +1 notice (Dec 2) were never sent
    summary = dun(lake, catalog, settings, at("2026-12-09T05:00"))
    assert (summary.sent, summary.missed) == ([("INV-000001", "d+7")], {
        "INV-000001": ["d-3", "d+1"]})
    # manual processor, no failed attempt: no retry to announce, none said
    assert summary.retries == {}
    assert "try to collect" not in text_of(inbox.mails[0][1])
    assert dun(lake, catalog, settings, at("2026-12-10T05:00")).sent == []
    assert len(inbox.mails) == 1


def test_steps_begin_at_the_customers_local_midnight(acme, smtp):
    settings, inbox = smtp
    lake, catalog = acme
    tokyo = catalog.model_copy(update={"customers": [
        c.model_copy(update={"timezone": "Asia/Tokyo"}) for c in catalog.customers]})
    tokyo = Catalog.model_validate(tokyo.model_dump())  # rebuild the lookups
    # Nov 28 00:00 in Tokyo (UTC+9) is Nov 27 15:00 UTC
    assert dun(lake, tokyo, settings, at("2026-11-27T14:59")).sent == []
    assert dun(lake, tokyo, settings, at("2026-11-27T15:00")).sent == [("INV-000001", "d-3")]


def test_void_or_paid_invoices_get_no_notice(tmp_path, smtp):
    settings, inbox = smtp
    lake, catalog = issued_lake(tmp_path, {"acme": ("USD", "100.00"),
                                           "kyoto": ("JPY", "15000")})
    documents.change_statuses(lake, [
        documents.StatusChange("INV-000001", "void", at("2026-11-10T00:00"), "wrong plan")],
        at("2026-11-10T00:00"))
    summary = dun(lake, catalog, settings, at("2026-12-02T00:00"))
    assert summary.sent == [("INV-000002", "d+1")]
    assert inbox.subjects() == ["Past due: invoice INV-000002, ¥15,000 was due on 1 December 2026"]
    documents.change_statuses(lake, [
        documents.StatusChange("INV-000002", "paid", at("2026-12-03T00:00"), "furikomi 42")],
        at("2026-12-03T00:00"))
    assert dun(lake, catalog, settings, at("2026-12-08T00:00")).sent == []


def test_a_crash_after_sending_resends_the_same_message_once(acme, smtp, monkeypatch):
    settings, inbox = smtp
    lake, catalog = acme
    write = notice_records.write

    def crash_once(lake_, **record):
        if record["phase"] == "sent":  # the mail went out; the process dies before this
            monkeypatch.setattr(notice_records, "write", write)
            raise Crash
        return write(lake_, **record)

    monkeypatch.setattr(notice_records, "write", crash_once)
    with pytest.raises(Crash):
        dun(lake, catalog, settings, at("2026-11-28T12:00"))
    assert len(inbox.mails) == 1
    assert [(r["step"], r["state"]) for r in notice_records.listing(lake)] == [
        ("d-3", "unconfirmed")]

    summary = dun(lake, catalog, settings, at("2026-11-28T13:00"))
    assert (summary.sent, summary.resent) == ([], [("INV-000001", "d-3")])
    first, again = (m for _, m in inbox.mails)
    # at least once: the duplicate is the same notice, recognisable by its Message-ID
    assert again["Message-ID"] == first["Message-ID"] == "<orb.INV-000001.d-3@example.com>"
    assert (again["Subject"], text_of(again)) == (first["Subject"], text_of(first))
    assert [(r["step"], r["state"]) for r in notice_records.listing(lake)] == [
        ("d-3", "sent")]
    assert dun(lake, catalog, settings, at("2026-11-28T14:00")).resent == []
    assert len(inbox.mails) == 2


def test_an_unreachable_server_loses_nothing(acme, smtp):
    settings, inbox = smtp
    lake, catalog = acme
    down = SmtpSettings(host="127.0.0.1", port=free_port(), sender=FROM)
    summary = dun(lake, catalog, down, at("2026-11-28T12:00"))
    assert summary.sent == [] and list(summary.errors) == ["INV-000001"]
    assert f"SMTP server 127.0.0.1:{down.port} did not take " \
           "<orb.INV-000001.d-3@example.com>" in summary.errors["INV-000001"]
    assert dun(lake, catalog, settings, at("2026-11-29T12:00")).resent == [
        ("INV-000001", "d-3")]
    assert inbox.subjects() == [
        "Reminder: invoice INV-000001 for $100.00 is due on 1 December 2026"]


def test_schedule_and_settings():
    assert [(s.name, s.kind) for s in parse_steps("14, -3,1,7")] == [
        ("d-3", "reminder"), ("d+1", "past_due"), ("d+7", "past_due"), ("d+14", "past_due")]
    assert parse_steps("0")[0].kind == "reminder"  # on the due date it is not late yet
    with pytest.raises(ValueError, match=r"ORB_DUNNING_STEPS='-3,x,1,1,400': 'x' is not a "
                       r"whole number of days; 1 is given twice; 400 is more than 365 days"):
        parse_steps("-3,x,1,1,400")
    steps = parse_steps("-3,1,7")
    assert due_step(steps, date(2026, 12, 1), date(2026, 11, 27)) is None
    assert due_step(steps, date(2026, 12, 1), date(2026, 12, 1)) == Step(-3)
    assert due_step(steps, date(2026, 12, 1), date(2027, 3, 1)) == Step(7)


@hypothesis.settings(max_examples=100, deadline=None)
@given(days=st.sets(st.integers(-30, 60), min_size=1, max_size=6),
       runs=st.lists(st.integers(-40, 90), max_size=12))
def test_each_step_at_most_once_in_order_and_the_last_due_never_lost(days, runs):
    """Runs on any days (relative to a due date, in time order, some skipped or repeated):
    what is sent is in schedule order, each step at most once, each on or after its day,
    one per run; a run after the last step's day has sent it."""
    steps, due = tuple(sorted(Step(d) for d in days)), date(2026, 12, 1)
    sent: list[Step] = []
    for offset in sorted(runs):
        today = due + timedelta(days=offset)
        step = step_to_send(steps, due, today, {s.days for s in sent}, {s.days for s in sent})
        if step is not None:
            assert step.day(due) <= today
            sent.append(step)
    assert sent == sorted(set(sent))  # strictly increasing: in order, each once
    if runs and max(runs) >= max(days):
        assert sent[-1] == steps[-1]


def test_smtp_settings_from_the_environment(monkeypatch):
    for name in ("ORB_SMTP_HOST", "ORB_SMTP_FROM", "ORB_SMTP_PORT", "ORB_SMTP_STARTTLS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="ORB_SMTP_HOST and ORB_SMTP_FROM must be set"):
        SmtpSettings.from_env()
    monkeypatch.setenv("ORB_SMTP_HOST", "smtp.example.com")
    monkeypatch.setenv("ORB_SMTP_FROM", FROM)
    monkeypatch.setenv("ORB_SMTP_STARTTLS", "true")
    monkeypatch.setenv("ORB_SMTP_USER", "billing")
    monkeypatch.setenv("ORB_SMTP_PASSWORD", "s3cret-value")
    settings = SmtpSettings.from_env()
    assert (settings.port, settings.starttls, settings.domain) == (587, True, "example.com")
    assert "s3cret-value" not in repr(settings)
    monkeypatch.setenv("ORB_SMTP_PORT", "99999")
    with pytest.raises(ValueError, match="ORB_SMTP_PORT must be a TCP port, not '99999'"):
        SmtpSettings.from_env()


def test_cli_and_dagster(acme, smtp, monkeypatch):
    from assets.dunning import dunning_notices

    settings, inbox = smtp
    data_dir = str(acme[0].root)
    monkeypatch.setenv("ORB_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("ORB_SMTP_PORT", str(settings.port))
    monkeypatch.setenv("ORB_SMTP_FROM", FROM)
    monkeypatch.delenv("ORB_DUNNING_STEPS", raising=False)
    cli = CliRunner(env={"COLUMNS": "200"})
    result = cli.invoke(main, ["dunning", "run", "--as-of", "2026-11-28T12:00:00Z",
                               "--data-dir", data_dir], catch_exceptions=False)
    assert result.exit_code == 0 and result.output == "INV-000001: d-3 sent\n"
    result = cli.invoke(main, ["dunning", "list", "--format", "json",
                               "--data-dir", data_dir], catch_exceptions=False)
    ((notice),) = json.loads(result.output)
    assert {k: notice[k] for k in ("number", "step", "remaining", "currency", "state")} == {
        "number": "INV-000001", "step": "d-3", "remaining": "100.00", "currency": "USD",
        "state": "sent"}
    assert parseaddr(inbox.mails[0][1]["To"])[1] == "billing@acme.example"
    table = cli.invoke(main, ["dunning", "list", "--data-dir", data_dir]).output
    assert "INV-000001" in table and "$100.00" in table and "2026-12-01" in table

    # the asset runs at the real time (any day after Dec 1 2026): the latest step due then
    today = datetime.now(UTC).date()
    latest = due_step(parse_steps("-3,1,7,14"), date(2026, 12, 1), today)
    result = dg.materialize([dunning_notices], resources={
        "store": OrbStore(data_dir=data_dir), "payment_processor": PaymentsConfig()})
    assert result.success
    (materialization,) = result.asset_materializations_for_node("dunning_notices")
    assert materialization.metadata["sent"].value == (latest != Step(-3))
    assert inbox.mails[-1][1]["X-Orb-Dunning-Step"] == latest.name
