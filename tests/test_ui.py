"""The Dagster UI in a real browser: the billing assets are in the graph, and a
materialization launched from the page runs.

Starts dagster-webserver on loopback over the billed scenario, drives Debian's
chromium through chromedriver (`make test` installs both when missing), and saves
a screenshot to test-artifacts/dagster-ui.png."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
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
