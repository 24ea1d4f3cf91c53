"""Orb's ``/dimensional_price_groups``: the catalog folder's dimensional price groups
(docs/pricing.md#dimensional-price-groups), read-only here as plans are."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.access import Authorized, Caller, IdempotentRoute, path_id
from api.errors import not_found
from api.pages import Cursor, Limit, page
from api.shapes import dimensional_price_group
from api.views import View
from api.writes import view
from billing.catalog.price_groups import DimensionalPriceGroup

router = APIRouter(tags=["dimensional_price_groups"], route_class=IdempotentRoute)


def _group(current: View, ref: str, shown: str) -> DimensionalPriceGroup:
    try:
        return current.references.dimensional_price_group(ref)
    except KeyError:
        raise not_found("dimensional price group", shown) from None


@path_id("dimensional_price_group_id")
def _tenants_group(request: Request, caller: Caller, ref: str) -> DimensionalPriceGroup:
    return _group(view(request, caller), ref, ref)


@path_id("external_dimensional_price_group_id")
def _tenants_group_by_external_id(request: Request, caller: Caller, ref: str
                                  ) -> DimensionalPriceGroup:
    return _group(view(request, caller), f"external:{ref}", ref)


@router.get("/dimensional_price_groups")
def list_dimensional_price_groups(request: Request, caller: Authorized,
                                  cursor: Cursor = None, limit: Limit = 20) -> dict[str, Any]:
    current = view(request, caller)
    return page(current.references.dimensional_price_groups, cursor, limit, lambda g: g.id,
                lambda g: dimensional_price_group(current, g))


@router.get("/dimensional_price_groups/external_dimensional_price_group_id/"
            "{external_dimensional_price_group_id}")
def fetch_dimensional_price_group_by_external_id(external_dimensional_price_group_id: str,
                                                 request: Request, caller: Authorized,
                                                 ) -> dict[str, Any]:
    current = view(request, caller)
    return dimensional_price_group(current, _group(
        current, f"external:{external_dimensional_price_group_id}",
        external_dimensional_price_group_id))


@router.get("/dimensional_price_groups/{dimensional_price_group_id}")
def fetch_dimensional_price_group(dimensional_price_group_id: str, request: Request,
                                  caller: Authorized) -> dict[str, Any]:
    current = view(request, caller)
    return dimensional_price_group(current, _group(current, dimensional_price_group_id,
                                                   dimensional_price_group_id))
