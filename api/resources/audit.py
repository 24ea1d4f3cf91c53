"""The audit trail of the caller's tenant: every write made through the API, oldest
first (admin keys only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.access import Admin, config
from api.errors import bad_request
from api.pages import Cursor, Limit
from api.registry import AuditEvent
from api.shapes import instant

router = APIRouter(tags=["audit"])


def shaped(event: AuditEvent) -> dict[str, Any]:
    return {"id": str(event.audit_id), "created_at": instant(event.at),
            "key_id": event.key_id, "role": event.role, "method": event.method,
            "path": event.path, "resource": event.resource,
            "resource_id": event.resource_id, "before": event.before, "after": event.after}


@router.get("/audit_events")
def list_audit_events(request: Request, caller: Admin,
                      cursor: Cursor = None, limit: Limit = 20) -> dict[str, Any]:
    if cursor is not None and not cursor.isdigit():
        raise bad_request([f"query.cursor: {cursor!r} is not a cursor this list gave"])
    events = config(request).registry.audit_events(caller.tenant_id, int(cursor or 0),
                                                   limit + 1)
    shown = events[:limit]
    more = len(events) > limit
    return {"data": [shaped(e) for e in shown],
            "pagination_metadata": {"has_more": more,
                                    "next_cursor": str(shown[-1].audit_id) if more else None}}
