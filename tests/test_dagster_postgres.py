"""The production Dagster instance, deploy/dagster.prod.yaml copied as it is, against a real
PostgreSQL server (tests/postgres.py): its run, event-log and schedule storage hold a real
billing run of the project and a started schedule, and a second instance opened on the
same configuration reads them back.

The server listens on the port the file names (5432), on a free loopback address so as not
to meet a server already on 127.0.0.1:5432; the instance logs in from the DAGSTER_PG_*
variables the file reads, as a role of its own that must give its password. The file names
no run launcher (the Helm chart adds K8sRunLauncher) and its run queue only governs
submitted runs, so the runs here execute in-process on the instance, as `orb rerate` and
`make demo` run theirs."""

from pathlib import Path

import dagster as dg
import psycopg
import pytest
import yaml
from dagster._core.scheduler.instigation import InstigatorStatus
from dagster._core.test_utils import in_process_test_workspace
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster_postgres import (
    PostgresEventLogStorage,
    PostgresRunStorage,
    PostgresScheduleStorage,
)

from assets.resources import OrbStore
from pipelines import runner
from pipelines.definitions import build_definitions
from tests.postgres import PostgresServer, free_loopback_address
from tests.scenario import OCTOBER, write_scenario

PRODUCTION = Path(__file__).resolve().parent.parent / "deploy" / "dagster.prod.yaml"
PORT = yaml.safe_load(PRODUCTION.read_text())["storage"]["postgres"]["postgres_db"]["port"]
USER, DATABASE = "dagster", "dagster"
PASSWORD = "s3cret/with@odd:chars%"  # as a generated secret may be: dagster quotes it
PARTITION = OCTOBER.isoformat()  # "2026-10-01"
# The tables of Dagster's storages: run storage, event log, schedule storage.
TABLES = {"runs", "run_tags", "event_logs", "asset_keys", "instigators", "jobs", "job_ticks"}


@pytest.fixture(scope="module")
def server():
    try:
        server = PostgresServer(host=free_loopback_address(PORT), port=PORT).start(
            hba=(f"host all {USER} 127.0.0.0/8 scram-sha-256",))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        server.create_role(USER, PASSWORD)
        server.create_database(DATABASE, owner=USER)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def dagster_home(server, tmp_path_factory):
    """A DAGSTER_HOME holding the production file as it is, its variables set to the server."""
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_bytes(PRODUCTION.read_bytes())
    with pytest.MonkeyPatch.context() as env:
        for name, value in {"DAGSTER_PG_HOST": server.host, "DAGSTER_PG_DB": DATABASE,
                            "DAGSTER_PG_USER": USER, "DAGSTER_PG_PASSWORD": PASSWORD}.items():
            env.setenv(name, value)
        yield str(home)


@pytest.fixture(scope="module")
def billed(dagster_home, tmp_path_factory):
    """The two-customer scenario (tests/scenario.py) ingested and October billed, as the
    `billed` fixture does, on the production instance."""
    data_dir = tmp_path_factory.mktemp("data")
    write_scenario(data_dir)
    defs = build_definitions(OrbStore(data_dir=str(data_dir), max_event_age_days=36500))
    instance = dg.DagsterInstance.from_config(dagster_home)
    try:
        runner.bill_months(defs, [OCTOBER], instance)
        yield instance, defs
    finally:
        instance.dispose()


def connect(server, password: str = PASSWORD) -> psycopg.Connection:
    """The database as Dagster's role sees it, straight through the driver."""
    return psycopg.connect(host=server.host, port=server.port, dbname=DATABASE, user=USER,
                           password=password)


def billing_run(instance: dg.DagsterInstance) -> dg.DagsterRun:
    (run,) = instance.get_runs(filters=dg.RunsFilter(job_name="monthly_billing"))
    return run


