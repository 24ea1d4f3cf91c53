"""Two tenants for the API tests: the default one (the server's data folder) and ``b``,
each its own deployment with its own catalog and state store, and keys made through the
real ``orb keys create``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from click.testing import CliRunner

from cli.main import main
from tests.catalogs import tiered, unit, write_data_dir
from tests.servers import free_port, wait_until_listening

API_VARIABLES = ("ORB_DATA_DIR", "ORB_STATE_URL", "ORB_CATALOG_DIR", "ORB_API_REGISTRY_URL",
                 "ORB_API_KEY_PEPPER", "ORB_API_REQUIRE_AUTH", "ORB_API_KEY", "ORB_BASE_URL")

CALLS = {"id": "calls", "name": "API calls", "sql": "SELECT count(*) FROM events"}
TENANT_A = {
    "metrics": [CALLS, {"id": "a_seats", "name": "Seats", "sql":
                        "SELECT count(DISTINCT properties.user_id) FROM events"}],
    "plans": [
        {"id": "starter", "name": "Starter", "currency": "USD", "prices": [
            unit("starter_platform", "49.00", fixed_quantity=1),
            tiered("starter_calls", "calls", [(0, 1000, "0.00"), (1000, None, "0.002")])]},
        {"id": "a_yearly", "name": "Yearly", "currency": "EUR", "prices": [
            {**unit("yearly_fee", "1200.00", fixed_quantity=1), "cadence": "annual"}]},
    ],
    "dimensional_price_groups": [
        {"id": "a_by_team", "name": "Seats by team", "billable_metric_id": "a_seats",
         "dimensions": ["team"], "external_dimensional_price_group_id": "a_team_ext"}],
}
# the same plan id with another price: each tenant reads its own catalog
TENANT_B = {"metrics": [CALLS], "plans": [
    {"id": "starter", "name": "Starter B", "currency": "USD",
     "prices": [unit("starter_platform", "99.00", fixed_quantity=1)]}]}


def make_tenants(root: Path) -> tuple[Path, Path]:
    """The default tenant's folder and tenant ``b``'s, registered as ``b``."""
    a, b = root / "a", root / "b"
    write_data_dir(a, TENANT_A)
    write_data_dir(b, TENANT_B)
    orb(["tenants", "add", "b", "--tenant-data-dir", str(b), "--data-dir", str(a)])
    return a, b


def orb(args: list[str]) -> str:
    """Run ``orb ARGS``; its output (it must succeed)."""
    result = CliRunner(env={"COLUMNS": "200"}).invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def create_key(data_dir: Path, role: str, tenant: str = "default") -> str:
    """A new key's secret, the last line ``orb keys create`` prints."""
    output = orb(["keys", "create", "--tenant", tenant, "--role", role,
                  "--data-dir", str(data_dir)])
    return output.strip().splitlines()[-1]


@contextmanager
def serve(data_dir: Path, drop: tuple[str, ...] = ()) -> Iterator[str]:
    """The real ``orb serve`` over ``data_dir`` on loopback, without the API variables
    (and ``drop``) of this environment; its root URL (``http://127.0.0.1:PORT``)."""
    port, log = free_port(), data_dir / "serve.log"
    env = {k: v for k, v in os.environ.items() if k not in (*API_VARIABLES, *drop)}
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--data-dir", str(data_dir),
             "--port", str(port)], env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_until_listening(port, process, "orb serve", log.read_text)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
