"""Writes through the state store's own operations, as ``orb customers`` and ``orb
subscriptions`` make them (cli/state.py): one transaction, or nothing and every problem
named by the request's field."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from api.access import Caller, config
from api.errors import bad_request, validation_problems
from api.views import View, read
from billing.catalog import Catalog
from billing.catalog.adjustments import ADJUSTMENT_TYPES
from state import Operation, StateError, StateStore, Written

Model = TypeVar("Model", bound=BaseModel)


def body_field(*field: str | int) -> str:
    """Where a problem is, for the state store's messages: the request body's field."""
    return ".".join(["body", *(str(part) for part in field)])


def validated(model: type[Model], values: dict[str, object]) -> Model:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise bad_request(validation_problems(
            {**error, "loc": ("body", *(p for p in error["loc"] if p not in ADJUSTMENT_TYPES))}
            for error in exc.errors())) from exc


def apply(caller: Caller, operations: Sequence[Operation], references: Catalog) -> Written:
    with StateStore.open(caller.deployment.state_store_url) as store:
        try:
            return store.apply(operations, references)
        except StateError as exc:
            raise bad_request(exc.problems) from exc


def view(request: Request, caller: Caller) -> View:
    """The tenant's deployment as it is now."""
    return read(caller.deployment, config(request).clock())
