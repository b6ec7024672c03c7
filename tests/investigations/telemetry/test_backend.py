"""What every telemetry request gets from Backend: auth and tenant, retries, the 30 s
cache and the concurrency limit."""

import asyncio
import base64

import httpx
import pytest

from investigations.telemetry import (
    BackendConfig,
    BackendUnavailable,
    LokiClient,
    PrometheusClient,
    QueryError,
    UnexpectedAnswer,
)
from tests.investigations.telemetry.recorded import FAST_RETRIES, mock_router
from tests.processes import free_port

URL = "http://prometheus.test:9090"
VECTOR = {"status": "success", "data": {"resultType": "vector", "result": []}}


def ok():
    return httpx.Response(200, json=VECTOR)


def run(scenario, **config):
    """Run `scenario(prometheus)` with a client for URL, as a worker would."""

    async def main():
        options = {
            key: config.pop(key) for key in ("cache_seconds", "retry_attempts") if key in config
        }
        async with PrometheusClient(
            BackendConfig(name="Prometheus", url=config.pop("url", URL), **config),
            **FAST_RETRIES,
            **options,
        ) as prometheus:
            return await scenario(prometheus)

    return asyncio.run(main())


def query_up(prometheus):
    return prometheus.query("up", 1795579186)


def test_tenant_header():
    with mock_router(URL) as router:
        route = router.get("/api/v1/query").mock(return_value=ok())
        run(query_up, tenant="team-a")
    assert route.calls.last.request.headers["X-Scope-OrgID"] == "team-a"


def test_no_tenant_and_no_auth_send_neither_header():
    with mock_router(URL) as router:
        route = router.get("/api/v1/query").mock(return_value=ok())
        run(query_up)
    headers = route.calls.last.request.headers
    assert "X-Scope-OrgID" not in headers
    assert "Authorization" not in headers


def test_basic_auth():
    with mock_router(URL) as router:
        route = router.get("/api/v1/query").mock(return_value=ok())
        run(query_up, username="rootline", password="s3cret:pw")
    expected = base64.b64encode(b"rootline:s3cret:pw").decode()
    assert route.calls.last.request.headers["Authorization"] == f"Basic {expected}"


def test_bearer_token():
    with mock_router(URL) as router:
        route = router.get("/api/v1/query").mock(return_value=ok())
        run(query_up, bearer_token="glc_token")
    assert route.calls.last.request.headers["Authorization"] == "Bearer glc_token"


def test_secrets_stay_out_of_repr_and_messages():
    config = BackendConfig(
        name="Loki", url="http://user:pw-in-url@loki.test:3100", password="s3cret", username="u"
    )
    assert "s3cret" not in repr(config)
    assert "pw-in-url" not in config.display_url


def test_loki_sends_tenant_and_auth_too():
    async def scenario():
        config = BackendConfig(
            name="Loki", url="http://loki.test:3100", tenant="t1", bearer_token="tok"
        )
        async with LokiClient(config) as loki:
            return await loki.labels(0, 60)

    with mock_router("http://loki.test:3100") as router:
        route = router.get("/loki/api/v1/labels").mock(
            return_value=httpx.Response(200, json={"status": "success", "data": ["job"]})
        )
        assert asyncio.run(scenario()) == ["job"]
    headers = route.calls.last.request.headers
    assert (headers["X-Scope-OrgID"], headers["Authorization"]) == ("t1", "Bearer tok")


def test_5xx_is_retried_then_answered():
    with mock_router(URL) as router:
        route = router.get("/api/v1/query").mock(
            side_effect=[httpx.Response(503, text="unavailable"), httpx.Response(502), ok()]
        )
        result = run(query_up)
    assert result.result_type == "vector"
    assert route.call_count == 3


def test_5xx_is_retried_a_bounded_number_of_times_then_reported():
    body = {
        "status": "error",
        "errorType": "timeout",
        "error": "query timed out in query execution",
    }
    with mock_router(URL) as router:
        route = router.get("/api/v1/query").mock(return_value=httpx.Response(503, json=body))
        with pytest.raises(BackendUnavailable) as error:
            run(query_up)
    assert route.call_count == 3
    assert str(error.value) == (
        "Prometheus at http://prometheus.test:9090/api/v1/query was tried 3 times and failed: "
        "HTTP 503: query timed out in query execution"
    )


def test_connect_errors_and_timeouts_are_retried():
    with mock_router(URL) as router:
        route = router.get("/api/v1/query").mock(
            side_effect=[httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), ok()]
        )
        run(query_up)
        assert route.call_count == 3

    with mock_router(URL) as router:
        route = router.get("/api/v1/query").mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(
            BackendUnavailable, match="tried 5 times and failed: ConnectError: refused"
        ):
            run(lambda prometheus: prometheus.query("up", 0), retry_attempts=5)
    assert route.call_count == 5


