"""Re-rating several months: they run in month order however they are launched, the
revenue tables can be backfilled with their inputs, and a launch of `usage` runs only
the checks the billing job runs.

One customer, acme (UTC), on a plan of 1.00 per call, with a 50.00 USD credit grant
effective 2026-09-01 that pays usage:
  September: 30 calls = 30.00; credits pay 30.00; total 0.00; the grant keeps 20.00.
  October:   40 calls = 40.00; credits pay the last 20.00; total 20.00.
October's 20.00 is right only if its run starts from September's committed ledger."""

import json
import os
import subprocess
import sys
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemotePartitionSetOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.utils import make_new_backfill_id
from dagster._time import get_current_timestamp

from assets.resources import OrbStore
from billing.catalog import Catalog
from invoicing.credit_grants import record_grant
from pipelines import runner
from pipelines.definitions import build_definitions
from storage.billing_runs import read_month
from tests.catalogs import unit, write_data_dir

ROOT = Path(__file__).resolve().parent.parent
SEPTEMBER, OCTOBER = date(2026, 9, 1), date(2026, 10, 1)
CATALOG = {
    "metrics": [{"id": "calls", "name": "Calls", "sql": "SELECT count(*) FROM events"}],
    "plans": [{"id": "metered", "name": "Metered", "currency": "USD",
               "prices": [unit("per_call", "1.00", metric="calls")]}],
    "customers": [{"id": "acme", "name": "Acme"}],
    "subscriptions": [{"id": "sub", "customer_id": "acme", "plan_id": "metered",
                       "start_date": "2026-01-01"}],
}


def _calls(month: date, count: int) -> str:
    return "".join(json.dumps({
        "event_name": "call", "timestamp": f"{month:%Y-%m}-10T12:00:00Z",
        "customer_id": "acme", "idempotency_key": f"{month:%Y-%m}-{i}", "properties": {}}) + "\n"
        for i in range(count))


def write_lake(data: Path) -> OrbStore:
    """The catalog, September's 30 and October's 40 calls in the landing folder, and
    the 50.00 grant."""
    write_data_dir(data, CATALOG)
    (data / "landing").mkdir()
    (data / "landing" / "calls.jsonl").write_text(_calls(SEPTEMBER, 30) + _calls(OCTOBER, 40))
    store = OrbStore(data_dir=str(data), max_event_age_days=36500)
    record_grant(store.lake, Catalog.model_validate(CATALOG), "acme", "USD",
                 Decimal("50.00"), Decimal(1), SEPTEMBER, None, grant_id="g1")
    return store


def invoice_and_ledger(store: OrbStore, month: date) -> tuple[tuple, list[tuple]]:
    """The month's invoice (subtotal, credits applied, total) and ledger entries, read as
    issuing reads them: from the month's newest completed run."""
    run = read_month(store.lake, month, ["invoices", "credit_ledger"])
    (head,) = run["invoices"].to_pylist()
    return ((head["subtotal"], head["credits_applied"], head["total"]),
            [(e["entry_type"], e["grant_id"], e["amount"])
             for e in run["credit_ledger"].to_pylist()])


def test_a_job_backfill_runs_its_months_one_after_the_other(tmp_path):
    """The UI's job backfill (a REQUESTED backfill of monthly_billing's partitions,
    which is what the Launch backfill dialog stores) run by a real dagster-daemon on the
    project's dagster.yaml: queued runs, two at a time, one billing run at a time."""
    data, home = tmp_path / "data", tmp_path / "home"
    home.mkdir()
    store = write_lake(data)
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: pipelines.definitions\n"
        f"      working_directory: {ROOT}\n      location_name: orb\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "ORB_DATA_DIR": str(data),
           "ORB_MAX_EVENT_AGE_DAYS": "36500"}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runner.ingest_landing(build_definitions(store), instance)
        backfill_id = make_new_backfill_id()
        instance.add_backfill(PartitionBackfill(
            backfill_id=backfill_id, status=BulkActionStatus.REQUESTED,
            partition_set_origin=RemotePartitionSetOrigin(
                repository_origin=RemoteRepositoryOrigin(
                    code_location_origin=RegisteredCodeLocationOrigin(location_name="orb"),
                    repository_name="__repository__"),
                partition_set_name="monthly_billing_partition_set"),
            partition_names=[SEPTEMBER.isoformat(), OCTOBER.isoformat()], from_failure=False,
            reexecution_steps=None, tags={}, backfill_timestamp=get_current_timestamp()))
        daemon = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(workspace)],
            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            records = _wait_for_runs(instance, backfill_id, 2, timeout=240)
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
        sep, oct_ = sorted(records, key=lambda r: r.dagster_run.tags["dagster/partition"])
        assert [r.dagster_run.status for r in (sep, oct_)] == [dg.DagsterRunStatus.SUCCESS] * 2, [
            event.message for r in (sep, oct_) for event in instance.all_logs(
                r.dagster_run.run_id, of_type={dg.DagsterEventType.STEP_FAILURE,
                                               dg.DagsterEventType.RUN_FAILURE})]
        assert [r.dagster_run.tags["dagster/partition"] for r in (sep, oct_)] == [
            "2026-09-01", "2026-10-01"]
        assert sep.end_time is not None and oct_.start_time is not None
        assert sep.end_time <= oct_.start_time  # October started after September ended
    assert invoice_and_ledger(store, SEPTEMBER) == (
        (Decimal("30.00"), Decimal("30.00"), Decimal("0.00")),
        [("drawdown", "g1", Decimal("-30.00"))])
    # 50.00 - 30.00 = 20.00 left after September's committed ledger; October draws it.
    assert invoice_and_ledger(store, OCTOBER) == (
        (Decimal("40.00"), Decimal("20.00"), Decimal("20.00")),
        [("drawdown", "g1", Decimal("-20.00"))])


