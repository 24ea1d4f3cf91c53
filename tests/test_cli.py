import csv
import importlib
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import pytest
from click.testing import CliRunner

from cli.main import COMMANDS, main
from invoicing.credit_grants import read_grants
from storage.lake import Lake

TIERED = {"model_type": "tiered", "tiered_config": {"tiers": [
    {"first_unit": 0, "last_unit": 10, "unit_amount": "0.50"},
    {"first_unit": 10, "last_unit": None, "unit_amount": "0.10"}]}}


def run(*args):
    # A wide terminal, so that table cells are not wrapped.
    return CliRunner(env={"COLUMNS": "200"}).invoke(main, list(args), catch_exceptions=False)


def rows(output):
    """Table rows as lists of stripped cells."""
    return [[cell.strip() for cell in line.split("│")[1:-1]]
            for line in output.splitlines() if line.startswith("│")]


def test_price_prints_amount_and_tiers(tmp_path):
    (tmp_path / "price.json").write_text(json.dumps(TIERED))
    result = run("price", "--price", str(tmp_path / "price.json"), "--quantity", "15")
    assert result.exit_code == 0
    assert "Amount: $5.50" in result.output
    assert rows(result.output) == [["-", "1", "0", "10", "10", "0.5", "5"],
                                   ["-", "2", "10", "-", "5", "0.1", "0.5"]]


def test_price_with_grouped_usage(tmp_path):
    grouped = {"model_type": "grouped_allocation", "grouped_allocation_config": {
        "grouping_key": "region", "allocation": "100", "overage_unit_rate": "0.02"}}
    (tmp_path / "price.json").write_text(json.dumps(grouped))
    (tmp_path / "usage.json").write_text(json.dumps([
        {"group": {"region": "us"}, "quantity": 150}, {"group": {"region": "eu"}, "quantity": 80}]))
    result = run("price", "--price", str(tmp_path / "price.json"),
                 "--usage", str(tmp_path / "usage.json"))
    assert "Amount: $1.00" in result.output


def test_price_reports_a_bad_price(tmp_path):
    (tmp_path / "price.json").write_text(json.dumps(
        {"model_type": "unit", "unit_config": {"unit_amount": 0.5}}))
    result = run("price", "--price", str(tmp_path / "price.json"), "--quantity", "1")
    assert result.exit_code == 1
    assert "unit_config.unit_amount: Value error, write decimal amounts as quoted" in result.output


def test_metrics_check_flags_bad_sql(tmp_path):
    (tmp_path / "metrics.yaml").write_text(
        "metrics:\n"
        "  - {id: ok, name: Ok, sql: \"SELECT count(*) FROM events\"}\n"
        "  - {id: bad, name: Bad, sql: \"SELECT count(*) FROM read_csv('x')\"}\n")
    result = run("metrics", "check", "--catalog", str(tmp_path))
    assert result.exit_code == 1
    assert rows(result.output) == [
        ["ok", "ok", "yes", "yes", "yes"],
        ["bad", "metrics.yaml:3: metrics[1].sql: line 1, column 22: a metric must select FROM "
                "events", "-", "-", "-"],
    ]


CALLS = "metrics: [{id: calls, name: Calls, sql: \"SELECT count(*) FROM events\"}]\n"


