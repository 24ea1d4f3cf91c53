"""The local and production instance configurations are valid Dagster configuration
and keep the concurrency limits the lake relies on."""

import shutil
from pathlib import Path

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("config", ["dagster.yaml", "deploy/dagster.prod.yaml"])
def test_instance_config_is_valid_and_limits_writers(config, tmp_path, monkeypatch):
    for name in ("DAGSTER_PG_HOST", "DAGSTER_PG_DB", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD"):
        monkeypatch.setenv(name, "x")
    shutil.copy(ROOT / config, tmp_path / "dagster.yaml")
    validated, _ = dagster_instance_config(str(tmp_path))
    limits = yaml.safe_load((ROOT / config).read_text())["run_queue"]["tag_concurrency_limits"]
    assert {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True},
            "limit": 1} in limits
    writers = {limit["value"] for limit in limits if limit["key"] == "orb/lake_writer"}
    assert writers == {"ingest", "billing", "issue", "payments", "webhooks"}
    assert validated["telemetry"] == {"enabled": False}


def test_production_storage_is_postgres_from_the_environment():
    storage = yaml.safe_load((ROOT / "deploy/dagster.prod.yaml").read_text())["storage"]
    db = storage["postgres"]["postgres_db"]
    assert db["password"] == {"env": "DAGSTER_PG_PASSWORD"}  # never a literal secret


def test_the_helm_example_repeats_the_production_limits():
    prod = yaml.safe_load((ROOT / "deploy/dagster.prod.yaml").read_text())
    helm = yaml.safe_load((ROOT / "deploy/helm-values.yaml").read_text())
    queue = helm["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queue["tagConcurrencyLimits"] == prod["run_queue"]["tag_concurrency_limits"]