def test_the_instance_keeps_runs_events_and_schedules_in_postgres(server, dagster_home):
    instance = dg.DagsterInstance.from_config(dagster_home)
    try:
        assert type(instance.run_storage) is PostgresRunStorage
        assert type(instance.event_log_storage) is PostgresEventLogStorage
        assert type(instance.schedule_storage) is PostgresScheduleStorage
        assert type(instance.run_coordinator) is dg.QueuedRunCoordinator
    finally:
        instance.dispose()
    with connect(server) as connection:
        owners = dict(connection.execute(
            "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall())
    # Created by the instance, logged in as DAGSTER_PG_USER with DAGSTER_PG_PASSWORD.
    assert {table: owners.get(table) for table in TABLES} == dict.fromkeys(TABLES, USER)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(server, password="wrong").close()


def test_a_billing_run_and_its_materializations_are_stored_in_postgres(server, billed):
    instance, defs = billed
    assert {run.job_name: run.status for run in instance.get_runs()} == {
        "ingest_events": dg.DagsterRunStatus.SUCCESS,
        "monthly_billing": dg.DagsterRunStatus.SUCCESS,
        "refresh_lake_views": dg.DagsterRunStatus.SUCCESS,
    }
    run = billing_run(instance)
    assert run.tags["dagster/partition"] == PARTITION
    materialized = [
        (record.asset_key, record.partition_key)
        for record in instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records]
    job_assets = defs.resolve_job_def("monthly_billing").asset_layer.executable_asset_keys
    assert {dg.AssetKey(name) for name in ("usage", "line_items", "invoices",
                                           "invoice_documents")} <= job_assets
    # Every asset of the job, once, for October.
    assert sorted(materialized) == sorted((key, PARTITION) for key in job_assets)

    # The same, read from the tables without Dagster.
    with connect(server) as connection:
        assert connection.execute(
            "SELECT pipeline_name, status, partition FROM runs WHERE run_id = %s",
            (run.run_id,)).fetchall() == [("monthly_billing", "SUCCESS", PARTITION)]
        rows = connection.execute(
            "SELECT asset_key, partition FROM event_logs WHERE run_id = %s "
            "AND dagster_event_type = 'ASSET_MATERIALIZATION'", (run.run_id,)).fetchall()
    assert sorted(rows) == sorted((key.to_string(), PARTITION) for key in job_assets)
    assert (dg.AssetKey("invoices").to_string(), PARTITION) in rows


def test_a_second_instance_on_the_same_configuration_reads_the_run(billed, dagster_home):
    first, _ = billed
    run_id = billing_run(first).run_id
    second = dg.DagsterInstance.from_config(dagster_home)
    try:
        run = second.get_run_by_id(run_id)
        assert run is not None
        assert (run.job_name, run.status, run.tags["dagster/partition"]) == (
            "monthly_billing", dg.DagsterRunStatus.SUCCESS, PARTITION)
        for name in ("usage", "invoices"):
            assert second.get_materialized_partitions(dg.AssetKey(name)) == {PARTITION}
            latest = second.get_latest_materialization_event(dg.AssetKey(name))
            assert latest is not None
            assert (latest.run_id, latest.asset_materialization.partition) == (
                run_id, PARTITION)
    finally:
        second.dispose()


# Dagster's own snapshot of a schedule reads the deprecated property.
@pytest.mark.filterwarnings("ignore:Property `ScheduleDefinition.environment_vars`")
def test_a_started_schedule_is_kept_in_postgres(server, dagster_home):
    """Starting monthly_billing_schedule, as the UI does, against the code location of
    workspace.yaml: a second instance sees it running."""
    instance = dg.DagsterInstance.from_config(dagster_home)
    try:
        origin = LoadableTargetOrigin(module_name="pipelines.definitions")
        with in_process_test_workspace(instance, origin) as workspace:
            (entry,) = workspace.get_code_location_entries().values()
            assert entry.code_location is not None, entry.load_error
            repository = entry.code_location.get_repository("__repository__")
            schedule = repository.get_schedule("monthly_billing_schedule")
            instance.start_schedule(schedule)
    finally:
        instance.dispose()
    second = dg.DagsterInstance.from_config(dagster_home)
    try:
        state = second.get_instigator_state(schedule.get_remote_origin_id(),
                                            schedule.selector_id)
        assert state is not None
        assert (state.instigator_name, state.status, state.instigator_data.cron_schedule) == (
            "monthly_billing_schedule", InstigatorStatus.RUNNING, "0 2 2 * *")
    finally:
        second.dispose()
    with connect(server) as connection:
        assert connection.execute(
            "SELECT status, instigator_type FROM instigators WHERE selector_id = %s",
            (schedule.selector_id,)).fetchall() == [("RUNNING", "SCHEDULE")]