def test_429_is_retried():
    with mock_router(URL) as router:
        route = router.get("/api/v1/query").mock(
            side_effect=[httpx.Response(429, text="too many outstanding requests"), ok()]
        )
        run(query_up)
    assert route.call_count == 2


def test_4xx_is_not_retried():
    body = {"status": "error", "errorType": "bad_data", "error": "1:1: parse error"}
    with mock_router(URL) as router:
        route = router.get("/api/v1/query").mock(return_value=httpx.Response(400, json=body))
        with pytest.raises(QueryError, match="1:1: parse error"):
            run(query_up)
    assert route.call_count == 1


def test_unauthorized_quotes_the_plain_text_answer():
    """Mimir without a tenant header answers 401 in plain text."""
    with mock_router(URL) as router:
        router.get("/api/v1/query").mock(return_value=httpx.Response(401, text="no org id\n"))
        with pytest.raises(QueryError) as error:
            run(query_up)
    assert str(error.value) == "Prometheus answered HTTP 401 to /api/v1/query: no org id"


def test_nothing_listening_is_reported_after_the_attempts():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(BackendUnavailable, match=r"was tried 3 times and failed: ConnectError"):
        run(query_up, url=url)


def test_an_answer_that_is_not_the_api():
    """A URL that points at a login page answers 200 with HTML."""
    with mock_router(URL) as router:
        router.get("/api/v1/query").mock(
            return_value=httpx.Response(
                200, text="<html>Sign in</html>", headers={"Content-Type": "text/html"}
            )
        )
        with pytest.raises(
            UnexpectedAnswer, match=r"not JSON \(text/html\); is http://prometheus.test:9090/api/v1"
        ):
            run(query_up)


def test_identical_queries_are_answered_from_the_cache():
    async def scenario(prometheus):
        first = await prometheus.query("up", 1795579186)
        again = await prometheus.query("up", 1795579186)
        other = await prometheus.query("up", 1795579187)
        return first, again, other

    with mock_router(URL) as router:
        route = router.get("/api/v1/query").mock(return_value=ok())
        first, again, _other = run(scenario)
        assert route.call_count == 2
        assert first == again

        run(query_up)  # another client (a later investigation) in the same process
        assert route.call_count == 2


def test_the_cache_is_per_tenant():
    with mock_router(URL) as router:
        route = router.get("/api/v1/query").mock(return_value=ok())
        run(query_up, tenant="team-a")
        run(query_up, tenant="team-b")
    assert route.call_count == 2


def test_cached_answers_expire():
    async def scenario(prometheus):
        await prometheus.query("up", 1795579186)
        await asyncio.sleep(0.06)
        await prometheus.query("up", 1795579186)

    with mock_router(URL) as router:
        route = router.get("/api/v1/query").mock(return_value=ok())
        run(scenario, cache_seconds=0.05)
    assert route.call_count == 2


def test_failures_are_not_cached():
    with mock_router(URL) as router:
        route = router.get("/api/v1/query").mock(
            side_effect=[httpx.Response(400, json={"error": "bad", "errorType": "bad_data"}), ok()]
        )
        with pytest.raises(QueryError):
            run(query_up)
        run(query_up)
    assert route.call_count == 2


def test_concurrency_is_limited_per_backend():
    in_flight = 0
    most_in_flight = 0

    async def slow_answer(request):
        nonlocal in_flight, most_in_flight
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return ok()

    async def scenario(prometheus):
        return await asyncio.gather(*(prometheus.query("up", t) for t in range(10)))

    with mock_router(URL) as router:
        route = router.get("/api/v1/query").mock(side_effect=slow_answer)
        results = run(scenario, max_concurrency=3)
    assert len(results) == 10
    assert route.call_count == 10
    assert most_in_flight == 3


def test_from_settings(settings):
    settings.ROOTLINE_PROMETHEUS_URL = ""
    assert BackendConfig.from_settings("PROMETHEUS") is None
    assert PrometheusClient.from_settings() is None

    settings.ROOTLINE_PROMETHEUS_URL = "https://mimir.example.com"
    settings.ROOTLINE_PROMETHEUS_API_PREFIX = "/prometheus/api/v1"
    settings.ROOTLINE_PROMETHEUS_TENANT = "production"
    config = BackendConfig.from_settings("PROMETHEUS")
    assert config.api_url == "https://mimir.example.com/prometheus/api/v1"
    assert (config.name, config.tenant, config.timeout_seconds, config.max_concurrency) == (
        "Prometheus",
        "production",
        30.0,
        4,
    )
