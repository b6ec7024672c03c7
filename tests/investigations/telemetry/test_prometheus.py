"""PrometheusClient against every recorded Prometheus answer
(shared/fixtures/prometheus), and under the API prefixes of Mimir and Cortex."""

import asyncio
import math
from datetime import UTC, datetime

import httpx
import pytest

from investigations.telemetry import BackendConfig, PrometheusClient, QueryError, Sample
from tests.investigations.telemetry.recorded import (
    Expectations,
    mock_router,
    recorded,
    recorded_names,
    replay,
)

PROMETHEUS_URL = "http://prometheus.test:9090"
CONFIG = BackendConfig(name="Prometheus", url=PROMETHEUS_URL)


async def call(prometheus, request, prefix="/api/v1/"):
    """The client method that sends `request`, called with its recorded params (times
    as the unix seconds a caller may pass instead of datetimes)."""
    path = request["path"].removeprefix(prefix)
    params = dict(request["params"])
    window = {k: int(params.pop(k)) for k in ("start", "end") if k in params}
    if path == "query":
        return await prometheus.query(params.pop("query"), int(params.pop("time")))
    if path == "query_range":
        return await prometheus.query_range(
            params.pop("query"), **window, step=int(params.pop("step"))
        )
    if path == "series":
        return await prometheus.series(params.pop("match[]"), **window)
    if path == "labels":
        return await prometheus.labels(**window)
    if path.startswith("label/"):
        return await prometheus.label_values(path.split("/")[1], **window)
    if path == "metadata":
        return await prometheus.metadata(limit=int(params.pop("limit")))
    if path == "alerts":
        return await prometheus.alerts()
    raise AssertionError(f"no client method for {request['path']}")


def ask(record, config=CONFIG, path_prefix=""):
    """What the client returns (or raises) when the server answers `record`; the server
    expects the recorded request under `path_prefix` + the recorded path."""
    return replay(PrometheusClient, config, call, record, path_prefix)


EXPECTATIONS = Expectations()
expect = EXPECTATIONS.on


@pytest.mark.parametrize("name", recorded_names("prometheus"))
def test_recorded_answer(name):
    record = recorded("prometheus", name)
    assert name in EXPECTATIONS, f"no expectation for prometheus/{name}.json"
    EXPECTATIONS[name](ask(record), record["body"])


@expect("error_parse")
def error_parse(error, body):
    assert isinstance(error, QueryError)
    assert (error.status, error.error_type) == (400, "bad_data")
    assert str(error) == (
        "Prometheus answered HTTP 400, bad_data to /api/v1/query: "
        'invalid parameter "query": 1:12: parse error: unclosed left parenthesis'
    )


@expect("error_bad_step")
def error_bad_step(error, body):
    assert isinstance(error, QueryError)
    assert "zero or negative query resolution step widths are not accepted" in str(error)


@expect("error_too_many_points")
def error_too_many_points(error, body):
    assert isinstance(error, QueryError)
    assert error.status == 400
    assert "exceeded maximum resolution of 11,000 points per timeseries" in str(error)
    assert error.message == body["error"]


@expect("query_vector")
def query_vector(result, body):
    assert result.result_type == "vector"
    assert result.vector == [
        Sample(
            {
                "__name__": "up",
                "instance": "127.0.0.1:9090",
                "job": "prometheus",
                "namespace": "monitoring",
                "service": "prometheus",
            },
            1795579186.0,
            1.0,
        )
    ]


@expect("query_scalar")
def query_scalar(result, body):
    assert result.result_type == "scalar"
    assert result.scalar == (1795579186.0, 0.42)
    assert len(result) == 1


@expect("query_range_matrix")
def query_range_matrix(result, body):
    assert result.result_type == "matrix"
    assert len(result.matrix) == len(body["data"]["result"])
    labels, points = result.matrix[0]
    assert labels["handler"] == "/api/v1/alertmanagers"
    assert points == [(1795579186.0, 0.0)]
    metrics = next(s for s in result.matrix if s.labels["handler"] == "/metrics")
    assert metrics.points[0] == (1795579126.0, 0.03816956840771129)


