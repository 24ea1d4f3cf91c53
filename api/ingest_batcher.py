"""The micro-batcher of ``orb serve`` (docs/ingestion.md#http-ingestion): ``POST
/v1/ingest`` appends a request's events to its tenant's ingest buffer
(``ingestion/ingest_buffer.py``) and answers once they are fsynced; a background thread
seals each tenant's segment when it is full or ``ORB_INGEST_FLUSH_SECONDS`` old and lands
it as one batch through ``ingest_files``, then reports it as a request's batch is
reported: to Dagster, to the audit trail (resource ``event_batch``), and to the alerts of
its customers (on a thread of their own, so that landing does not wait for them). The
landing itself runs in a process of its own (spawned, so that it holds none of the
server's files or locks), so that it does not compete with requests for the server's
interpreter lock.

Started and stopped by the app's lifespan (``api/app.py``) when ``ApiConfig.batcher`` is
set, as ``orb serve`` sets it. At start, every tenant's buffer seals what a killed server
left and the thread lands it first; at stop, everything buffered is sealed and landed.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from api.registry import Clock, Registry
from api.resources.events import report_to_dagster
from assets.events import materializations
from ingestion.ingest_buffer import IngestBuffer, buffer_folder, land_segment
from ingestion.landing_process import land, start_lander, warm_up
from storage.settings import Settings
from webhooks.alerts import after_batches

log = logging.getLogger(__name__)
AUDIT_ROLE = "ingest_buffer"  # the audit trail's role of a batch the server landed
RETRY_SECONDS = 5.0  # after a segment could not be landed (it stays, and is tried again)


@dataclass
class _Tenant:
    tenant_id: str
    settings: Settings
    buffer: IngestBuffer
    retry_at: float = 0.0


class MicroBatcher:
    def __init__(self, registry: Registry, clock: Clock, settings: Settings | None = None,
                 landing_process: bool = True):
        settings = settings or Settings.from_env()
        self._landing_process = landing_process
        self._landing: ProcessPoolExecutor | None = None
        self._registry, self._clock = registry, clock
        self.max_events, self.flush_seconds = (settings.ingest_buffer_events,
                                               settings.ingest_flush_seconds)
        self._tenants: dict[Path, _Tenant] = {}
        self._named: dict[str, _Tenant] = {}
        self._opening = threading.Lock()
        self._wake, self._stopping = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self._alerts: ThreadPoolExecutor | None = None

    def append(self, tenant_id: str, settings: Settings, data: bytes, events: int) -> None:
        """Buffer a request's serialized events; durable when it returns."""
        buffer = self._tenant(tenant_id, settings).buffer
        buffer.append(data, events)
        if buffer.has_full():
            self._wake.set()

    def _tenant(self, tenant_id: str, settings: Settings) -> _Tenant:
        # by the folder as the registry names it: resolving it costs each request ~1 ms
        tenant = self._named.get(settings.data_dir)
        if tenant is not None:
            return tenant
        folder = buffer_folder(settings)
        with self._opening:
            tenant = self._tenants.get(folder)
            if tenant is None:
                tenant = self._tenants[folder] = _Tenant(
                    tenant_id, settings, IngestBuffer.open(folder, self.max_events))
            self._named[settings.data_dir] = tenant
        return tenant

    # -- the thread -------------------------------------------------------------------

    def start(self) -> None:
        """Recover every tenant's buffer, then land in the background."""
        for tenant_id in self._registry.tenants():
            self._tenant(tenant_id, self._registry.tenant_settings(tenant_id))
        self._alerts = ThreadPoolExecutor(1, thread_name_prefix="ingest-alerts")
        self._start_landing()
        report_to_dagster([])  # opens Dagster's instance now, not at the first landing
        self._thread = threading.Thread(target=self._run, name="ingest-batcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Land everything buffered, then release the buffers."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self._land_due(0.0, retrying=True)
        for tenant in self._tenants.values():
            tenant.buffer.close()
        if self._alerts is not None:
            self._alerts.shutdown(wait=True)
        if self._landing is not None:
            self._landing.shutdown(wait=True)

    def _start_landing(self) -> None:
        if self._landing_process:
            self._landing = ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn"),
                initializer=start_lander, initargs=(os.getpid(),))
            self._landing.submit(warm_up)  # its imports, while nothing waits on it

    def _run(self) -> None:
        poll = min(0.1, self.flush_seconds / 4)
        while not self._stopping.is_set():
            self._wake.wait(poll)
            self._wake.clear()
            self._land_due(self.flush_seconds, retrying=False)

    def _land_due(self, max_age: float, retrying: bool) -> None:
        with self._opening:
            tenants = list(self._tenants.values())
        for tenant in tenants:
            tenant.buffer.seal_due(max_age)
            if not retrying and time.monotonic() < tenant.retry_at:
                continue
            for segment in tenant.buffer.sealed():
                try:
                    self._land(tenant, segment)
                except BrokenProcessPool:
                    log.exception("the landing process died; %s is tried again", segment)
                    self._start_landing()
                    tenant.retry_at = time.monotonic() + RETRY_SECONDS
                    break
                except Exception:
                    log.exception("could not land %s (kept, tried again in %.0f s)",
                                  segment, RETRY_SECONDS)
                    tenant.retry_at = time.monotonic() + RETRY_SECONDS
                    break

    def _land(self, tenant: _Tenant, segment: Path) -> None:
        now = self._clock()
        result = (self._landing.submit(land, tenant.settings, segment, now).result()
                  if self._landing else land_segment(tenant.settings, segment, now))
        if result is None or result.status != "ingested":
            return
        report_to_dagster(materializations([result]))
        self._registry.record(tenant.tenant_id, None, AUDIT_ROLE, "POST", "/v1/ingest",
                              "event_batch", result.batch_id, None, {
                                  "batch_id": result.batch_id, "file": result.file,
                                  "rows": result.rows, "accepted": result.accepted,
                                  "rejected": result.rejected,
                                  "duplicates": result.duplicates})
        if self._alerts is not None:
            self._alerts.submit(after_batches, tenant.settings, [result.batch_id], now)
