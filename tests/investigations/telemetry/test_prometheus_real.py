"""PrometheusClient against a real Prometheus holding a backfilled incident.

The scenario: two hours of checkout traffic, 10 requests/s answered 200; one hour in,
orders-db goes down and checkout starts answering 503 at 5 requests/s besides.
"""

import asyncio
import math
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from investigations.telemetry import (
    BackendConfig,
    BackendUnavailable,
    PrometheusClient,
    QueryError,
)
from tests.investigations.telemetry.recorded import FAST_RETRIES
from tests.realprometheus import prometheus_fixture, running_prometheus

pytestmark = pytest.mark.slow

SAMPLE_INTERVAL_SECONDS = 15
SCENARIO = timedelta(hours=2)
# Blocks are only cut for data old enough; six hours ago is well clear of "now".
START = (datetime.now(UTC) - timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)
OUTAGE = START + timedelta(hours=1)
END = START + SCENARIO


def openmetrics():
    lines = [
        "# HELP http_requests Requests served by checkout.",
        "# TYPE http_requests counter",
    ]
    rates = {"200": lambda t: 10, "503": lambda t: 5 if t >= OUTAGE else 0}
    for code, rate in rates.items():
        total = 0
        t = START
        while t < END:
            total += rate(t) * SAMPLE_INTERVAL_SECONDS
            lines.append(
                f'http_requests_total{{service="checkout",code="{code}"}} {total} '
                f"{int(t.timestamp())}"
            )
            t += timedelta(seconds=SAMPLE_INTERVAL_SECONDS)
    lines += ["# HELP orders_db_up Whether orders-db answers.", "# TYPE orders_db_up gauge"]
    t = START
    while t < END:
        up = 0 if t >= OUTAGE else 1
        lines.append(f'orders_db_up{{service="orders-db"}} {up} {int(t.timestamp())}')
        t += timedelta(seconds=SAMPLE_INTERVAL_SECONDS)
    return "\n".join([*lines, "# EOF", ""])


prometheus_url = prometheus_fixture(openmetrics)


def run(url, scenario, **config):
    async def main():
        config.setdefault("name", "Prometheus")
        client = PrometheusClient(BackendConfig(url=url, **config), **FAST_RETRIES)
        async with client as prometheus:
            return await scenario(prometheus)

    return asyncio.run(main())


def test_instant_queries(prometheus_url):
    async def scenario(prometheus):
        before = await prometheus.query("orders_db_up", OUTAGE - timedelta(minutes=30))
        during = await prometheus.query("orders_db_up", OUTAGE + timedelta(minutes=30))
        by_code = await prometheus.query(
            "sum by (code) (rate(http_requests_total[5m]))", OUTAGE + timedelta(minutes=30)
        )
        nan = await prometheus.query("0/0", END)
        inf = await prometheus.query("vector(1)/0", END)
        return before, during, by_code, nan, inf

    before, during, by_code, nan, inf = run(prometheus_url, scenario)
    assert [(s.labels, s.value) for s in before.vector] == [
        ({"__name__": "orders_db_up", "service": "orders-db"}, 1.0)
    ]
    assert during.vector[0].value == 0.0
    assert during.vector[0].timestamp == (OUTAGE + timedelta(minutes=30)).timestamp()
    assert {s.labels["code"]: s.value for s in by_code.vector} == {"200": 10.0, "503": 5.0}
    assert nan.result_type == "scalar"
    assert math.isnan(nan.scalar[1])
    assert inf.vector[0].value == math.inf


def test_query_range_shows_the_step_change(prometheus_url):
    async def scenario(prometheus):
        return await prometheus.query_range(
            'sum(rate(http_requests_total{code="503"}[5m]))',
            OUTAGE - timedelta(minutes=30),
            OUTAGE + timedelta(minutes=30),
            timedelta(minutes=1),
        )

    result = run(prometheus_url, scenario)
    assert result.result_type == "matrix"
    ((labels, points),) = result.matrix
    assert labels == {}
    assert len(points) == 61
    assert points[0] == ((OUTAGE - timedelta(minutes=30)).timestamp(), 0.0)
    assert all(value == 0 for t, value in points if t < OUTAGE.timestamp())
    assert all(value == 5 for t, value in points if t >= OUTAGE.timestamp() + 300)


def test_discovery(prometheus_url):
    async def scenario(prometheus):
        return (
            await prometheus.series("http_requests_total", START, END),
            await prometheus.series(["orders_db_up", '{code="503"}'], START, END),
            await prometheus.labels(START, END),
            await prometheus.label_values("__name__", START, END),
            await prometheus.label_values("code", match="http_requests_total"),
            await prometheus.metadata(),
            await prometheus.alerts(),
        )

    series, two_selectors, labels, names, codes, metadata, alerts = run(prometheus_url, scenario)
    assert sorted(s["code"] for s in series) == ["200", "503"]
    assert {s["__name__"] for s in two_selectors} == {"orders_db_up", "http_requests_total"}
    assert labels == ["__name__", "code", "service"]
    assert names == ["http_requests_total", "orders_db_up"]
    assert codes == ["200", "503"]
    assert metadata == {}  # backfilled blocks carry no metadata; nothing is scraped
    assert alerts == []  # no rules


def test_a_bad_query_quotes_prometheus(prometheus_url):
    async def scenario(prometheus):
        return await prometheus.query("sum(rate(http_requests_total[5m])", END)

    with pytest.raises(QueryError) as error:
        run(prometheus_url, scenario)
    assert (error.value.status, error.value.error_type) == (400, "bad_data")
    assert str(error.value) == (
        "Prometheus answered HTTP 400, bad_data to /api/v1/query: "
        'invalid parameter "query": 1:34: parse error: unclosed left parenthesis'
    )


def test_too_many_points(prometheus_url):
    async def scenario(prometheus):
        return await prometheus.query_range("orders_db_up", END - timedelta(days=1), END, 1)

    with pytest.raises(QueryError, match="exceeded maximum resolution of 11,000 points"):
        run(prometheus_url, scenario)


def test_cache_and_concurrency_limit_against_the_server(prometheus_url):
    """Prometheus counts the queries it served: an identical query within 30 s is not
    sent again, and 20 queries at once all succeed through a limit of 2."""

    def served_queries():
        metrics = httpx.get(f"{prometheus_url}/metrics").text
        line = next(
            line
            for line in metrics.splitlines()
            if line.startswith("prometheus_http_requests_total{")
            and 'code="200"' in line
            and 'handler="/api/v1/query"' in line
        )
        return float(line.rsplit(" ", 1)[1])

    async def scenario(prometheus):
        await prometheus.query("orders_db_up", START + timedelta(minutes=5))
        await prometheus.query("orders_db_up", START + timedelta(minutes=5))
        minutes = range(10, 30)
        return await asyncio.gather(
            *(prometheus.query("orders_db_up", START + timedelta(minutes=m)) for m in minutes)
        )

    before = served_queries()
    results = run(prometheus_url, scenario, max_concurrency=2)
    assert [r.vector[0].value for r in results] == [1.0] * 20
    assert served_queries() - before == 21


def test_a_stopped_prometheus_is_unavailable(tmp_path):
    """After the attempts, the caller learns the server is down, not that its query is
    wrong."""
    with running_prometheus(openmetrics(), tmp_path) as url:
        pass

    async def scenario(prometheus):
        return await prometheus.query("up", END)

    with pytest.raises(BackendUnavailable, match=r"tried 3 times and failed: ConnectError"):
        run(url, scenario)