@expect("query_range_empty")
def query_range_empty(result, body):
    assert result.result_type == "matrix"
    assert result.matrix == []


@expect("series")
def series(result, body):
    assert result == [
        {
            "__name__": "up",
            "instance": "127.0.0.1:9090",
            "job": "prometheus",
            "namespace": "monitoring",
            "service": "prometheus",
        }
    ]


@expect("labels")
def labels(result, body):
    assert len(result) == 30
    assert {"__name__", "job", "namespace", "service"} <= set(result)


@expect("label_job_values")
def label_job_values(result, body):
    assert result == ["prometheus"]


@expect("metadata")
def metadata(result, body):
    assert len(result) == 5
    assert result["go_memstats_sys_bytes"] == [
        {"type": "gauge", "help": "Number of bytes obtained from system.", "unit": ""}
    ]


@expect("alerts")
def alerts(result, body):
    assert [a.labels["alertname"] for a in result] == [
        "PaymentApiHighErrorRate",
        "CheckoutLatencyHigh",
    ]
    first = result[0]
    assert first.state == "firing"
    assert first.value == 0.42
    assert first.active_at == datetime(2026, 11, 25, 3, 58, 30, 32627, tzinfo=UTC)
    assert first.annotations["summary"] == "payment-api 5xx ratio above 5%"
    assert result[1].value == 1.8


@pytest.mark.parametrize(
    ("url", "api_prefix", "served_under"),
    [
        ("http://mimir.test:8080", "/prometheus/api/v1", "/prometheus"),
        ("http://cortex.test:9009", "/api/prom/api/v1", "/api/prom"),
        ("http://gateway.test/mimir/", "/prometheus/api/v1/", "/mimir/prometheus"),
    ],
)
@pytest.mark.parametrize("name", ["query_range_matrix", "error_parse", "series", "alerts"])
def test_api_prefix(url, api_prefix, served_under, name):
    """Cortex and Mimir answer Prometheus' API under their own prefix (and a gateway may
    add a path of its own)."""
    record = recorded("prometheus", name)
    config = BackendConfig(name="Mimir", url=url, api_prefix=api_prefix)
    result = ask(record, config, path_prefix=served_under)
    if name == "error_parse":
        assert f"to {api_prefix.rstrip('/')}/query:" in str(result)
    else:
        EXPECTATIONS[name](result, record["body"])


def test_nan_and_infinities_are_floats():
    body = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [{"metric": {}, "values": [[1, "NaN"], [2, "+Inf"], [3, "-Inf"]]}],
        },
    }

    async def scenario():
        async with PrometheusClient(CONFIG) as prometheus:
            return await prometheus.query_range("0/0", 1, 3, 1)

    with mock_router(PROMETHEUS_URL) as router:
        router.get("/api/v1/query_range").mock(return_value=httpx.Response(200, json=body))
        result = asyncio.run(scenario())
    ((_, points),) = result.matrix
    assert math.isnan(points[0][1])
    assert points[1:] == [(2.0, math.inf), (3.0, -math.inf)]


def test_warnings_are_kept():
    """Thanos answers a partial response with warnings; the caller must see them."""
    body = {
        "status": "success",
        "data": {"resultType": "vector", "result": []},
        "warnings": ["receive-1: store unavailable"],
    }

    async def scenario():
        async with PrometheusClient(CONFIG) as prometheus:
            return await prometheus.query("up", 1795579186)

    with mock_router(PROMETHEUS_URL) as router:
        router.get("/api/v1/query").mock(return_value=httpx.Response(200, json=body))
        result = asyncio.run(scenario())
    assert result.warnings == ["receive-1: store unavailable"]
