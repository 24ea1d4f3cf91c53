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