def data_folder(tmp_path, monkeypatch, catalog: str) -> list[str]:
    """A data folder with this catalog, customer c1 in its state store, an ephemeral
    Dagster instance, and an event window wide enough for the tests' 2026 events
    whenever they run."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("ORB_STATE_URL", raising=False)
    monkeypatch.setenv("ORB_MAX_EVENT_AGE_DAYS", "36500")
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "c.yaml").write_text(catalog)
    data = ["--data-dir", str(tmp_path)]
    assert run("customers", "add", "c1", "--name", "One", *data).exit_code == 0
    return data


def test_ingest_quarantine_replay_and_amend(tmp_path, monkeypatch):
    data = data_folder(tmp_path, monkeypatch, CALLS)
    events = [{"event_name": "api", "timestamp": "2026-11-20T10:00:00Z", "customer_id": c,
               "idempotency_key": k, "properties": {}} for c, k in [("c1", "k1"), ("c2", "k2")]]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in events))

    result = run("ingest", str(source), *data)
    assert result.exit_code == 0
    (batch,) = [r for r in rows(result.output) if r[0] == "in.jsonl"]
    assert batch[2:] == ["ingested", "2", "1", "1", "0", "0"]
    batch_id = batch[1]

    listed = rows(run("quarantine", "list", *data).output)
    assert listed == [[batch_id, "in.jsonl", "2", "unknown customer_id", "", "k2"]]

    assert run("customers", "add", "c2", "--name", "Two", *data).exit_code == 0
    replayed = rows(run("quarantine", "replay", batch_id, *data).output)
    assert replayed[0][2:] == ["replayed", "2", "2", "0", "0", "0"]
    assert "nothing quarantined" in run("quarantine", "list", *data).output

    amended = run("amend", "--customer", "c1", "--start", "2026-11-20T00:00:00Z",
                  "--end", "2026-11-21T00:00:00Z", "--reason", "test traffic", *data)
    assert amended.exit_code == 0 and "no longer count" in amended.output
    bad = run("amend", "--customer", "c1", "--start", "2026-11-20T00:00:00",
              "--end", "2026-11-21T00:00:00Z", "--reason", "x", *data)
    assert bad.exit_code == 2 and "needs a UTC offset" in bad.output


def test_invoice_lifecycle_and_credits(tmp_path, monkeypatch):
    data = data_folder(tmp_path, monkeypatch, CALLS + (
        "plans: [{id: p, name: P, currency: USD, prices: [{id: p_calls, name: Calls, "
        "billable_metric_id: calls, model_type: unit, unit_config: {unit_amount: '2.00'}}]}]\n"))
    assert run("subscriptions", "create", "s1", "--customer", "c1", "--plan", "p",
               "--start", "2026-01-01", *data).exit_code == 0
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "oct.jsonl").write_text("".join(json.dumps(
        {"event_name": "api", "timestamp": f"2026-10-0{i}T10:00:00Z", "customer_id": "c1",
         "idempotency_key": f"k{i}", "properties": {}}) + "\n" for i in range(1, 6)))
    # 5 calls x 2.00 = 10.00; a 4.00 credit granted on Oct 1 pays part of it.
    assert run("credits", "grant", "--customer", "c1", "--amount", "4.00", "--currency", "USD",
               "--effective", "2026-10-01", "--cost-basis", "1", *data).exit_code == 0
    assert run("bill", "--period", "2026-10", *data).exit_code == 0

    listed = rows(run("invoices", "list", "--period", "2026-10", *data).output)
    assert listed == [["-", "invoice", "c1-20261101-USD", "c1", "2026-11-01", "2026-12-01",
                       "$6.00", "draft"]]
    issued = run("invoices", "issue", "--period", "2026-10", *data)
    assert "INV-000001" in issued.output
    assert (tmp_path / "reports" / "documents" / "INV-000001.pdf").read_bytes()[:5] == b"%PDF-"
    assert run("invoices", "pay", "INV-000001", "--note", "wire", *data).exit_code == 0
    refused = run("invoices", "void", "INV-000001", "--reason", "x", *data)
    assert refused.exit_code == 1 and "INV-000001 is paid" in refused.output
    assert [r[-1] for r in rows(run("invoices", "list", *data).output)] == ["paid"]

    ledger = rows(run("credits", "ledger", "--customer", "c1", *data).output)
    assert [(r[1], r[3], r[4], r[5]) for r in ledger] == [
        ("grant", "", "$4.00", "$4.00"), ("drawdown", "c1-20261101-USD", "-$4.00", "$0.00")]
    dry = run("rerate", "--period", "2026-10", "--dry-run", *data)
    assert "0 invoices change" in dry.output


PLAN_P = CALLS + (
    "plans: [{id: p, name: P, currency: USD, prices: [{id: p_calls, name: Calls, "
    "billable_metric_id: calls, model_type: unit, unit_config: {unit_amount: '2.00'}}]}]\n")
GRANT = {"--customer": "c1", "--amount": "4.00", "--currency": "USD", "--effective": "2026-10-01"}


@pytest.mark.parametrize(("changes", "message"), [
    ({"--amount": "1e30"}, "amount 1E+30 is too large: an amount must be below "
                           "1,000,000,000,000,000,000"),
    ({"--amount": "NaN"}, "amount NaN is not a finite number"),
    ({"--amount": "Infinity"}, "amount Infinity is not a finite number"),
    ({"--amount": "-5"}, "amount -5 must be a positive number"),
    ({"--amount": "4.001"}, "amount 4.001 has more than 2 decimal digit(s), the minor unit of "
                            "USD"),
    ({"--currency": "XXX"}, "currency: ISO 4217 code 'XXX' is not a currency of money"),
    ({"--currency": "XTS"}, "currency: ISO 4217 code 'XTS' is not a currency of money"),
    ({"--currency": "EUR"}, "currency EUR: customer 'c1' is billed in USD; a grant pays only "
                            "invoices in its currency"),
    ({"--customer": "c2"}, "customer 'c2' has no subscription, so no currency a grant of USD "
                           "could pay in"),
    ({"--customer": "c9"}, "unknown customer 'c9'"),
    ({"--cost-basis": "NaN"}, "cost_basis NaN must be a number, zero or more"),
    ({"--cost-basis": "0.0000000001"}, "cost_basis 1E-10 does not fit DECIMAL(38, 9)"),
    # every problem at once
    ({"--amount": "NaN", "--currency": "xxx", "--expires": "2026-09-30"},
     "currency: ISO 4217 code 'XXX' is not a currency of money; amount NaN is not a finite "
     "number; expiry 2026-09-30 must be after effective date 2026-10-01"),
])
def test_a_bad_grant_is_refused_with_every_problem_and_nothing_written(tmp_path, monkeypatch,
                                                                       changes, message):
    data = data_folder(tmp_path, monkeypatch, PLAN_P)
    assert run("customers", "add", "c2", "--name", "Two", *data).exit_code == 0
    assert run("subscriptions", "create", "s1", "--customer", "c1", "--plan", "p",
               "--start", "2026-01-01", *data).exit_code == 0
    options = [part for item in {**GRANT, **changes}.items() for part in item]
    result = run("credits", "grant", *options, *data)  # an exception would be raised here
    assert (result.exit_code, result.output) == (1, f"Error: credit grant refused: {message}\n")
    assert not Lake(tmp_path).table_dir("credit_grants").exists()


def test_a_grant_takes_its_currency_in_any_case(tmp_path, monkeypatch):
    data = data_folder(tmp_path, monkeypatch, PLAN_P)
    assert run("subscriptions", "create", "s1", "--customer", "c1", "--plan", "p",
               "--start", "2026-01-01", *data).exit_code == 0
    bad_day = run("credits", "grant", "--customer", "c1", "--amount", "4", "--currency", "USD",
                  "--effective", "2026-10-32", *data)
    assert bad_day.exit_code == 2 and "expected YYYY-MM-DD, got '2026-10-32'" in bad_day.output
    granted = run("credits", "grant", "--customer", "c1", "--amount", "4.0", "--currency", "usd",
                  "--effective", "2026-10-01", *data)
    assert granted.exit_code == 0 and "Granted $4.00 to c1" in granted.output
    ledger = rows(run("credits", "ledger", "--customer", "c1", *data).output)
    assert [(r[0], r[1], r[4]) for r in ledger] == [("2026-10-01", "grant", "$4.00")]
    (grant,) = read_grants(Lake(tmp_path))
    assert (grant.currency, grant.amount) == ("USD", Decimal("4.00"))


def customer_off_utc(data: list[str]) -> tuple[datetime, str, bool]:
    """Customer c2 in a zone whose day is not UTC's now and does not change during a test:
    UTC+14 from 10:00 UTC on (its day began at 10:00 UTC), else UTC-11 (its day begins at
    11:00 UTC). Returns now, the zone, and whether it is east of UTC."""
    now = datetime.now(UTC)
    east = now.hour >= 10
    zone = "Pacific/Kiritimati" if east else "Pacific/Pago_Pago"
    assert run("customers", "add", "c2", "--name", "Two", "--timezone", zone,
               *data).exit_code == 0
    return now, zone, east


def test_a_ledger_entry_is_dated_the_customers_today_by_default(tmp_path, monkeypatch):
    """As the API dates it (customer_off_utc)."""
    data = data_folder(tmp_path, monkeypatch, PLAN_P)
    now, zone, _ = customer_off_utc(data)
    assert run("subscriptions", "create", "s2", "--customer", "c2", "--plan", "p",
               "--start", "2026-01-01", *data).exit_code == 0
    assert run("credits", "grant", "--customer", "c2", "--amount", "4", "--currency", "USD",
               "--effective", "2026-01-01", *data).exit_code == 0
    assert run("credits", "decrement", "--customer", "c2", "--amount", "1", "--currency",
               "USD", *data).exit_code == 0
    day = now.astimezone(ZoneInfo(zone)).date()
    assert day != now.date()  # which the entry was dated before
    ledger = rows(run("credits", "ledger", "--customer", "c2", *data).output)
    assert [(r[0], r[1]) for r in ledger] == [("2026-01-01", "grant"),
                                              (day.isoformat(), "decrement")]


def test_open_receivables_are_past_due_by_the_customers_today(tmp_path, monkeypatch):
    """A due date is a day of the customer's calendar (customer_off_utc). East of UTC
    (UTC+14) the customer's today is UTC's tomorrow, so an invoice due UTC's today is past
    due there; west (UTC-11) it is UTC's yesterday, and one due then is not yet."""
    data = data_folder(tmp_path, monkeypatch, PLAN_P)
    now, zone, east = customer_off_utc(data)
    due = now.date() if east else now.astimezone(ZoneInfo(zone)).date()
    created = run("invoices", "create", "--customer", "c2", "--currency", "USD", "--date",
                  due.isoformat(), "--line", "Setup,1,5.00", "--net-terms", "0", "--issue",
                  *data)
    assert created.exit_code == 0, created.output
    (listed,) = run("payments", "open", *data).output.splitlines()
    assert listed.split()[:4] == ["INV-000001", "c2", "due", due.isoformat()]
    assert listed.endswith("past due") == east
    # a day given is every customer's
    (listed,) = run("payments", "open", "--as-of", str(due + timedelta(days=1)),
                    *data).output.splitlines()
    assert listed.endswith("past due")


