"""The metric tools against a real Prometheus (Debian package) holding a backfilled incident.

Two hours of checkout traffic at 10 requests/s answered 200; one hour in, orders-db goes
down and checkout answers 503 at 5 requests/s besides. A gauge with 250 pods is there to
trip the series cap.
"""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import respx

from investigations.telemetry import BackendConfig, PrometheusClient, clear_cache
from investigations.tools import METRIC_TOOLS, TOOLS, ToolContext, call
from investigations.tools.compaction import estimate_tokens
from tests.investigations.telemetry.recorded import recorded, response
from tests.realprometheus import prometheus_fixture

pytestmark = pytest.mark.slow  # most tests start a real Prometheus

STEP_SECONDS = 15
START = (datetime.now(UTC) - timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)
OUTAGE = START + timedelta(hours=1)
END = START + timedelta(hours=2)
WIDE_PODS = 250


def openmetrics():
    lines = ["# HELP http_requests Requests served.", "# TYPE http_requests counter"]
    rates = {"200": lambda t: 10, "503": lambda t: 5 if t >= OUTAGE else 0}
    for code, rate in rates.items():
        total, t = 0, START
        while t < END:
            total += rate(t) * STEP_SECONDS
            lines.append(
                f'http_requests_total{{service="checkout",namespace="production",code="{code}"}}'
                f" {total} {int(t.timestamp())}"
            )
            t += timedelta(seconds=STEP_SECONDS)
    lines += ["# HELP orders_db_up Whether orders-db answers.", "# TYPE orders_db_up gauge"]
    t = START
    while t < END:
        up = 0 if t >= OUTAGE else 1
        lines.append(
            f'orders_db_up{{service="orders-db",namespace="production"}} {up} {int(t.timestamp())}'
        )
        t += timedelta(seconds=STEP_SECONDS)
    lines += ["# HELP pod_threads Threads per pod.", "# TYPE pod_threads gauge"]
    for pod in range(WIDE_PODS):
        for minutes in range(0, 120, 4):  # within Prometheus' 5-minute lookback
            at = int((START + timedelta(minutes=minutes)).timestamp())
            lines.append(f'pod_threads{{namespace="batch",pod="worker-{pod:03d}"}} 8 {at}')
    return "\n".join([*lines, "# EOF", ""])


prometheus_url = prometheus_fixture(openmetrics)


def run_tool(url, name, tool_input, **overrides):
    clear_cache()

    async def main():
        config = BackendConfig(url=url, name="Prometheus")
        async with PrometheusClient(config, backoff_seconds=0.001) as prometheus:
            values = {
                "now": OUTAGE + timedelta(minutes=30),
                "incident": (OUTAGE - timedelta(minutes=5), OUTAGE + timedelta(minutes=30)),
                "baseline": (OUTAGE - timedelta(minutes=65), OUTAGE - timedelta(minutes=5)),
                "scope": {"matchers": {"namespace": "production"}},
                "prometheus": prometheus,
            }
            return await call(TOOLS[name], ToolContext(**(values | overrides)), tool_input)

    return asyncio.run(main())


def test_the_metric_tools():
    assert {t.name for t in METRIC_TOOLS} == {
        "query_metrics",
        "query_metrics_range",
        "discover_metrics",
    }


def test_range_query_puts_the_changed_series_first_and_says_when(prometheus_url):
    result = run_tool(
        prometheus_url,
        "query_metrics_range",
        {"query": "sum by (code) (rate(http_requests_total[5m]))"},
    )

    assert not result.is_error, result.text
    first, second = result.data["series"]
    assert first["labels"] == {"code": "503"}
    assert second["labels"] == {"code": "200"}
    assert second["score"] < 3  # unchanged
    began = datetime.fromtimestamp(first["change_started_at"], UTC)
    assert OUTAGE <= began <= OUTAGE + timedelta(minutes=5)
    assert first["incident_max"] == pytest.approx(5)
    # Default range: baseline start to incident end, step chosen from it.
    assert "step 60s" in result.text
    assert f"{OUTAGE - timedelta(minutes=65):%H:%M}..{OUTAGE + timedelta(minutes=30):%H:%M}" in (
        result.text
    )
    assert "], [" not in result.text  # never raw points
    assert estimate_tokens(result.text) <= 2000


def test_instant_query_lists_values_highest_first(prometheus_url):
    result = run_tool(
        prometheus_url,
        "query_metrics",
        {"query": "sum by (code) (rate(http_requests_total[5m]))"},
    )

    assert not result.is_error, result.text
    assert [s["labels"]["code"] for s in result.data["samples"]] == ["200", "503"]
    assert [round(s["value"]) for s in result.data["samples"]] == [10, 5]
    assert result.text.splitlines()[1] == '{code="200"} 10'


def test_an_instant_range_selector_is_summarised_not_dumped(prometheus_url):
    result = run_tool(prometheus_url, "query_metrics", {"query": "orders_db_up[2h]"})

    assert not result.is_error, result.text
    [series] = result.data["series"]
    assert series["baseline_mean"] == 1 and series["incident_max"] == 1
    assert series["last"] == 0


def test_discovery_of_metrics_and_label_values(prometheus_url):
    metrics = run_tool(prometheus_url, "discover_metrics", {"selector": '{namespace="production"}'})
    codes = run_tool(
        prometheus_url,
        "discover_metrics",
        {"selector": "http_requests_total", "label": "code"},
    )

    assert not metrics.is_error, metrics.text
    assert [m["name"] for m in metrics.data["metrics"]] == ["http_requests_total", "orders_db_up"]
    assert metrics.data["metrics"][0]["labels"] == ["code", "namespace", "service"]
    assert "http_requests_total (2 series)" in metrics.text
    assert codes.data["values"] == ["200", "503"]


@pytest.mark.parametrize(
    ("name", "tool_input", "message"),
    [
        (
            "query_metrics_range",
            {"query": "pod_threads"},
            "returned 250 series, over the cap of 200",
        ),
        ("query_metrics", {"query": "pod_threads"}, "returned 250 series, over the cap of 200"),
        (
            "query_metrics_range",
            {"query": "up", "start": (OUTAGE - timedelta(hours=30)).isoformat()},
            "at most 24h",
        ),
        (
            "query_metrics_range",
            {"query": "up", "step": 1, "start": (OUTAGE - timedelta(hours=5)).isoformat()},
            "more than 11000 points per series",
        ),
        ("query_metrics", {"query": "sum(rate(http_requests_total[5m])"}, "parse error"),
    ],
)
def test_refusals_say_what_to_change(prometheus_url, name, tool_input, message):
    result = run_tool(prometheus_url, name, tool_input)

    assert result.is_error
    assert message in result.text


def test_an_unreachable_prometheus_is_reported_not_raised():
    result = run_tool("http://127.0.0.1:9", "query_metrics", {"query": "up"})

    assert result.is_error
    assert "127.0.0.1:9" in result.text or "unavailable" in result.text.lower()


def test_queries_carry_a_server_side_timeout():
    # The request itself, as respx sees it: Prometheus stops evaluating after 30 s.
    with respx.mock(base_url="http://prometheus.test", assert_all_called=True) as router:
        route = router.get("/api/v1/query").mock(
            return_value=response(recorded("prometheus", "query_vector"))
        )
        result = run_tool("http://prometheus.test", "query_metrics", {"query": "up"})

    assert not result.is_error, result.text
    assert route.calls.last.request.url.params["timeout"] == "30s"
