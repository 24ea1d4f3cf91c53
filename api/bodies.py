"""Request bodies an endpoint reads itself, as bytes, rather than through FastAPI's
parameter: ``POST /v1/ingest`` decodes a valid request with msgspec, ten times faster
than pydantic (docs/capacity.md#http-ingestion), and only otherwise validates it with its
pydantic model. The OpenAPI document declares the model all the same (``declared``), and
``parsed`` validates exactly as FastAPI does a declared body, with the same errors."""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

M = TypeVar("M", bound=BaseModel)
COMPONENTS = "#/components/schemas/{model}"
_DECLARED: list[type[BaseModel]] = []


async def _body(request: Request) -> bytes:
    return await request.body()


RawBody = Annotated[bytes, Depends(_body)]


def declared(model: type[BaseModel]) -> dict[str, Any]:
    """The ``openapi_extra`` of an endpoint whose JSON body is ``model``."""
    _DECLARED.append(model)
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": COMPONENTS.format(model=model.__name__)}}}}}


def add_components(spec: dict[str, Any]) -> None:
    """Put the declared models (and the models they use) into the document's schemas."""
    _, schemas = models_json_schema([(model, "validation") for model in _DECLARED],
                                    ref_template=COMPONENTS)
    spec.setdefault("components", {}).setdefault("schemas", {}).update(
        schemas.get("$defs", {}))


def parsed(model: type[M], data: bytes) -> M:
    """``data`` validated as FastAPI validates a declared body: parsed by ``json.loads``
    (which takes NaN, for the model to refuse), errors located under ``body``."""
    if not data:
        raise RequestValidationError([{"type": "missing", "loc": ("body",),
                                       "msg": "Field required", "input": None}])
    try:
        value = json.loads(data)
    except json.JSONDecodeError as exc:
        raise RequestValidationError([{
            "type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error",
            "input": {}, "ctx": {"error": exc.msg}}]) from None
    try:
        return model.model_validate(value, from_attributes=True)  # as FastAPI does
    except ValidationError as exc:
        raise RequestValidationError([{**error, "loc": ("body", *error["loc"])}
                                      for error in exc.errors()]) from None