# -- the CLI for scripts: one lake for the CLI and Dagster, --format, clear errors ----------

ORB = str(Path(sys.executable).with_name("orb"))
HEAVY = ("dagster", "reportlab", "duckdb", "matplotlib", "pyspark")


def orb_with_env(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`orb` in a fresh process that sees only ``env`` (and PATH and HOME)."""
    return subprocess.run([ORB, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], **env})


def test_cli_and_dagster_see_the_lake_orb_data_dir_names(tmp_path, monkeypatch):
    lake = tmp_path / "lake"
    lake.mkdir()
    data = data_folder(lake, monkeypatch, PLAN_P)
    assert run("subscriptions", "create", "s1", "--customer", "c1", "--plan", "p",
               "--start", "2026-01-01", *data).exit_code == 0
    (lake / "landing").mkdir()
    (lake / "landing" / "oct.jsonl").write_text("".join(json.dumps(
        {"event_name": "api", "timestamp": f"2026-10-0{i}T10:00:00Z", "customer_id": "c1",
         "idempotency_key": f"k{i}", "properties": {}}) + "\n" for i in range(1, 4)))
    elsewhere = tmp_path / "elsewhere"  # no ./data here: only ORB_DATA_DIR names the lake
    elsewhere.mkdir()
    env = {"ORB_DATA_DIR": str(lake), "ORB_MAX_EVENT_AGE_DAYS": "36500"}
    billed = orb_with_env(env, "bill", "--period", "2026-10", cwd=elsewhere)
    assert billed.returncode == 0, billed.stderr
    listed = orb_with_env(env, "invoices", "list", "--period", "2026-10", "--format", "json",
                          cwd=elsewhere)
    # 3 calls x 2.00
    assert json.loads(listed.stdout) == [{
        "number": None, "type": "invoice", "invoice": "c1-20261101-USD", "customer": "c1",
        "date": "2026-11-01", "due": "2026-12-01", "total": "6.00", "currency": "USD",
        "status": "draft"}]
    dagster = subprocess.run(
        [sys.executable, "-c", "from pipelines.definitions import defs; "
                               "print(defs.resources['store'].data_dir)"],
        cwd=elsewhere, capture_output=True, text=True, timeout=300,
        env={"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], **env})
    assert dagster.stdout.strip() == str(lake)
    assert not (elsewhere / "data").exists()


def test_listings_in_every_format_and_clear_errors(tmp_path, monkeypatch):
    data = data_folder(tmp_path, monkeypatch, PLAN_P)
    assert run("subscriptions", "create", "s1", "--customer", "c1", "--plan", "p",
               "--start", "2026-01-01", *data).exit_code == 0
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "oct.jsonl").write_text("".join(json.dumps(
        {"event_name": "api", "timestamp": f"2026-10-0{i}T10:00:00Z", "customer_id": "c1",
         "idempotency_key": f"k{i}", "properties": {}}) + "\n" for i in range(1, 8)))
    assert run("credits", "grant", "--customer", "c1", "--amount", "2.50", "--currency", "USD",
               "--effective", "2026-10-01", *data).exit_code == 0
    # --month is --period's old, hidden name
    billed = run("bill", "--month", "2026-10", *data)
    assert billed.exit_code == 0
    assert billed.output.startswith("Warning: --month is deprecated; use --period\n")
    assert "--month" not in run("bill", "--help").output
    missing = run("bill", *data)
    assert (missing.exit_code, missing.output.splitlines()[-1]) == (
        2, "Error: Missing option '--period'.")
    assert "--month" not in run("invoices", "list", "--help").output

    # 7 calls x 2.00 = 14.00, less the 2.50 credit
    as_csv = run("invoices", "list", "--period", "2026-10", "--format", "csv", *data).output
    assert list(csv.reader(io.StringIO(as_csv))) == [
        ["number", "type", "invoice", "customer", "date", "due", "total", "currency", "status"],
        ["", "invoice", "c1-20261101-USD", "c1", "2026-11-01", "2026-12-01", "11.50", "USD",
         "draft"]]
    ledger = json.loads(run("credits", "ledger", "--customer", "c1", "--format", "json",
                            *data).output)
    assert [(e["entry_date"], e["entry_type"], e["invoice_id"], e["amount"],
             e["grant_balance"], e["currency"]) for e in ledger] == [
        ("2026-10-01", "grant", None, "2.50", "2.50", "USD"),
        ("2026-11-01", "drawdown", "c1-20261101-USD", "-2.50", "0.00", "USD")]
    customers = json.loads(run("customers", "list", "--format", "json", *data).output)
    assert [(c["customer_id"], c["name"], c["net_terms"]) for c in customers] == [
        ("c1", "One", 30)]
    subs = list(csv.DictReader(io.StringIO(run("subscriptions", "list", "--format", "csv",
                                               *data).output)))
    assert [(s["subscription_id"], s["customer_id"], s["plans"]) for s in subs] == [
        ("s1", "c1", "p from 2026-01-01")]
    assert json.loads(run("quarantine", "list", "--format", "json", *data).output) == []

    # piped into a narrow terminal, a table still shows every id and amount whole
    narrow = CliRunner(env={"COLUMNS": "30"}).invoke(
        main, ["invoices", "list", "--period", "2026-10", *data], catch_exceptions=False)
    assert rows(narrow.output) == [["-", "invoice", "c1-20261101-USD", "c1", "2026-11-01",
                                    "2026-12-01", "$11.50", "draft"]]

    def refused(*args: str) -> tuple[int, str]:
        result = run(*args)
        return result.exit_code, result.output

    folder = str(tmp_path)
    assert refused("invoices", "list", "--customer", "c9", *data) == (
        1, f"Error: unknown customer 'c9' in {folder}\n")
    assert refused("credits", "ledger", "--customer", "c9", *data) == (
        1, f"Error: unknown customer 'c9' in {folder}\n")
    assert refused("subscriptions", "list", "--customer", "c9", *data) == (
        1, "Error: unknown customer 'c9'\n")
    assert refused("invoices", "pay", "INV-000042", *data) == (
        1, "Error: no issued document 'INV-000042'\n")
    assert refused("invoices", "void", "INV-000042", "--reason", "x", *data) == (
        1, "Error: no issued document 'INV-000042'\n")
    assert refused("rerate", "--period", "2024-01", *data) == (
        1, f"Error: 2024-01 is before the first billed month in {folder}, 2026-10: there is "
           "nothing to re-rate\n")


@pytest.mark.parametrize("args", [
    ("invoices", "list"), ("credits", "ledger", "--customer", "c1"),
    ("rerate", "--period", "2026-10"), ("quarantine", "list"), ("bill", "--period", "2026-10"),
    ("invoices", "issue", "--period", "2026-10"), ("invoices", "pay", "INV-000001"),
])
def test_a_missing_lake_is_named_whether_by_option_or_orb_data_dir(tmp_path, args):
    nope = tmp_path / "nope"
    message = (f"Error: no data folder at {nope}: give --data-dir or set ORB_DATA_DIR to a "
               "folder that holds a lake\n")
    by_option = run(*args, "--data-dir", str(nope))
    assert (by_option.exit_code, by_option.output) == (1, message)
    by_env = CliRunner(env={"ORB_DATA_DIR": str(nope)}).invoke(main, list(args))
    assert (by_env.exit_code, by_env.output) == (1, message)


def test_rerate_before_anything_is_billed_says_so(tmp_path, monkeypatch):
    data = data_folder(tmp_path, monkeypatch, PLAN_P)
    result = run("rerate", "--period", "2026-10", *data)
    assert (result.exit_code, result.output) == (
        1, f"Error: nothing to re-rate: no month is billed in {tmp_path} yet "
           "(orb bill --period YYYY-MM)\n")


def test_help_and_version_import_nothing_heavy():
    probe = ("import sys, cli.main\n"
             "for args in (['--help'], ['--version']):\n"
             "    try:\n"
             "        cli.main.main(args)\n"
             "    except SystemExit:\n"
             "        pass\n"
             f"print([m for m in {HEAVY!r} if m in sys.modules])\n")
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           timeout=60, check=True).stdout
    assert "orb, version 0.1.0" in shown and "  rerate " in shown
    assert shown.endswith("[]\n")


def test_version_is_the_installed_distributions():
    result = run("--version")
    assert (result.exit_code, result.output) == (
        0, f"orb, version {metadata.version('orb-on-duckdb')}\n")


def test_every_registered_command_loads_with_the_help_it_lists():
    for name, (target, short_help) in COMMANDS.items():
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command), name
        assert command.name == name, name
        assert short_help.endswith("."), name


def test_a_data_folder_without_a_catalog_is_named_not_a_traceback(tmp_path):
    result = run("credits", "ledger", "--customer", "c1", "--data-dir", str(tmp_path))
    assert (result.exit_code, result.output) == (
        1, f"Error: invalid catalog:\n  {tmp_path}/catalog: no *.yaml catalog files found\n")


def test_credit_entries_by_hand_and_the_run_that_reads_them(tmp_path, monkeypatch):
    """5 calls x 2.00 = 10.00 on the invoice dated 1 Nov. g1 10.00 from 1 Oct, less a 3.00
    decrement on 5 Oct: it pays 7.00. g2 5.00 from 2 Oct, voided on 10 Oct, pays nothing:
    total 10.00 - 7.00 = 3.00 (without the void g2 would pay the 3.00 too)."""
    data = data_folder(tmp_path, monkeypatch, PLAN_P)
    assert run("subscriptions", "create", "s1", "--customer", "c1", "--plan", "p",
               "--start", "2026-01-01", *data).exit_code == 0
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "oct.jsonl").write_text("".join(json.dumps(
        {"event_name": "api", "timestamp": f"2026-10-0{i}T10:00:00Z", "customer_id": "c1",
         "idempotency_key": f"k{i}", "properties": {}}) + "\n" for i in range(1, 6)))
    for effective, amount in (("2026-10-01", "10.00"), ("2026-10-02", "5.00")):
        assert run("credits", "grant", "--customer", "c1", "--amount", amount, "--currency",
                   "USD", "--effective", effective, *data).exit_code == 0
    g1, g2 = sorted(read_grants(Lake(tmp_path)), key=lambda g: g.effective_date)
    too_much = run("credits", "decrement", "--customer", "c1", "--amount", "16", "--currency",
                   "USD", "--date", "2026-10-05", *data)
    assert (too_much.exit_code, too_much.output) == (
        1, "Error: credit ledger entry refused: amount 16.00 is more than the 15.00 the "
           "customer's grants in effect on 2026-10-05 hold\n")
    # g1 has no expiry and g2 neither: g1 is drawn first (earlier effective date)
    taken = run("credits", "decrement", "--customer", "c1", "--amount", "3", "--currency",
                "USD", "--date", "2026-10-05", "--actor", "ops", *data)
    assert taken.exit_code == 0 and f"of {g1.grant_id} on 2026-10-05: -$3.00" in taken.output
    assert run("credits", "void", "--customer", "c1", "--grant", g2.grant_id, "--reason",
               "refund", "--date", "2026-10-10", *data).exit_code == 0
    early = run("credits", "expire", "--customer", "c1", "--grant", g1.grant_id, "--expires",
                "2026-09-30", *data)
    assert early.exit_code == 1 and "must be after the block's effective date" in early.output
    assert run("bill", "--period", "2026-10", *data).exit_code == 0
    assert [r[6] for r in rows(run("invoices", "list", "--period", "2026-10",
                                    *data).output)] == ["$3.00"]
    ledger = json.loads(run("credits", "ledger", "--customer", "c1", "--format", "json",
                            *data).output)
    assert [(e["entry_date"], e["entry_type"], e["grant_id"], e["amount"],
             e["grant_balance"]) for e in ledger] == [
        ("2026-10-01", "grant", g1.grant_id, "10.00", "10.00"),
        ("2026-10-02", "grant", g2.grant_id, "5.00", "5.00"),
        ("2026-10-05", "decrement", g1.grant_id, "-3.00", "7.00"),
        ("2026-10-10", "void", g2.grant_id, "-5.00", "0.00"),
        ("2026-11-01", "drawdown", g1.grant_id, "-7.00", "0.00")]


def test_an_amendment_gives_back_what_a_decrement_took(tmp_path, monkeypatch):
    """g1 10.00 from 1 Oct; a 4.00 decrement on 5 Oct leaves 6.00; an amendment of 1.50 on
    6 Oct gives back 7.50; 2.50 more at most can be given back (4.00 - 1.50), so 3.00 is
    refused. October: 5 calls x 2.00 = 10.00, g1 pays its 7.50: total 2.50."""
    data = data_folder(tmp_path, monkeypatch, PLAN_P)
    assert run("subscriptions", "create", "s1", "--customer", "c1", "--plan", "p",
               "--start", "2026-01-01", *data).exit_code == 0
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "oct.jsonl").write_text("".join(json.dumps(
        {"event_name": "api", "timestamp": f"2026-10-0{i}T10:00:00Z", "customer_id": "c1",
         "idempotency_key": f"k{i}", "properties": {}}) + "\n" for i in range(1, 6)))
    assert run("credits", "grant", "--customer", "c1", "--amount", "10.00", "--currency",
               "USD", "--effective", "2026-10-01", *data).exit_code == 0
    (g1,) = read_grants(Lake(tmp_path))
    assert run("credits", "decrement", "--customer", "c1", "--amount", "4", "--currency",
               "USD", "--date", "2026-10-05", *data).exit_code == 0
    back = run("credits", "amend", "--customer", "c1", "--grant", g1.grant_id, "--amount",
               "1.50", "--date", "2026-10-06", *data)
    assert back.exit_code == 0 and f"of {g1.grant_id} on 2026-10-06: $1.50" in back.output
    too_much = run("credits", "amend", "--customer", "c1", "--grant", g1.grant_id,
                   "--amount", "3", *data)
    assert (too_much.exit_code, too_much.output) == (
        1, f"Error: credit ledger entry refused: amount: 3.00 is more than the 2.50 taken "
           f"from grant {g1.grant_id!r} and not given back\n")
    negative = run("credits", "amend", "--customer", "c1", "--grant", g1.grant_id,
                   "--amount", "-1", *data)
    assert (negative.exit_code, negative.output) == (
        1, "Error: credit ledger entry refused: amount -1 must be a positive number\n")
    assert run("bill", "--period", "2026-10", *data).exit_code == 0
    assert [r[6] for r in rows(run("invoices", "list", "--period", "2026-10",
                                    *data).output)] == ["$2.50"]
    ledger = json.loads(run("credits", "ledger", "--customer", "c1", "--format", "json",
                            *data).output)
    assert [(e["entry_date"], e["entry_type"], e["amount"], e["grant_balance"])
            for e in ledger] == [
        ("2026-10-01", "grant", "10.00", "10.00"),
        ("2026-10-05", "decrement", "-4.00", "6.00"),
        ("2026-10-06", "amendment", "1.50", "7.50"),
        ("2026-11-01", "drawdown", "-7.50", "0.00")]
