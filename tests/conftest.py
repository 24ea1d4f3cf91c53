"""Fixtures shared by test modules."""

import dagster as dg
import pytest

from assets.resources import OrbStore
from pipelines import runner
from pipelines.definitions import build_definitions
from tests.scenario import OCTOBER, write_scenario


@pytest.fixture
def billed(tmp_path):
    """The two-customer scenario (tests/scenario.py) ingested and October billed."""
    write_scenario(tmp_path)
    # The scenario's events stay inside the accepted window whenever the tests run.
    store = OrbStore(data_dir=str(tmp_path), max_event_age_days=36500)
    defs = build_definitions(store)
    instance = dg.DagsterInstance.ephemeral()
    runner.bill_months(defs, [OCTOBER], instance)
    return store, defs, instance
