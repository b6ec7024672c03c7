"""Async clients of the telemetry backends an investigation reads: Loki for logs, a
Prometheus-compatible store for metrics.

    async with LokiClient(BackendConfig.from_settings("LOKI")) as loki:
        result = await loki.query_range('{service="checkout"} |= "error"', start, end)

(`from_settings` gives None for a backend whose URL is not set: it is not configured.)

Every failure is a TelemetryError whose message a person or a model can act on.
"""

from investigations.telemetry.backend import BackendConfig, clear_cache
from investigations.telemetry.errors import (
    BackendUnavailable,
    QueryError,
    TelemetryError,
    UnexpectedAnswer,
)
from investigations.telemetry.loki import LokiClient
from investigations.telemetry.prometheus import Alert, PrometheusClient
from investigations.telemetry.results import Pattern, QueryResult, Sample, Series, Stream

__all__ = [
    "Alert",
    "BackendConfig",
    "BackendUnavailable",
    "LokiClient",
    "Pattern",
    "PrometheusClient",
    "QueryError",
    "QueryResult",
    "Sample",
    "Series",
    "Stream",
    "TelemetryError",
    "UnexpectedAnswer",
    "clear_cache",
]
