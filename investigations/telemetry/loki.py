"""An async client of Loki's HTTP API (/loki/api/v1), for log evidence.

Times are aware datetimes or unix seconds and go to Loki as nanoseconds. Failures raise
the errors of investigations.telemetry.errors: QueryError quotes Loki's plain-text
message (a LogQL parse error, a bad range), BackendUnavailable follows bounded retries.
"""

import logging
from urllib.parse import quote

from investigations.telemetry.backend import Client
from investigations.telemetry.errors import QueryError, UnexpectedAnswer
from investigations.telemetry.results import (
    parse_patterns,
    parse_query_data,
    parse_vector,
)
from investigations.telemetry.timestamps import to_nanoseconds, to_step_seconds

log = logging.getLogger(__name__)

API_PREFIX = "/loki/api/v1"
DIRECTIONS = ("backward", "forward")


class LokiClient(Client):
    """One Loki (or a gateway in front of it, tenant header and auth included).

    Use as `async with LokiClient(config) as loki:` inside one event loop, or call
    `aclose()`. A config without an API prefix gets /loki/api/v1. Keyword arguments after
    `config` tune retries and caching (see Backend).
    """

    settings_name = "LOKI"
    api_prefix = API_PREFIX

    async def query_range(self, query, start, end, *, limit=None, direction=None, step=None):
        """A LogQL query over [start, end): QueryResult of `streams` for a log query
        (each Stream's entries are (ts_ns, line), newest first when direction is
        "backward", Loki's default) or of `matrix` for a metric query. `limit` caps log
        lines (Loki's default is 100); `step` (seconds or timedelta) applies to metric
        queries."""
        params = {
            "query": query,
            "limit": limit,
            "direction": _direction(direction),
            "step": None if step is None else to_step_seconds(step),
            "start": to_nanoseconds(start),
            "end": to_nanoseconds(end),
        }
        return await self._query("query_range", params)

    async def query(self, query, time, *, limit=None, direction=None):
        """An instant LogQL query at `time`: QueryResult of `vector` for a metric query
        (or `streams` for a log query)."""
        params = {
            "query": query,
            "limit": limit,
            "direction": _direction(direction),
            "time": to_nanoseconds(time),
        }
        return await self._query("query", params)

    async def labels(self, start, end, *, query=None):
        """Label names seen in [start, end), optionally only of streams matching `query`."""
        return list(await self._data("labels", _window(start, end, query=query)) or [])

    async def label_values(self, name, start, end, *, query=None):
        """Values of label `name` seen in [start, end)."""
        path = f"label/{quote(name, safe='')}/values"
        return list(await self._data(path, _window(start, end, query=query)) or [])

    async def series(self, match, start, end):
        """Label sets of the streams matching one selector or a list of them."""
        matches = [match] if isinstance(match, str) else list(match)
        params = [("match[]", m) for m in matches] + list(_window(start, end).items())
        return [dict(labels) for labels in await self._data("series", params) or []]

    async def index_volume(self, query, start, end, *, limit=None):
        """Bytes ingested in [start, end) per label set matching `query`, as Samples
        (value = bytes), largest first as Loki sorts them."""
        params = {"query": query, "limit": limit, **_window(start, end)}
        data = await self._data("index/volume", params)
        try:
            return parse_vector(data["result"])
        except (KeyError, TypeError, ValueError) as e:
            raise UnexpectedAnswer(f"Loki's index/volume answer could not be read: {e}") from e

    async def patterns(self, query, start, end, *, step=None):
        """The log templates Loki's pattern ingester detected for `query`, as Patterns;
        None when this Loki has no patterns endpoint (HTTP 404: an older Loki, or the
        pattern ingester is off), so the caller falls back to its own template mining."""
        params = {
            "query": query,
            "step": None if step is None else to_step_seconds(step),
            **_window(start, end),
        }
        try:
            data = await self._data("patterns", params)
        except QueryError as e:
            if e.status != 404:
                raise
            log.info("Loki has no patterns endpoint; falling back: %s", e)
            return None
        return parse_patterns(data or [])

    async def _query(self, path, params):
        answer = await self._backend.get(path, params)
        return parse_query_data(answer["data"], answer.get("warnings") or [])

    async def _data(self, path, params):
        return (await self._backend.get(path, params))["data"]


def _window(start, end, **extra):
    return {**extra, "start": to_nanoseconds(start), "end": to_nanoseconds(end)}


def _direction(direction):
    if direction is not None and direction not in DIRECTIONS:
        raise ValueError(f"direction={direction!r}; use one of {', '.join(DIRECTIONS)}")
    return direction
