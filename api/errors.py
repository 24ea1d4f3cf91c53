"""Errors in Orb's shape: ``{"type", "status", "title", "detail"}`` with Orb's error type
URIs, which the official SDK turns into its typed exceptions (``orb.NotFoundError``, ...).
Every error the app answers goes through here, a server fault included."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from api import bodies

ORB_ERRORS = "https://docs.withorb.com/reference/error-responses"
log = logging.getLogger(__name__)

# status: (the fragment of Orb's error type URI, title)
KINDS = {
    400: ("400-request-validation-errors", "Request validation error"),
    401: ("401-authentication-error", "Authentication error"),
    # Orb documents no 403 type; the SDK raises PermissionDeniedError on the status
    403: ("403-permission-denied", "Permission denied"),
    404: ("404-resource-not-found", "Resource not found"),
    405: ("405-method-not-allowed", "Method not allowed"),
    408: ("408-request-timeout", "Request timeout"),
    409: ("409-resource-conflict", "Resource conflict"),
    413: ("413-request-too-large", "Request too large"),
    500: ("500-internal-server-error", "Internal server error"),
}
URL_NOT_FOUND = "404-url-not-found"


class ErrorBody(BaseModel):
    """Orb's error shape, as the OpenAPI document declares it for every route."""
    type: str
    status: int
    title: str
    detail: str
    validation_errors: list[str] | None = None


# What any route may answer besides its success: declared once on the /v1 router, so
# the OpenAPI document says what the server does (and schemathesis can hold it to it).
RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": title}
    for status, (_fragment, title) in KINDS.items() if status not in (405, 408, 413)}


class ApiError(Exception):
    def __init__(self, status: int, detail: str, kind: str | None = None,
                 validation_errors: list[str] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.validation_errors = validation_errors


def not_found(what: str, resource_id: str) -> ApiError:
    return ApiError(404, f"{what} {resource_id!r} does not exist")


def bad_request(problems: list[str]) -> ApiError:
    return ApiError(400, "; ".join(problems), validation_errors=problems)


def error_body(status: int, detail: str, kind: str | None = None,
               validation_errors: list[str] | None = None) -> dict[str, Any]:
    fragment, title = KINDS.get(status, (f"{status}-error", "Error"))
    body: dict[str, Any] = {"type": f"{ORB_ERRORS}#{kind or fragment}", "status": status,
                            "title": title, "detail": detail}
    if validation_errors is not None:
        body["validation_errors"] = validation_errors
    return body


def _response(status: int, detail: str, kind: str | None = None,
              validation_errors: list[str] | None = None,
              headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, detail, kind, validation_errors), status_code=status,
                        headers=headers)


def where(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """``("body", "customer", "email")`` as ``body.customer.email``, the place a client
    can find."""
    return ".".join(str(part) for part in loc)


def validation_problems(errors: Any) -> list[str]:
    problems = []
    for error in errors:
        message = ("not a field this server takes (docs/api.md lists what differs from Orb)"
                   if error["type"] == "extra_forbidden" else error["msg"])
        problems.append(f"{where(error['loc'])}: {message}")
    return problems


def document(app: FastAPI) -> None:
    """The OpenAPI document without FastAPI's 422 answers: a malformed request is a 400 in
    Orb's shape here (``install``), declared by ``RESPONSES``."""
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, routes=app.routes)
            for path in spec.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            bodies.add_components(spec)
            for unused in ("HTTPValidationError", "ValidationError"):
                spec.get("components", {}).get("schemas", {}).pop(unused, None)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    async def api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _response(exc.status, exc.detail, exc.kind, exc.validation_errors, headers)

    async def invalid(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = validation_problems(exc.errors())
        return _response(400, "; ".join(problems), validation_errors=problems)

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        kind = URL_NOT_FOUND if exc.status_code == 404 else None
        detail = "no such endpoint" if exc.status_code == 404 else str(exc.detail)
        return _response(exc.status_code, detail, kind)

    async def fault(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _response(500, "the server failed to answer this request; it is logged")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, fault)
