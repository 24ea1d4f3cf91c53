"""Plans (with their prices) and billable metrics: Orb's ``/plans`` and ``/metrics``, read
from the catalog folder (catalog as code, docs/pricing.md), so read-only here."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Request

from api.access import Authorized, Caller, IdempotentRoute, path_id
from api.errors import not_found
from api.pages import Cursor, Limit, page
from api.shapes import metric, plan
from api.views import View
from api.writes import view
from billing.catalog.models import Metric, Plan

router = APIRouter(tags=["plans", "metrics"], route_class=IdempotentRoute)


def _today(current: View) -> date:
    # a plan's version in effect, on the server's UTC date: plans have no time zone
    return current.now.date()


def _plan(current: View, plan_id: str) -> Plan:
    found = current.plan(plan_id)
    if found is None:
        raise not_found("plan", plan_id)
    return found


@path_id("plan_id")
@path_id("external_plan_id")  # both are the catalog's plan id
def _tenants_plan(request: Request, caller: Caller, plan_id: str) -> Plan:
    return _plan(view(request, caller), plan_id)


def _metric(current: View, metric_id: str) -> Metric:
    found = next((m for m in current.references.metrics if m.id == metric_id), None)
    if found is None:
        raise not_found("metric", metric_id)
    return found


@path_id("metric_id")
def _tenants_metric(request: Request, caller: Caller, metric_id: str) -> Metric:
    return _metric(view(request, caller), metric_id)


@router.get("/plans")
def list_plans(request: Request, caller: Authorized,
               cursor: Cursor = None, limit: Limit = 20) -> dict[str, Any]:
    current = view(request, caller)
    return page(current.references.plans, cursor, limit, lambda p: p.id,
                lambda p: plan(current, p, _today(current)))


@router.get("/plans/external_plan_id/{external_plan_id}")
def fetch_plan_by_external_id(external_plan_id: str, request: Request, caller: Authorized,
                             ) -> dict[str, Any]:
    current = view(request, caller)
    return plan(current, _plan(current, external_plan_id), _today(current))


@router.get("/plans/{plan_id}")
def fetch_plan(plan_id: str, request: Request, caller: Authorized) -> dict[str, Any]:
    current = view(request, caller)
    return plan(current, _plan(current, plan_id), _today(current))


@router.get("/metrics")
def list_metrics(request: Request, caller: Authorized,
                 cursor: Cursor = None, limit: Limit = 20) -> dict[str, Any]:
    current = view(request, caller)
    return page(current.references.metrics, cursor, limit, lambda m: m.id,
                lambda m: metric(current, m))


@router.get("/metrics/{metric_id}")
def fetch_metric(metric_id: str, request: Request, caller: Authorized) -> dict[str, Any]:
    current = view(request, caller)
    return metric(current, _metric(current, metric_id))
