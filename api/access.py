"""Who is calling, and which deployment they see: the one place keys, roles and tenants
are enforced (docs/api.md).

``authorize`` runs for every route (the app declares it once): it resolves the request's
key to its tenant's deployment (``storage.settings.Settings``, the tenant's own data
folder: state store, catalog and lake) and refuses a write to a read-only key. Handlers
get only that deployment, so another tenant's ids do not exist for them: 404, not 403.

``owned`` runs next on every route (declared once too): each id in the request's path
must name a resource of the caller's tenant, found by the finder its resource module
registered for that path parameter (``path_id``), else Orb's 404 before the body is
checked. ``uncovered`` names a route's path parameter no finder is registered for: the app
refuses to start with one, so a new route is checked without code of its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute

from api.errors import ApiError
from api.registry import DEFAULT_TENANT, Clock, Registry, Role, StoredResponse, utc_now
from storage.settings import Settings

if TYPE_CHECKING:
    from api.ingest_batcher import MicroBatcher

E = TypeVar("E", bound=Callable[..., Any])

READS = frozenset({"GET", "HEAD", "OPTIONS"})
# The endpoints of POSTs that only read (Orb sends a search's ids, an evaluation's
# timeframe in a body), marked with ``reads``: a read-only key may call them.
READ_POSTS: set[Callable[..., Any]] = set()
WRITERS: frozenset[Role] = frozenset({"billing_operator", "admin"})
IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class ApiConfig:
    registry: Registry
    # ORB_API_REQUIRE_AUTH: off, a request without a key is the default tenant's admin
    require_auth: bool = True
    clock: Clock = utc_now
    # ``orb serve``'s: POST /ingest buffers and the batcher lands (started by the app's
    # lifespan); None (the in-process tests): each request is ingested as it comes
    batcher: MicroBatcher | None = None


@dataclass(frozen=True)
class Caller:
    tenant_id: str
    key_id: str | None
    role: Role
    deployment: Settings

    @property
    def actor(self) -> str:
        """Who the state store records as having made a change."""
        return f"api:{self.key_id or 'anonymous'}"


def reads(endpoint: E) -> E:
    """Mark a POST endpoint as one that only reads (``READ_POSTS``)."""
    READ_POSTS.add(endpoint)
    return endpoint


def config(request: Request) -> ApiConfig:
    value = request.app.state.api
    assert isinstance(value, ApiConfig)
    return value


def authorize(request: Request) -> Caller:
    """The dependency every route has (declared once, on the ``/v1`` router); once per
    request (kept on it for ``IdempotentRoute``, which needs the tenant first)."""
    cached = getattr(request.state, "caller", None)
    if isinstance(cached, Caller):
        return cached
    api = config(request)
    header = request.headers.get("authorization")
    if header is None and not api.require_auth:
        caller = Caller(DEFAULT_TENANT, None, "admin",
                        api.registry.tenant_settings(DEFAULT_TENANT))
    else:
        scheme, _, secret = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise ApiError(401, "send an API key as `Authorization: Bearer <key>`")
        key = api.registry.authenticate(secret.strip())
        if key is None:
            raise ApiError(401, "the API key is unknown or revoked")
        caller = Caller(key.tenant_id, key.key_id, key.role,
                        api.registry.tenant_settings(key.tenant_id))
    endpoint = getattr(request.scope.get("route"), "endpoint", None)
    if (request.method not in READS and endpoint not in READ_POSTS
            and caller.role not in WRITERS):
        raise ApiError(403, f"a {caller.role} key cannot {request.method} "
                            f"{request.url.path}: writes need a billing_operator or admin key")
    request.state.caller = caller
    return caller


Authorized = Annotated[Caller, Depends(authorize)]

# A finder returns the resource a path id names in the caller's tenant, or raises Orb's
# 404 (``errors.not_found``); one per path parameter name, registered by its resource.
Finder = Callable[[Request, Caller, str], object]
FINDERS: dict[str, Finder] = {}


def path_id(parameter: str) -> Callable[[Finder], Finder]:
    """Register the finder of the path parameter ``parameter`` (one per name)."""
    def register(finder: Finder) -> Finder:
        assert parameter not in FINDERS, f"two finders for path parameter {parameter!r}"
        FINDERS[parameter] = finder
        return finder
    return register


async def owned(request: Request, caller: Authorized) -> None:
    """The tenant check: every id in the path is the caller's tenant's, else a 404 (never
    a 403 that would tell the id exists). FastAPI runs it before it validates the body.
    What each finder found is kept on the request for the handler (``found``). Async, so
    that a path without ids (``POST /ingest``'s) costs no hop to a worker thread."""
    request.state.found = {}
    if request.path_params:
        request.state.found = await run_in_threadpool(lambda: {
            parameter: FINDERS[parameter](request, caller, value)
            for parameter, value in request.path_params.items()})


def found(request: Request, parameter: str) -> Any:
    """The resource the path parameter ``parameter`` names, as ``owned`` found it."""
    return request.state.found[parameter]


def uncovered(routes: Iterable[BaseRoute]) -> dict[str, set[str]]:
    """Each route path whose parameters include one with no finder: those parameters."""
    missing: dict[str, set[str]] = {}
    for route in routes:
        if isinstance(route, APIRoute):
            names = set(route.param_convertors) - set(FINDERS)
            if names:
                missing[route.path] = names
    return missing


def admin(caller: Authorized) -> Caller:
    if caller.role != "admin":
        raise ApiError(403, f"a {caller.role} key cannot read the audit trail: it needs "
                            "an admin key")
    return caller


Admin = Annotated[Caller, Depends(admin)]


def audit(request: Request, caller: Caller, resource: str, resource_id: str, before: Any,
          after: Any) -> None:
    """Append a write to the audit trail: who, when, what, and the resource's Orb shape
    before (None: created) and after."""
    config(request).registry.record(caller.tenant_id, caller.key_id, caller.role,
                                    request.method, request.url.path, resource, resource_id,
                                    before, after)


class IdempotentRoute(APIRoute):
    """A write (POST, PUT) with an ``Idempotency-Key`` header is answered once (Orb's SDK
    sends one with each, the same on its retries): the same key with the same request
    (method, path, query, body) replays the stored answer, with another request it is a
    409. Keys are per tenant; only successful answers are kept, so a refused request can
    be corrected and sent again with the same key."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            key = request.headers.get(IDEMPOTENCY_HEADER)
            if request.method in READS or not key:
                return await handler(request)
            caller = await run_in_threadpool(authorize, request)
            body = await request.body()
            fingerprint = hashlib.sha256(b"\n".join([
                request.method.encode(), request.url.path.encode(),
                request.url.query.encode(), body])).hexdigest()
            registry = config(request).registry
            stored = await run_in_threadpool(registry.stored_response, caller.tenant_id, key)
            if stored is not None:
                if stored.fingerprint != fingerprint:
                    raise ApiError(409, f"the {IDEMPOTENCY_HEADER} {key!r} was used with "
                                        "another request; use a new key for a new request")
                return Response(stored.body, stored.status, media_type="application/json",
                                headers={"Idempotent-Replayed": "true"})
            response = await handler(request)
            if 200 <= response.status_code < 300:
                await run_in_threadpool(registry.store_response, caller.tenant_id, key,
                                        StoredResponse(fingerprint, response.status_code,
                                                       bytes(response.body)))
            return response

        return route
