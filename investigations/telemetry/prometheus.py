"""An async client of the Prometheus HTTP API, for metric evidence.

One client serves every Prometheus-compatible store through its API prefix: Prometheus
and Thanos answer under /api/v1, Cortex and Mimir under /prometheus/api/v1, Cortex also
under its legacy /api/prom/api/v1. Times are aware datetimes or unix seconds and go out
as unix seconds. A refusal raises QueryError quoting the JSON `error` (its `errorType` in
`error_type`); BackendUnavailable follows bounded retries.
"""

from datetime import datetime
from typing import NamedTuple
from urllib.parse import quote

import yaml

from investigations.telemetry.backend import Client
from investigations.telemetry.errors import UnexpectedAnswer
from investigations.telemetry.results import parse_query_data, parse_value
from investigations.telemetry.timestamps import to_step_seconds, to_unix_seconds

API_PREFIX = "/api/v1"


class Alert(NamedTuple):
    """An alert the server's rules hold now ("pending" or "firing")."""

    labels: dict[str, str]
    annotations: dict[str, str]
    state: str
    active_at: datetime | None
    value: float


class PrometheusClient(Client):
    """One Prometheus-compatible store (tenant header and auth included).

    Use as `async with PrometheusClient(config) as prometheus:` inside one event loop, or
    call `aclose()`. A config without an API prefix gets /api/v1. Keyword arguments after
    `config` tune retries and caching (see Backend).
    """

    settings_name = "PROMETHEUS"
    api_prefix = API_PREFIX

    async def query(self, query, time=None, *, timeout=None):
        """An instant PromQL query at `time` (the server's now when None): QueryResult
        of `vector`, `scalar`, `matrix` (a range selector) or `string`. `timeout`
        (seconds) bounds the evaluation on the server."""
        params = {
            "query": query,
            "time": None if time is None else to_unix_seconds(time),
            "timeout": None if timeout is None else f"{to_step_seconds(timeout)}s",
        }
        return await self._query("query", params)

    async def query_range(self, query, start, end, step, *, timeout=None):
        """A PromQL range query: QueryResult of `matrix`, each Series' points
        (unix seconds, float) every `step` (seconds or timedelta) from `start` to `end`.
        The server refuses more than 11,000 points per series (QueryError). `timeout`
        (seconds) bounds the evaluation on the server."""
        params = {
            "query": query,
            "start": to_unix_seconds(start),
            "end": to_unix_seconds(end),
            "step": to_step_seconds(step),
            "timeout": None if timeout is None else f"{to_step_seconds(timeout)}s",
        }
        return await self._query("query_range", params)

    async def series(self, match, start=None, end=None, *, limit=None):
        """Label sets (`__name__` included) of the series matching one selector or a
        list of them."""
        params = _matches(match) + _window(start, end) + [("limit", limit)]
        return [dict(labels) for labels in await self._data("series", params) or []]

    async def labels(self, start=None, end=None, *, match=None):
        """Label names, optionally only of series matching `match`."""
        params = _matches(match) + _window(start, end)
        return list(await self._data("labels", params) or [])

    async def label_values(self, name, start=None, end=None, *, match=None):
        """Values of label `name` (`__name__` gives metric names)."""
        params = _matches(match) + _window(start, end)
        path = f"label/{quote(name, safe='')}/values"
        return list(await self._data(path, params) or [])

    async def metadata(self, metric=None, *, limit=None):
        """Metric name -> list of {"type", "help", "unit"} as scraped targets declared
        them; may be empty (a store fed by remote write or backfill has none)."""
        data = await self._data("metadata", {"metric": metric, "limit": limit})
        return {name: [dict(entry) for entry in entries] for name, entries in data.items()}

    async def external_labels(self):
        """The `global.external_labels` of the server's configuration: labels it adds to
        the alerts it sends (and to what it federates or writes remotely), not to the
        series it stores. Queriers that do not show a configuration (Thanos, Mimir)
        answer QueryError."""
        data = await self._data("status/config", {})
        try:
            config = yaml.safe_load(data["yaml"]) or {}
            labels = (config.get("global") or {}).get("external_labels") or {}
            return {str(k): str(v) for k, v in labels.items()}
        except (KeyError, TypeError, AttributeError, yaml.YAMLError) as e:
            raise UnexpectedAnswer(f"a configuration answer could not be read: {e}") from e

    async def alerts(self):
        """The alerts the server's rules hold now, as Alerts (empty without rules)."""
        data = await self._data("alerts", {})
        try:
            return [_alert(item) for item in data["alerts"]]
        except (KeyError, TypeError, ValueError) as e:
            raise UnexpectedAnswer(f"an alerts answer could not be read: {e}") from e

    async def _query(self, path, params):
        answer = await self._backend.get(path, params)
        warnings = [*(answer.get("warnings") or []), *(answer.get("infos") or [])]
        return parse_query_data(answer["data"], warnings)

    async def _data(self, path, params):
        return (await self._backend.get(path, params))["data"]


def _matches(match):
    if match is None:
        return []
    return [("match[]", m) for m in ([match] if isinstance(match, str) else match)]


def _window(start, end):
    return [
        ("start", None if start is None else to_unix_seconds(start)),
        ("end", None if end is None else to_unix_seconds(end)),
    ]


def _alert(item):
    active_at = item.get("activeAt")
    return Alert(
        labels=dict(item["labels"]),
        annotations=dict(item.get("annotations") or {}),
        state=item["state"],
        active_at=datetime.fromisoformat(active_at.replace("Z", "+00:00")) if active_at else None,
        value=parse_value(item["value"]) if item.get("value") is not None else float("nan"),
    )
