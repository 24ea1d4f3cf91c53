"""``orb serve``'s fast ingestion (docs/ingestion.md#http-ingestion): requests are
acknowledged once fsynced to the ingest buffer, and the micro-batcher lands each sealed
segment as one batch through ``ingest_files``; nothing acknowledged is lost or doubled
across a ``kill -9``."""

import http.client
import json
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from starlette.testclient import TestClient

from api.access import ApiConfig
from api.app import create_app
from api.ingest_batcher import AUDIT_ROLE, MicroBatcher
from api.registry import Registry, registry_url
from ingestion.ingest_buffer import IngestBuffer, buffer_folder
from storage.duck import connect
from storage.lake import Lake
from storage.settings import Settings
from tests.api_tenants import API_VARIABLES
from tests.catalogs import write_data_dir
from tests.servers import free_port
from tests.test_ingest_api import DATA, serve

NOW = datetime(2026, 11, 10, tzinfo=UTC)


def event(key, customer="c1", ts="2026-11-09T12:00:00Z"):
    return {"event_name": "api", "timestamp": ts, "customer_id": customer,
            "idempotency_key": key, "properties": {"region": "eu"}}


@pytest.fixture
def data(tmp_path, monkeypatch):
    for variable in API_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("ORB_API_REQUIRE_AUTH", "0")
    write_data_dir(tmp_path, DATA)
    return tmp_path


def key_counts(root):
    """idempotency_key -> how many events of the lake have it."""
    files = Lake(root).all_files("events")
    if not files:
        return {}
    return dict(connect().sql("SELECT idempotency_key, count(*) FROM read_parquet($files) "
                              "GROUP BY 1", params={"files": files}).fetchall())


def test_acknowledged_events_land_once_and_bad_ones_in_quarantine(data):
    registry = Registry.open(registry_url(data), data, clock=lambda: NOW)
    batcher = MicroBatcher(registry, lambda: NOW,
                           Settings(ingest_buffer_events=4, ingest_flush_seconds=0.1),
                           landing_process=False)  # the spawned lander: the kill test
    app = create_app(ApiConfig(registry, require_auth=False, clock=lambda: NOW,
                               batcher=batcher))
    first = [event("k1"), event("k2", customer="c9"), event("k3")]
    with TestClient(app) as client:
        for events in (first, first, [event("k1"), event("k4", customer="c2")]):
            response = client.post("/v1/ingest", json={"events": events})
            # content is checked at landing: the fast path answers no failure
            assert response.status_code == 200
            assert response.json() == {"validation_failed": [], "debug": None}
        shape = client.post("/v1/ingest", json={"events": [{"event_name": "api"}]})
        assert shape.status_code == 400  # shape errors are answered at once, as before
    # stopping landed everything: 8 events sent, k1 three times and k3 twice
    assert key_counts(data) == {"k1": 1, "k3": 1, "k4": 1}
    assert not list(buffer_folder(Settings(str(data))).glob("api-*"))
    lake = Lake(data)
    quarantined = [reason for (reason,) in connect().sql(
        "SELECT reject_reason FROM read_parquet($files)",
        params={"files": lake.all_files("quarantine")}).fetchall()]
    # k2 twice (unknown customer), and the 3 repeated keys: 2 x k1 and 1 x k3
    assert sorted(quarantined) == sorted(["unknown customer_id"] * 2
                                         + ["duplicate idempotency_key"] * 3)
    landed = [e for e in registry.audit_events() if e.resource == "event_batch"]
    assert landed and {e.role for e in landed} == {AUDIT_ROLE}
    assert sum(e.after["accepted"] for e in landed) == 3


def test_a_torn_last_line_is_dropped_and_an_empty_segment_removed(tmp_path):
    folder = tmp_path / "ingest_buffer"
    folder.mkdir()
    (folder / "api-1.jsonl.open").write_bytes(b'{"a":1}\n{"a":2}\n{"a":')
    (folder / "api-2.jsonl.open").write_bytes(b'{"a":')
    buffer = IngestBuffer.open(folder, max_events=2)
    assert buffer.sealed() == [folder / "api-1.jsonl"]
    assert (folder / "api-1.jsonl").read_bytes() == b'{"a":1}\n{"a":2}\n'
    assert not (folder / "api-2.jsonl.open").exists()
    # appends: the segment is full at 2 events and sealed; the next starts another
    threads = [threading.Thread(target=buffer.append, args=(b'{"b":%d}\n' % n, 1))
               for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert buffer.has_full()
    (sealed,) = buffer.seal_due(max_age=3600)
    assert sorted(sealed.read_bytes().splitlines()) == [b'{"b":0}', b'{"b":1}']
    buffer.append(b'{"b":2}\n', 1)
    assert buffer.seal_due(max_age=3600) == []  # neither full nor old: stays open
    buffer.close()
    assert len(buffer.sealed()) == 3


def send_until_killed(port, client, acknowledged, stop):
    """Send requests of 20 events with fresh keys until the server goes; keep the keys
    of each request answered 200."""
    ts = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    connection, n = http.client.HTTPConnection("127.0.0.1", port, timeout=30), 0
    while not stop.is_set():
        keys = [f"t{client}-{n}-{i}" for i in range(20)]
        n += 1
        body = json.dumps({"events": [event(k, ts=ts) for k in keys]})
        try:
            connection.request("POST", "/v1/ingest", body,
                               {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            return
        if response.status == 200:
            acknowledged.extend(keys)


def test_a_killed_server_loses_no_acknowledged_event_and_doubles_none(data, tmp_path):
    port, log = free_port(), tmp_path / "server.log"
    variables = {"ORB_INGEST_FLUSH_SECONDS": "0.3", "ORB_INGEST_BUFFER_EVENTS": "400"}
    server = serve(data, port, log, **variables)
    acknowledged: list[str] = []
    stop = threading.Event()
    clients = [threading.Thread(target=send_until_killed, args=(port, n, acknowledged, stop))
               for n in range(3)]
    for client in clients:
        client.start()
    time.sleep(1.5)  # segments sealed, landed, and one open, mid-append
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    stop.set()
    for client in clients:
        client.join()
    assert len(acknowledged) > 400
    # restarted (in this process, to save a server's start: the same lifespan, whose
    # start seals what the killed server left and whose stop lands all of it; the bench
    # restarts orb serve itself)
    registry = Registry.open(registry_url(data), data)
    with TestClient(create_app(ApiConfig(registry, require_auth=False, batcher=MicroBatcher(
            registry, lambda: datetime.now(UTC), Settings(ingest_flush_seconds=0.3),
            landing_process=False)))):
        pass
    assert "Traceback" not in log.read_text()
    counts = key_counts(data)
    assert {key: counts.get(key) for key in acknowledged} == dict.fromkeys(acknowledged, 1)
    assert set(counts.values()) == {1}  # unacknowledged lines landed at most once too
    assert not list(buffer_folder(Settings(str(data))).glob("api-*"))
