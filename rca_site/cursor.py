"""Keyset pagination for the JSON API's lists, newest first.

A cursor names the last row of the previous page by its (time, id), so a page never
repeats or skips a row when new ones arrive meanwhile, and reading page n costs the
same as reading page 1 (no OFFSET). It is opaque to clients: URL-safe base64 of JSON.
"""

import base64
import binascii
import json
from datetime import datetime

from django.db.models import Q


class CursorError(ValueError):
    """A cursor this API did not hand out."""


def encode(moment, pk):
    raw = json.dumps([moment.isoformat(), pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor):
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, pk = json.loads(raw)
        moment = datetime.fromisoformat(moment)
        if moment.tzinfo is None or not isinstance(pk, int) or isinstance(pk, bool):
            raise ValueError
        return moment, pk
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        raise CursorError(
            f"cursor {cursor[:40]!r} is not one this API handed out: pass `next_cursor` "
            "of the previous page unchanged, or leave it out for the first page"
        ) from None


def newest_first(queryset, field, cursor, limit):
    """One page of `queryset` ordered by (`field`, pk) descending: (rows, next cursor or
    None when this is the last page)."""
    if cursor:
        moment, pk = decode(cursor)
        queryset = queryset.filter(
            Q(**{f"{field}__lt": moment}) | Q(**{field: moment, "pk__lt": pk})
        )
    rows = list(queryset.order_by(f"-{field}", "-pk")[: limit + 1])
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode(getattr(last, field), last.pk)