def _wait_for_runs(instance: dg.DagsterInstance, backfill_id: str, count: int,
                   timeout: float) -> list:
    finished = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE,
                dg.DagsterRunStatus.CANCELED}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        if len(records) == count and all(r.dagster_run.status in finished for r in records):
            return records
        time.sleep(1)
    raise AssertionError(f"the backfill's {count} runs did not finish in {timeout} s: "
                         f"{[(r.dagster_run.tags, r.dagster_run.status) for r in records]}")


def test_a_month_waits_for_the_month_before_in_its_backfill(tmp_path):
    """September's run of backfill bf1 fails (its deployment has no catalog); October's
    run of the same backfill refuses to start rather than bill from September's old
    balances."""
    store = write_lake(tmp_path / "data")
    instance = dg.DagsterInstance.ephemeral()
    defs = build_definitions(store)
    runner.ingest_landing(defs, instance)
    broken = build_definitions(OrbStore(data_dir=str(tmp_path / "nothing")))
    tags = {"dagster/backfill": "bf1"}
    sep = broken.resolve_job_def("monthly_billing").execute_in_process(
        instance=instance, partition_key=SEPTEMBER.isoformat(), tags=tags,
        run_config=runner.QUIET, raise_on_error=False)
    assert not sep.success
    oct_ = defs.resolve_job_def("monthly_billing").execute_in_process(
        instance=instance, partition_key=OCTOBER.isoformat(), tags=tags,
        run_config=runner.QUIET, raise_on_error=False)
    assert not oct_.success
    (failure,) = [e for e in oct_.all_events if e.is_step_failure]
    assert failure.step_key == "state_snapshot"  # the run's first step
    assert failure.step_failure_data.user_failure_data.description == (
        f"billing 2026-10 cannot start: it comes after 2026-09 in backfill bf1, and 2026-09 "
        f"has no successful run there (run {sep.run_id} failure): its credit ledger holds "
        "the balances 2026-10 starts from. Bill 2026-09 first, then 2026-10 (re-execute the "
        "backfill from failure: it runs both, in order)")
    assert not store.lake.files_in("usage", "billing_month", [OCTOBER])  # nothing written


