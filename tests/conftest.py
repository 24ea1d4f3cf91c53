"""Fixtures shared by test modules."""

import boto3
import dagster as dg
import pytest
from moto.server import ThreadedMotoServer

from assets.resources import OrbStore
from pipelines import runner
from pipelines.definitions import build_definitions
from tests import servers
from tests.postgres import PostgresServer
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


@pytest.fixture(scope="module")
def s3_server():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing",
                 ).create_bucket(Bucket=servers.BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                        "ORB_S3_ENDPOINT_URL": s3_server}.items():
        monkeypatch.setenv(name, value)
    return s3_server


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server of the tests' own on loopback, for the state store's tests on
    both backends (each module makes its own databases on it)."""
    try:
        server = PostgresServer().start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()
