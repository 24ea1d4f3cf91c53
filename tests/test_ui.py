"""The Dagster UI in a real browser: the billing assets are in the graph, a
materialization launched from the page runs, and a two-month re-rating launched from
the monthly_billing job's Partitions page runs its months in order.

Starts dagster-webserver on loopback over the billed scenario, drives Debian's
chromium through chromedriver (`make test` installs both when missing), and saves
a screenshot to test-artifacts/dagster-ui.png."""

import os
import shutil
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from assets.resources import OrbStore
from pipelines import runner
from pipelines.definitions import build_definitions
from tests.scenario import OCTOBER, write_scenario
from tests.servers import free_port, wait_until_listening

ARTIFACTS = Path(os.environ.get("ORB_TEST_ARTIFACTS", "test-artifacts"))
BILLING_ASSETS = ["usage", "line_items", "invoices", "invoice_corrections",
                  "invoice_documents", "credit_ledger", "mrr", "revenue_report", "payments"]


@pytest.fixture
def webserver(tmp_path):
    data, home = tmp_path / "data", tmp_path / "dagster_home"
    data.mkdir()
    home.mkdir()
    # Runs launched from the UI start at once: there is no daemon to dequeue them here.
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\nrun_coordinator:\n"
        "  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n")
    write_scenario(data)
    env = {**os.environ, "DAGSTER_HOME": str(home), "ORB_DATA_DIR": str(data),
           "ORB_MAX_EVENT_AGE_DAYS": "36500"}
    store = OrbStore(data_dir=str(data), max_event_age_days=36500)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runner.bill_months(build_definitions(store), [OCTOBER], instance)
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-h", "127.0.0.1", "-p",
         str(port), "-m", "pipelines.definitions"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_listening(port, server, "dagster-webserver")
        yield f"http://127.0.0.1:{port}", home
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def browser():
    driver_path = shutil.which("chromedriver")
    assert driver_path, "chromedriver is missing: `make test` installs Debian's chromium-driver"
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1600,3000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _skip_welcome_dialog(browser) -> None:
    """A fresh instance greets the first visit with a 'Join the Dagster community' dialog."""
    try:
        WebDriverWait(browser, 5).until(ec.element_to_be_clickable(
            (By.XPATH, "//button[normalize-space()='Skip']"))).click()
    except TimeoutException:
        return
    WebDriverWait(browser, 10).until(ec.invisibility_of_element_located(
        (By.CLASS_NAME, "bp5-overlay-backdrop")))


def _clicked(browser, locator) -> bool:
    try:
        browser.find_element(*locator).click()
        return True
    except StaleElementReferenceException:
        return False


def test_asset_graph_shows_billing_assets_and_launches_a_run(webserver, browser):
    url, home = webserver
    # React re-renders elements while the page loads: a found element can go stale.
    wait = WebDriverWait(browser, 90, ignored_exceptions=[StaleElementReferenceException])
    browser.get(f"{url}/assets")  # a list that renders only the rows in view: a tall window
    for asset in BILLING_ASSETS:
        wait.until(ec.presence_of_element_located(
            (By.XPATH, f"//a[contains(@href, '/assets/{asset}')]")))
    browser.get(f"{url}/assets/lake_views")
    materialize = (By.XPATH, "//button[.//span[normalize-space()='Materialize']]")
    wait.until(ec.element_to_be_clickable(materialize))
    _skip_welcome_dialog(browser)
    wait.until(lambda driver: _clicked(driver, materialize))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        deadline = time.monotonic() + 120
        while True:
            runs = instance.get_runs()
            statuses = [run.status for run in runs if "lake_views" in str(run.asset_selection)]
            if dg.DagsterRunStatus.SUCCESS in statuses or time.monotonic() > deadline:
                break
            time.sleep(1)
    browser.get(f"{url}/runs")
    wait.until(ec.presence_of_element_located((By.XPATH, "//*[contains(., 'Success')]")))
    browser.set_window_size(1600, 1000)
    browser.save_screenshot(str(ARTIFACTS / "dagster-ui.png"))
    assert dg.DagsterRunStatus.SUCCESS in statuses


