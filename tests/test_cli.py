import json
from decimal import Decimal

import pytest
from click.testing import CliRunner

from cli.main import main
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
    assert run("bill", "--month", "2026-10", *data).exit_code == 0

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
