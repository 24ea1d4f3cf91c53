import json

from click.testing import CliRunner

from pipelines.cli import main

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
        ["bad", "line 1, column 22: a metric must select FROM events", "-", "-", "-"],
    ]


def test_ingest_quarantine_replay_and_amend(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    # the events below stay inside the accepted window whenever the tests run
    monkeypatch.setenv("ORB_MAX_EVENT_AGE_DAYS", "36500")
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "c.yaml").write_text(
        "metrics: [{id: calls, name: Calls, sql: \"SELECT count(*) FROM events\"}]\n"
        "customers: [{id: c1, name: One}]\n")
    events = [{"event_name": "api", "timestamp": "2026-11-20T10:00:00Z", "customer_id": c,
               "idempotency_key": k, "properties": {}} for c, k in [("c1", "k1"), ("c2", "k2")]]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in events))
    data = ["--data-dir", str(tmp_path)]

    result = run("ingest", str(source), *data)
    assert result.exit_code == 0
    (batch,) = [r for r in rows(result.output) if r[0] == "in.jsonl"]
    assert batch[2:] == ["ingested", "2", "1", "1", "0", "0"]
    batch_id = batch[1]

    listed = rows(run("quarantine", "list", *data).output)
    assert listed == [[batch_id, "in.jsonl", "2", "unknown customer_id", "", "k2"]]

    (tmp_path / "catalog" / "c.yaml").write_text(
        (tmp_path / "catalog" / "c.yaml").read_text().replace(
            "customers: [{id: c1, name: One}]", "customers: [{id: c1, name: One}, "
                                                "{id: c2, name: Two}]"))
    replayed = rows(run("quarantine", "replay", batch_id, *data).output)
    assert replayed[0][2:] == ["replayed", "2", "2", "0", "0", "0"]
    assert "nothing quarantined" in run("quarantine", "list", *data).output

    amended = run("amend", "--customer", "c1", "--start", "2026-11-20T00:00:00Z",
                  "--end", "2026-11-21T00:00:00Z", "--reason", "test traffic", *data)
    assert amended.exit_code == 0 and "no longer count" in amended.output
    bad = run("amend", "--customer", "c1", "--start", "2026-11-20T00:00:00",
              "--end", "2026-11-21T00:00:00Z", "--reason", "x", *data)
    assert bad.exit_code == 2 and "needs a UTC offset" in bad.output