@pytest.fixture
def queued_webserver(tmp_path):
    """The webserver and a real dagster-daemon on the project's dagster.yaml (queued runs,
    one billing run at a time), over September and October ingested, with a credit grant
    (tests/test_backfills.py)."""
    from tests.test_backfills import write_lake

    data, home = tmp_path / "data", tmp_path / "dagster_home"
    home.mkdir()
    store = write_lake(data)
    (home / "dagster.yaml").write_text((Path(__file__).parent.parent / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runner.ingest_landing(build_definitions(store), instance)
    env = {**os.environ, "DAGSTER_HOME": str(home), "ORB_DATA_DIR": str(data),
           "ORB_MAX_EVENT_AGE_DAYS": "36500"}
    bin_dir = Path(sys.executable).parent
    port = free_port()
    processes = [subprocess.Popen(command + ["-m", "pipelines.definitions"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for command in ([str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1",
                                  "-p", str(port)], [str(bin_dir / "dagster-daemon"), "run"])]
    try:
        wait_until_listening(port, processes[0], "dagster-webserver")
        yield f"http://127.0.0.1:{port}", home, store
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)


def test_a_two_month_backfill_from_the_job_page_runs_in_month_order(queued_webserver, browser):
    """The recommended re-rating (docs/deploy.md): Jobs -> monthly_billing -> Partitions
    -> Materialize… -> two months -> Launch backfill. October starts after September
    ends and draws the 20.00 September's committed ledger left (50.00 - 30.00)."""
    from tests.test_backfills import OCTOBER, invoice_and_ledger

    url, home, store = queued_webserver
    wait = WebDriverWait(browser, 120, ignored_exceptions=[StaleElementReferenceException])
    browser.get(f"{url}/locations/pipelines.definitions/jobs/monthly_billing/partitions")
    materialize = (By.XPATH, "//button[.//span[normalize-space()='Materialize…']]")
    wait.until(ec.element_to_be_clickable(materialize))
    _skip_welcome_dialog(browser)
    wait.until(lambda driver: _clicked(driver, materialize))
    # The dialog shows the last 90 days; September is older than that today.
    wait.until(lambda driver: _clicked(
        driver, (By.XPATH, "//*[normalize-space()='Show all partitions']")))
    months = wait.until(ec.element_to_be_clickable((By.XPATH, "//input[@type='text']")))
    months.send_keys("[2026-09-01...2026-10-01]", Keys.ENTER)
    wait.until(ec.presence_of_element_located((By.XPATH, "//*[normalize-space()='2 partitions']")))
    wait.until(lambda driver: _clicked(
        driver, (By.XPATH, "//button[normalize-space()='Launch backfill']")))
    finished = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            records = [r for r in instance.get_run_records()
                       if r.dagster_run.job_name == "monthly_billing"]
            if len(records) == 2 and all(r.dagster_run.status in finished for r in records):
                break
            time.sleep(1)
        sep, oct_ = sorted(records, key=lambda r: r.dagster_run.tags["dagster/partition"])
        assert [(r.dagster_run.tags["dagster/partition"], r.dagster_run.status)
                for r in (sep, oct_)] == [("2026-09-01", dg.DagsterRunStatus.SUCCESS),
                                          ("2026-10-01", dg.DagsterRunStatus.SUCCESS)]
        assert "dagster/backfill" in oct_.dagster_run.tags  # a backfill, launched from the UI
        assert sep.end_time <= oct_.start_time
    assert invoice_and_ledger(store, OCTOBER) == (
        (Decimal("40.00"), Decimal("20.00"), Decimal("20.00")),
        [("drawdown", "g1", Decimal("-20.00"))])
    browser.get(f"{url}/runs/b/{oct_.dagster_run.tags['dagster/backfill']}?tab=runs")
    wait.until(ec.presence_of_element_located((By.XPATH, "//*[contains(., 'Success')]")))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(1600, 1000)
    browser.save_screenshot(str(ARTIFACTS / "dagster-backfill.png"))
