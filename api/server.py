"""``orb serve``: the API with uvicorn, on loopback unless keys guard it."""

from __future__ import annotations

import gc
import ipaddress
from pathlib import Path

import uvicorn

from api.access import ApiConfig
from api.app import REQUIRE_AUTH_VARIABLE, create_app, require_auth_from_env
from api.ingest_batcher import MicroBatcher
from api.limits import IdleDeadline
from api.registry import Registry, registry_url, utc_now
from storage.settings import Settings


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def open_registry(data_dir: str | Path) -> Registry:
    return Registry.open(registry_url(data_dir), Settings.from_env(data_dir).data_dir)


def check_exposure(host: str, require_auth: bool, has_keys: bool) -> None:
    """Beyond loopback, only with keys required and at least one key to require."""
    if loopback(host):
        return
    if not require_auth:
        raise ValueError(f"{REQUIRE_AUTH_VARIABLE} is off, so anyone who can reach {host} "
                         "could read and change billing: listen on 127.0.0.1 or turn it on")
    if not has_keys:
        raise ValueError(f"no API key exists: create one with `orb keys create --role admin` "
                         f"before listening on {host}")


def serve(data_dir: str | Path, host: str, port: int) -> None:
    registry = open_registry(data_dir)
    require_auth = require_auth_from_env()
    check_exposure(host, require_auth, registry.has_active_keys())
    # a connection idle, or slow to send a request's head, is closed (api/limits.py)
    api = ApiConfig(registry, require_auth, batcher=MicroBatcher(registry, utc_now))
    app = create_app(api)
    # What is loaded by now (the project, FastAPI, Dagster: millions of objects) lives as
    # long as the server: out of the collector's sight, a full collection no longer stops
    # every request for 300 ms every few seconds under ingest load (docs/capacity.md).
    gc.freeze()
    uvicorn.run(app, host=host, port=port,
                http=IdleDeadline,
                timeout_keep_alive=Settings.from_env(data_dir).ingest_idle_timeout)
