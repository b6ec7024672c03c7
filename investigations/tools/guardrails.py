"""Limits on every query an investigator may send, so that no tool call can hurt a backend.

A query outside a guardrail is refused with a message that says what to narrow; the
model reads it as a tool error and asks again.
"""

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MAX_LOG_RANGE = timedelta(hours=6)
MAX_METRIC_RANGE = timedelta(hours=24)
MAX_LOG_LINES = 1000
DEFAULT_LOG_LINES = 500
MAX_SERIES = 200
MIN_STEP_SECONDS = 60
MAX_STEP_SECONDS = 300
# Prometheus refuses a range query of more than 11,000 points per series.
MAX_POINTS_PER_SERIES = 11_000
QUERY_TIMEOUT_SECONDS = 30
MAX_QUERY_CHARS = 2000


class GuardrailError(ValueError):
    """The query is refused before it reaches a backend; the message says what to change."""


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime

    @property
    def seconds(self):
        return (self.end - self.start).total_seconds()


def parse_time(value, name):
    """An RFC 3339 time (a trailing Z is fine) or Unix seconds, as an aware UTC datetime."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise GuardrailError(
            f"{name}={value!r} is not a time; use RFC 3339 such as 2026-11-25T04:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def time_range(start, end, *, default, now, max_range, what):
    """The range to query: defaults from the investigation, never past its `now`.

    `default` is the (start, end) to use for what the caller left out; an `end` after
    `now` is clamped to it (an investigation of the past never reads data after it).
    """
    start = parse_time(start, "start") if start is not None else default[0]
    end = parse_time(end, "end") if end is not None else default[1]
    end = min(end, now)
    if end <= start:
        raise GuardrailError(
            f"the range is empty: start {start:%Y-%m-%dT%H:%M:%SZ} is not before end "
            f"{end:%Y-%m-%dT%H:%M:%SZ} (the investigation's now is {now:%Y-%m-%dT%H:%M:%SZ})"
        )
    if end - start > max_range:
        raise GuardrailError(
            f"{what} may cover at most {format_duration(max_range)}; this range covers "
            f"{format_duration(end - start)}. Narrow start/end to the part that matters "
            "(the incident window is a good start)."
        )
    return TimeRange(start, end)


def choose_step(range_seconds, requested=None):
    """A range-query step: 60 to 300 s from the range, never over Prometheus' point cap.

    A requested step is honoured when it keeps the series under the point cap.
    """
    if requested is not None:
        if requested <= 0:
            raise GuardrailError(f"step={requested} must be a positive number of seconds")
        if range_seconds / requested > MAX_POINTS_PER_SERIES:
            smallest = math.ceil(range_seconds / MAX_POINTS_PER_SERIES)
            raise GuardrailError(
                f"step={requested}s gives more than {MAX_POINTS_PER_SERIES} points per series "
                f"over this range; use step >= {smallest}s or a shorter range"
            )
        return requested
    step = math.ceil(range_seconds / 120 / MIN_STEP_SECONDS) * MIN_STEP_SECONDS
    step = min(max(step, MIN_STEP_SECONDS), MAX_STEP_SECONDS)
    return max(step, math.ceil(range_seconds / MAX_POINTS_PER_SERIES))


def line_limit(requested):
    if requested is None:
        return DEFAULT_LOG_LINES
    if not 1 <= requested <= MAX_LOG_LINES:
        raise GuardrailError(
            f"limit={requested} is outside 1..{MAX_LOG_LINES}; ask for fewer lines, or use the "
            "log patterns tool to see every template with its count"
        )
    return requested


def check_query(query, language):
    query = (query or "").strip()
    if not query:
        raise GuardrailError(f"the {language} query is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise GuardrailError(f"the {language} query is over {MAX_QUERY_CHARS} characters")
    return query


def check_series_count(count, query):
    if count > MAX_SERIES:
        raise GuardrailError(
            f"{query!r} returned {count} series, over the cap of {MAX_SERIES}; aggregate it "
            "(e.g. sum by (service) (...)) or add label matchers"
        )


def format_duration(delta):
    seconds = int(delta.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"
