"""Times as the backends take them: Loki nanoseconds, Prometheus unix seconds.

Callers give aware datetimes or numbers (unix seconds); a naive datetime is refused
rather than guessed to be UTC. Conversions go through Decimal so that no float rounding
shows up in a URL (1795577340.1 s is 1795577340100000000 ns, not ...099999744).
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NANOSECONDS_PER_SECOND = 10**9


def to_nanoseconds(value):
    """A time as Loki's nanosecond string, e.g. "1795577340000000000"."""
    return str(int(_seconds(value) * NANOSECONDS_PER_SECOND))


def to_unix_seconds(value):
    """A time as Prometheus' unix seconds: "1795578586", or "1795578586.25" when it has
    a fraction."""
    return _plain(_seconds(value))


def to_step_seconds(value):
    """A step (a timedelta or a number of seconds) as seconds: "30", "0.5"."""
    if isinstance(value, timedelta):
        seconds = Decimal(value // timedelta(microseconds=1)) / 10**6
    elif isinstance(value, int | float):
        seconds = Decimal(str(value))
    else:
        raise TypeError(f"a step is a timedelta or a number of seconds, not {value!r}")
    return _plain(seconds)


def _seconds(value):
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{value!r} is naive; give an aware datetime (e.g. tzinfo=UTC)")
        return Decimal((value - EPOCH) // timedelta(microseconds=1)) / 10**6
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise TypeError(f"a time is an aware datetime or unix seconds, not {value!r}")
    return Decimal(str(value))


def _plain(seconds):
    if seconds == seconds.to_integral_value():
        return str(int(seconds))
    return format(seconds.normalize(), "f")