ASSET_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""
CHECKS_OF = """
query($keys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $keys) {
    assetKey { path }
    assetChecksOrError { ... on AssetChecks { checks { name } } }
  }
}"""
LAUNCH = """
mutation($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message }
  }
}"""


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """September and October billed, and the GraphQL API the UI calls, in-process over
    the code location; runs launched through it execute at once, in this process."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget

    root = tmp_path_factory.mktemp("ui")
    store = write_lake(root / "data")
    location = root / "location.py"
    location.write_text(
        "from assets.resources import OrbStore\n"
        "from pipelines.definitions import build_definitions\n"
        f"defs = build_definitions(OrbStore(data_dir={str(root / 'data')!r}, "
        "max_event_age_days=36500))\n")
    with dg.instance_for_test(overrides={
        "run_coordinator": {"module": "dagster._core.run_coordinator",
                            "class": "DefaultRunCoordinator"},
        "run_launcher": {"module": "dagster._core.launcher.sync_in_memory_run_launcher",
                         "class": "SyncInMemoryRunLauncher"}}) as instance:
        runner.bill_months(build_definitions(store), [SEPTEMBER, OCTOBER], instance)
        origin = InProcessCodeLocationOrigin(
            loadable_target_origin=LoadableTargetOrigin(
                executable_path=sys.executable, python_file=str(location), attribute="defs",
                working_directory=str(ROOT)), location_name="orb")
        with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as process:
            yield store, instance, process


def _graphql(process, query: str, variables: dict) -> dict:
    from dagster_graphql.test.utils import execute_dagster_graphql

    result = execute_dagster_graphql(process.create_request_context(), query, variables)
    assert not result.errors, result.errors
    return result.data


def _keys(*names: str) -> list[dict]:
    return [{"path": [name]} for name in names]


def test_an_asset_backfill_of_usage_and_some_revenue_tables_runs(ui):
    """From the lineage page: October's usage, what bills it, and two of the seven
    revenue tables (a subset of the revenue multi-asset, which Dagster refused before)."""
    from dagster._daemon.backfill import execute_backfill_iteration

    store, instance, process = ui
    billing = ["usage", "line_items", "sub_line_items", "invoices", "invoice_adjustments",
               "credit_ledger", "invoice_taxes", "invoice_corrections", "billing_run"]
    launched = _graphql(process, ASSET_BACKFILL, {"params": {
        "partitionNames": [OCTOBER.isoformat()],
        "assetSelection": _keys(*billing, "mrr", "usage_trends")}})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]
    for _ in range(10):  # the daemon's backfill loop; each run executes as it is launched
        list(execute_backfill_iteration(process, dg.get_dagster_logger()))
        if instance.get_backfill(backfill_id).status != BulkActionStatus.REQUESTED:
            break
    assert instance.get_backfill(backfill_id).status == BulkActionStatus.COMPLETED_SUCCESS
    runs = [r.dagster_run for r in instance.get_run_records(
        dg.RunsFilter(tags={"dagster/backfill": backfill_id}))]
    assert runs and all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
    materialized = {event.dagster_event.asset_key.to_user_string() for run in runs
                    for event in instance.all_logs(
                        run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)}
    assert materialized == {*billing, "mrr", "usage_trends"}  # not billed_vs_collected
    checks = {event.dagster_event.asset_check_evaluation_data.check_name
              for run in runs for event in instance.all_logs(
                  run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)}
    assert checks == {"line_items_match_usage", "invoice_totals_add_up"}
    # October again from September's committed ledger: 40.00, credits 20.00, total 20.00.
    assert invoice_and_ledger(store, OCTOBER) == (
        (Decimal("40.00"), Decimal("20.00"), Decimal("20.00")),
        [("drawdown", "g1", Decimal("-20.00"))])
    mrr = store.lake.read_partition("mrr", "billing_month", OCTOBER).to_pylist()
    assert [(r["customer_id"], r["mrr"]) for r in mrr] == [("acme", Decimal("40.00"))]


def test_a_ui_launch_of_usage_runs_no_whole_lake_check(ui):
    """The UI's Materialize button runs the checks that target the selected assets: none
    for `usage` (the whole-lake usage reconciliation targets `events`, and runs in
    check_lake)."""
    _, instance, process = ui
    nodes = _graphql(process, CHECKS_OF, {"keys": _keys("usage", "events")})["assetNodes"]
    checks = {node["assetKey"]["path"][0]: {c["name"] for c in node["assetChecksOrError"]["checks"]}
              for node in nodes}
    assert checks == {"usage": set(), "events": {
        "event_keys_unique", "event_customers_known", "usage_matches_the_event_lake"}}
    launched = _graphql(process, LAUNCH, {"params": {
        "selector": {"repositoryLocationName": "orb", "repositoryName": "__repository__",
                     "pipelineName": "__ASSET_JOB", "assetSelection": _keys("usage"),
                     "assetCheckSelection": []},
        "executionMetadata": {"tags": [{"key": "dagster/partition",
                                        "value": OCTOBER.isoformat()}]}}})
    run = launched["launchPipelineExecution"]
    assert run["__typename"] == "LaunchRunSuccess", run
    run_id = run["run"]["runId"]
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
    assert not instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    assert [e.dagster_event.asset_key.to_user_string() for e in instance.all_logs(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)] == ["usage"]


def test_a_month_refuses_to_start_from_a_ledger_older_than_the_months_before(tmp_path):
    """September billed again after October: October's drawdown came from September's
    old balances, so November refuses to start until October is billed again."""
    from invoicing.ledger_order import billed_meanwhile, last_commits

    store = write_lake(tmp_path / "data")
    instance = dg.DagsterInstance.ephemeral()
    defs = build_definitions(store)
    runner.bill_months(defs, [SEPTEMBER, OCTOBER], instance)
    runner.bill_month(defs, SEPTEMBER, instance)
    november = date(2026, 11, 1)
    with pytest.raises(dg.Failure) as refused:
        runner.bill_month(defs, november, instance)
    commits = last_commits(store.lake, november)
    assert refused.value.description == (
            "billing 2026-11 cannot start: 2026-10 was last billed at "
            f"{commits[OCTOBER]:%Y-%m-%d %H:%M:%S} UTC, before 2026-09 was billed again at "
            f"{commits[SEPTEMBER]:%Y-%m-%d %H:%M:%S} UTC, so its credit drawdowns come from "
            "balances that have changed since; re-rate 2026-10 through the month before "
            "2026-11, in order, first")
    # A run of November that began just before September's last commit would have read
    # September's old ledger: its commit is refused.
    began = commits[SEPTEMBER] - timedelta(microseconds=1)
    assert billed_meanwhile(store.lake, november, began) == [
        f"2026-09 committed a billing run at {commits[SEPTEMBER]:%Y-%m-%d %H:%M:%S} UTC, "
        f"after this run of 2026-11 started ({began:%Y-%m-%d %H:%M:%S} UTC), so this run's "
        "credit balances may predate it; bill 2026-11 again"]
    assert billed_meanwhile(store.lake, november, commits[SEPTEMBER]) == []
    runner.bill_month(defs, OCTOBER, instance)  # in order again: November bills
    runner.bill_month(defs, november, instance)
