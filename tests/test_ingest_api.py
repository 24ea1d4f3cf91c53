"""Orb's POST /v1/ingest, served by the API (``orb serve``): one batch per request,
through the same ``ingest_files`` as files."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from starlette.testclient import TestClient

from api.access import ApiConfig
from api.app import create_app
from api.ingest_batcher import MicroBatcher
from api.limits import MAX_BODY_BYTES
from api.registry import Registry, registry_url
from storage.duck import connect
from storage.lake import Lake
from tests.api_tenants import API_VARIABLES
from tests.catalogs import write_data_dir
from tests.servers import free_port, wait_until_listening

NOW = datetime(2026, 11, 10, tzinfo=UTC)
DATA = {"metrics": [{"id": "calls", "name": "Calls", "sql": "SELECT count(*) FROM events"}],
        "customers": [{"id": "c1", "name": "One"},
                      {"id": "c2", "name": "Two", "external_customer_id": "ext-2"}]}
ORB_400 = "https://docs.withorb.com/reference/error-responses#400-request-validation-errors"
ORB = "https://docs.withorb.com/reference/error-responses#"


def event(key, customer="c1", ts="2026-11-09T12:00:00Z", **fields):
    return {"event_name": "api", "timestamp": ts, "customer_id": customer,
            "idempotency_key": key, "properties": {"region": "eu"}, **fields}


@pytest.fixture
def data(tmp_path, monkeypatch):
    for variable in API_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    # a keyless request is the default tenant's admin (keys: tests/test_api_events.py)
    monkeypatch.setenv("ORB_API_REQUIRE_AUTH", "0")
    write_data_dir(tmp_path, DATA)
    return tmp_path


def app_client(data, raise_server_exceptions=True, buffered=False):
    """``buffered``: with orb serve's micro-batcher (landing in-process), which runs while
    the client is entered."""
    registry = Registry.open(registry_url(data), data, clock=lambda: NOW)
    batcher = MicroBatcher(registry, lambda: NOW, landing_process=False) if buffered else None
    return TestClient(create_app(ApiConfig(registry, require_auth=False, clock=lambda: NOW,
                                           batcher=batcher)),
                      raise_server_exceptions=raise_server_exceptions)


@pytest.fixture
def client(data):
    return app_client(data)


def lake_events(root):
    """(key, customer, timestamp) of every event in the lake, by key."""
    files = Lake(root).all_files("events")
    if not files:
        return []
    return connect().sql(
        "SELECT idempotency_key, customer_id, strftime(timestamp, '%Y-%m-%dT%H:%M:%SZ') "
        "FROM read_parquet($files) ORDER BY 1", params={"files": files}).fetchall()


def post(client, *events, debug=True):
    return client.post("/v1/ingest", params={"debug": "true"} if debug else {},
                       json={"events": list(events)})


def test_bad_events_fail_validation_and_the_others_are_ingested_once(client, data):
    request = [event("k1"), event("k2", customer="c9"),
               event("k3", customer=None, external_customer_id="ext-2")]
    first = post(client, *request)
    # Orb answers 200 only when validation_failed is empty.
    assert first.status_code == 400
    body = first.json()
    assert body["type"] == ORB_400
    assert body["validation_failed"] == [
        {"idempotency_key": "k2", "validation_errors": ["unknown customer_id"]}]
    assert body["debug"] == {"duplicate": [], "ingested": ["k1", "k3"]}
    assert lake_events(data) == [("k1", "c1", "2026-11-09T12:00:00Z"),
                                 ("k3", "c2", "2026-11-09T12:00:00Z")]

    again = post(client, *request)  # the same bytes: the same batch, already ingested
    assert again.headers["X-Orb-Batch-Id"] == first.headers["X-Orb-Batch-Id"]
    assert again.status_code == 400
    assert again.json()["validation_failed"] == body["validation_failed"]
    assert again.json()["debug"] == {"duplicate": ["k1", "k3"], "ingested": []}
    assert len(lake_events(data)) == 2

    quiet = post(client, *request, debug=False)
    assert quiet.json()["debug"] is None


def test_a_key_already_ingested_is_a_duplicate_not_a_failure(client, data):
    first = post(client, event("k1"), event("k2"))
    assert first.status_code == 200
    assert first.json() == {"validation_failed": [],
                            "debug": {"duplicate": [], "ingested": ["k1", "k2"]}}
    # another request (other bytes) reusing k2, with another timestamp, and k4 twice
    second = post(client, event("k2", ts="2026-11-09T13:00:00Z"), event("k3"), event("k4"),
                  event("k4"))
    assert second.status_code == 200
    assert second.headers["X-Orb-Batch-Id"] != first.headers["X-Orb-Batch-Id"]
    assert second.json() == {"validation_failed": [],
                             "debug": {"duplicate": ["k2", "k4"], "ingested": ["k3", "k4"]}}
    # k2 keeps the first request's timestamp
    assert lake_events(data) == [("k1", "c1", "2026-11-09T12:00:00Z"),
                                 ("k2", "c1", "2026-11-09T12:00:00Z"),
                                 ("k3", "c1", "2026-11-09T12:00:00Z"),
                                 ("k4", "c1", "2026-11-09T12:00:00Z")]


def test_each_new_batch_is_reported_and_a_failed_report_does_not_fail_the_request(
        data, tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    client = app_client(data)
    assert post(client, event("k1")).status_code == 200
    assert post(client, event("k1")).status_code == 200  # already ingested: nothing new
    # the batch's one day was reported, so the months reading it go stale
    assert dg.DagsterInstance.get().get_materialized_partitions(dg.AssetKey("events")) == {
        "2026-11-09"}
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "no such home"))
    assert post(client, event("k2")).status_code == 200
    assert [key for key, *_ in lake_events(data)] == ["k1", "k2"]


def test_at_most_500_events_per_request(client, data):
    too_many = post(client, *(event(f"k{i}") for i in range(501)))
    assert too_many.status_code == 400
    assert too_many.json()["validation_errors"] == [
        "body.events: Value error, at most 500 events per request, got 501: split the request, "
        "or land a file instead"]
    assert lake_events(data) == []
    full = post(client, *(event(f"k{i}") for i in range(500)))
    assert full.status_code == 200 and len(full.json()["debug"]["ingested"]) == 500
    assert len(lake_events(data)) == 500


@pytest.mark.parametrize(("body", "errors"), [
    (b'{"events": [', ["body.12: JSON decode error"]),
    (b'[]', ["body: Input should be a valid dictionary or object to extract fields from"]),
    (b'{"events": []}', ["body.events: List should have at least 1 item after validation, not 0"]),
    (json.dumps({"events": [event("k1"), {k: v for k, v in event("k2").items()
                                          if k != "idempotency_key"}]}).encode(),
     ["body.events.1.idempotency_key: Field required"]),
    (json.dumps({"events": [event("k1", properties=[1]), event("k2", customerId="c1")]})
     .encode(), ["body.events.0.properties: Input should be a valid dictionary",
                 "body.events.1.customerId: not a field this server takes (docs/api.md lists what "
                 "differs from Orb)"]),
    (b'{"events": [{"event_name": "api", "timestamp": "2026-11-09T12:00:00Z", '
     b'"customer_id": "c1", "idempotency_key": "k1", "properties": {"n": NaN}}]}',
     ["body.events.0.properties: Value error, numbers must be finite (no NaN or Infinity)"]),
    (json.dumps({"events": [event(f"k{i}") for i in range(501)]}).encode(),
     ["body.events: Value error, at most 500 events per request, got 501: split the request, "
      "or land a file instead"]),
])
@pytest.mark.parametrize("buffered", [False, True], ids=["per request", "buffered"])
def test_a_malformed_body_is_refused_naming_what_is_wrong(data, body, errors, buffered):
    # buffered: orb serve's fast path, whose decoder leaves a body it refuses to pydantic
    with app_client(data, buffered=buffered) as client:
        response = client.post("/v1/ingest", content=body,
                               headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["validation_errors"] == errors
    assert not Lake(data).all_files("batches")


def test_a_body_over_the_limit_is_refused(client, data):
    response = client.post("/v1/ingest", content=b" " * (MAX_BODY_BYTES + 1))
    assert response.status_code == 413
    assert not Lake(data).all_files("batches")


def test_a_server_error_answers_in_orbs_format_without_the_cause(data):
    (data / "catalog" / "catalog.yaml").write_text("metrics: [{id: c1, name: One}, {id: c1}]\n")
    response = post(app_client(data, raise_server_exceptions=False), event("k1"))
    assert response.status_code == 500
    assert response.json() == {"type": ORB + "500-internal-server-error", "status": 500,
                               "title": "Internal server error",
                               "detail": "the server failed to answer this request; it is "
                                         "logged"}


def serve(data, port, log, **variables):
    """``orb serve`` on ``port``, keys not required, its output in ``log``."""
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", *API_VARIABLES)}
    env |= {"ORB_API_REQUIRE_AUTH": "0", **variables}
    with open(log, "wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--data-dir", str(data),
             "--port", str(port)], env=env, stdout=output, stderr=subprocess.STDOUT)
    wait_until_listening(port, server, "orb serve", log.read_text)
    return server


def test_orb_serve_ingests_over_http(data, tmp_path):
    port, log = free_port(), tmp_path / "server.log"
    server = serve(data, port, log)
    try:
        ts = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/ingest?debug=true", method="POST",
            data=json.dumps({"events": [event("k1", ts=ts)]}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200
            assert json.load(response) == {"validation_failed": [],
                                           "debug": {"duplicate": [], "ingested": ["k1"]}}
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert lake_events(data) == [("k1", "c1", ts)]
    assert "Traceback" not in log.read_text()  # the Dagster report went through too


def read_until_closed(sock: socket.socket, trickle: bytes = b"") -> tuple[bytes, float]:
    """What the server sends on ``sock`` until it closes it, and after how many seconds;
    meanwhile one byte of ``trickle`` is sent every 0.2 s, as a slow client would."""
    start, received = time.monotonic(), b""
    sock.settimeout(0.2)
    while time.monotonic() - start < 30:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            if trickle:
                sock.sendall(trickle[:1])
                trickle = trickle[1:]
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    return received, time.monotonic() - start


def test_idle_connections_and_slow_requests_are_closed(data, tmp_path):
    port, log = free_port(), tmp_path / "server.log"
    server = serve(data, port, log, ORB_INGEST_IDLE_TIMEOUT="1", ORB_INGEST_BODY_TIMEOUT="2")
    head = b"POST /v1/ingest HTTP/1.1\r\nHost: orb\r\nContent-Type: application/json\r\n"
    try:
        with contextlib.ExitStack() as stack:
            def connection() -> socket.socket:  # opened when its case starts: 1 s each
                return stack.enter_context(socket.create_connection(("127.0.0.1", port)))

            # nothing sent at all; a head that never ends, a byte every 0.2 s
            sent, seconds = read_until_closed(connection())
            assert sent == b"" and 0.9 < seconds < 5
            sent, seconds = read_until_closed(connection(), head + b"X-Slow: " + b"a" * 200)
            assert sent == b"" and 0.9 < seconds < 5
            # a body that trickles in: 2 s for all of it, however steadily it comes
            body = connection()
            body.sendall(head + b"Content-Length: 300\r\n\r\n")
            sent, seconds = read_until_closed(body, b'{"events": [' + b" " * 200)
            status, _, content = sent.partition(b"\r\n\r\n")
            assert status.startswith(b"HTTP/1.1 408 ") and b"connection: close" in status
            assert json.loads(content) == {"type": ORB + "408-request-timeout", "status": 408,
                                           "title": "Request timeout",
                                           "detail": "the body did not arrive within 2 s"}
            assert 1.9 < seconds < 6
            # answered, then idle: closed after the keep-alive timeout
            answered = connection()
            answered.sendall(head + b"Content-Length: 2\r\n\r\n[]")
            sent, seconds = read_until_closed(answered)
            assert sent.startswith(b"HTTP/1.1 400 ") and 0.9 < seconds < 5
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert not Lake(data).all_files("batches")
    assert "Traceback" not in log.read_text()
