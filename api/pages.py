"""Orb's pagination: ``limit`` (1 to 100, default 20) and an opaque ``cursor``, answered as
``{"data": [...], "pagination_metadata": {"has_more", "next_cursor"}}``. The cursor names
the last item given (its id, base64url), so a page is stable while newer items are
created: lists run newest first, as Orb's do."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Query

from api.errors import bad_request

T = TypeVar("T")
Cursor = Annotated[str | None, Query(description="next_cursor of the page before")]
Limit = Annotated[int, Query(ge=1, le=100, description="Items per page")]


def page(items: Sequence[T], cursor: str | None, limit: int, key: Callable[[T], str],
         shape: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    """``items`` newest first; the page after ``cursor``."""
    start = 0
    if cursor is not None:
        try:
            after = base64.urlsafe_b64decode(cursor.encode()).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            after = None
        ids = [key(item) for item in items]
        if after is None or after not in ids:
            raise bad_request([f"query.cursor: {cursor!r} is not a cursor this list gave"])
        start = ids.index(after) + 1
    chosen = items[start:start + limit]
    more = start + limit < len(items)
    return {"data": [shape(item) for item in chosen],
            "pagination_metadata": {
                "has_more": more,
                "next_cursor": base64.urlsafe_b64encode(key(chosen[-1]).encode()).decode()
                if more else None}}
