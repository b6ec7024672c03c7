"""LokiClient against every recorded Loki answer (shared/fixtures/loki), and its
patterns fallback."""

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from investigations.telemetry import BackendConfig, LokiClient, QueryError, Sample
from tests.investigations.telemetry.recorded import (
    Expectations,
    mock_router,
    recorded,
    recorded_names,
    replay,
)

LOKI_URL = "http://loki.test:3100"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CONFIG = BackendConfig(name="Loki", url=LOKI_URL)


def at(nanoseconds):
    """A recorded nanosecond timestamp as the aware datetime a caller would pass."""
    return EPOCH + timedelta(microseconds=int(nanoseconds) // 1000)


async def call(loki, request):
    """The client method that sends `request`, called with its recorded params."""
    path = request["path"].removeprefix("/loki/api/v1/")
    params = dict(request["params"])
    window = {k: at(params.pop(k)) for k in ("start", "end") if k in params}
    if path == "query_range":
        return await loki.query_range(
            params.pop("query"),
            **window,
            limit=int(params.pop("limit")) if "limit" in params else None,
            direction=params.pop("direction", None),
            step=int(params.pop("step")) if "step" in params else None,
        )
    if path == "query":
        return await loki.query(params.pop("query"), at(params.pop("time")))
    if path == "labels":
        return await loki.labels(**window)
    if path.startswith("label/"):
        return await loki.label_values(path.split("/")[1], **window)
    if path == "series":
        return await loki.series(params.pop("match[]"), **window)
    if path == "index/volume":
        return await loki.index_volume(params.pop("query"), **window)
    if path == "patterns":
        return await loki.patterns(params.pop("query"), **window)
    raise AssertionError(f"no client method for {request['path']}")


def ask(record):
    """What the client returns (or raises) when Loki answers `record`."""
    return replay(LokiClient, CONFIG, call, record)


EXPECTATIONS = Expectations()
expect = EXPECTATIONS.on


@pytest.mark.parametrize("name", recorded_names("loki"))
def test_recorded_answer(name):
    record = recorded("loki", name)
    assert name in EXPECTATIONS, f"no expectation for loki/{name}.json"
    EXPECTATIONS[name](ask(record), record["body"])


@expect("error_parse")
def error_parse(error, body):
    assert isinstance(error, QueryError)
    assert error.status == 400
    assert error.message == body
    assert str(error) == (
        "Loki answered HTTP 400 to /loki/api/v1/query_range: "
        "parse error at line 0, col 24: syntax error: unexpected |=, expecting } or ,"
    )


@expect("error_no_selector")
def error_no_selector(error, body):
    assert isinstance(error, QueryError)
    assert "queries require at least one regexp or equality matcher" in str(error)
    assert 'app=~".+" will' in str(error)


@expect("error_bad_time_range")
def error_bad_time_range(error, body):
    assert isinstance(error, QueryError)
    assert str(error).endswith(": end timestamp must not be before or equal to start time")


@expect("query_range_streams_errors")
def streams_errors(result, body):
    assert result.result_type == "streams"
    assert len(result.streams) == len(body["data"]["result"])
    labels, entries = result.streams[0]
    assert labels["service"] == "checkout"
    assert entries[0] == (
        1795579122000000297,
        'ts=2026-11-25T03:58:42Z level=error msg="payment call failed: 503 Service '
        'Unavailable" order_id=99945 duration=743ms',
    )
    for stream in result.streams:
        timestamps = [ts for ts, _ in stream.entries]
        assert timestamps == sorted(timestamps, reverse=True)  # backward: newest first
    assert sum(len(s.entries) for s in result.streams) <= 50
    assert result.stats["summary"]["totalEntriesReturned"] == 50


@expect("query_range_streams_json_filter")
def streams_json_filter(result, body):
    assert result.result_type == "streams"
    assert sum(len(s.entries) for s in result.streams) == 20
    assert {s.labels["level"] for s in result.streams} == {"error"}
    assert result.streams[0].labels["trace_id"] == "003faf7bef886112595aa0bc93453d6f"
    assert '"status": 503' in result.streams[0].entries[0][1]


@expect("query_range_streams_logfmt_filter")
def streams_logfmt_filter(result, body):
    assert result.result_type == "streams"
    assert {s.labels["service"] for s in result.streams} == {"checkout"}
    assert result.streams[0].entries == [
        (
            1795578996000000276,
            'ts=2026-11-25T03:56:36Z level=error msg="payment call failed: 503 Service '
            'Unavailable" order_id=88871 duration=144ms',
        )
    ]


@expect("query_range_matrix_count_by_level")
def matrix_count_by_level(result, body):
    assert result.result_type == "matrix"
    assert not result.streams
    labels, points = result.matrix[0]
    assert labels == {"detected_level": "error", "service": "checkout"}
    assert points[:3] == [(1795578600.0, 3.0), (1795578660.0, 5.0), (1795578720.0, 3.0)]
    for series, raw in zip(result.matrix, body["data"]["result"], strict=True):
        assert series.points == [(float(t), float(v)) for t, v in raw["values"]]


@expect("query_vector_error_rate")
def vector_error_rate(result, body):
    assert result.result_type == "vector"
    assert result.vector == [
        Sample({"service": "checkout"}, 1795579140.0, 0.08),
        Sample({"service": "payment-api"}, 1795579140.0, 0.2633333333333333),
    ]


@expect("query_range_empty")
def empty(result, body):
    assert result.result_type == "streams"
    assert result.streams == []
    assert len(result) == 0


@expect("labels")
def labels(result, body):
    assert result == ["namespace", "pod", "service", "service_name"]


@expect("label_service_values")
def label_service_values(result, body):
    assert result == ["checkout", "orders-db", "payment-api"]


@expect("series")
def series(result, body):
    assert len(result) == 4
    assert result[0] == {
        "service": "checkout",
        "service_name": "checkout",
        "namespace": "production",
        "pod": "checkout-5c9d8-xk2lp",
    }


@expect("index_volume")
def index_volume(result, body):
    assert result == [Sample({"namespace": "production"}, 1795579140.0, 120334.0)]


@expect("patterns")
def patterns(result, body):
    assert [p.pattern for p in result] == [
        "<_>HikariPool-1 - Connection is not available, request timed out after 30000ms<_>",
        "<_>could not connect to server: Connection refused "
        "(host=orders-db.production.svc port=5432)<_>",
        "<_>POST /v1/charges failed: upstream orders-db unavailable<_>",
    ]
    assert {p.level for p in result} == {"error"}
    first = body["data"][0]["samples"]
    assert result[0].samples[0] == (1795578540, 2)
    assert result[0].total == sum(count for _, count in first)


def test_patterns_404_means_no_patterns_endpoint():
    """An older Loki (or one without the pattern ingester) answers 404: the caller gets
    None and mines templates itself."""
    record = recorded("loki", "patterns")
    record = {**record, "status": 404, "headers": {"Content-Type": "text/plain"}}
    record["body"] = "404 page not found\n"
    assert ask(record) is None


def test_patterns_other_errors_are_raised():
    record = recorded("loki", "patterns")
    record = {**record, "status": 400, "headers": {"Content-Type": "text/plain"}}
    record["body"] = "parse error : queries require at least one regexp or equality matcher"
    error = ask(record)
    assert isinstance(error, QueryError)
    assert error.status == 400


def test_optional_parameters_are_sent_only_when_given():
    start = datetime(2026, 11, 25, 3, 29, tzinfo=UTC)

    async def scenario():
        async with LokiClient(CONFIG) as loki:
            await loki.query_range('{a="b"}', start, start + timedelta(minutes=5))
            await loki.query_range(
                '{a="b"}',
                start.timestamp(),
                start.timestamp() + 300.5,
                limit=10,
                direction="forward",
            )

    with mock_router(LOKI_URL) as router:
        route = router.get("/loki/api/v1/query_range").mock(
            return_value=httpx.Response(
                200, json={"status": "success", "data": {"resultType": "streams", "result": []}}
            )
        )
        asyncio.run(scenario())
    first, second = (dict(c.request.url.params) for c in route.calls)
    assert first == {
        "query": '{a="b"}',
        "start": "1795577340000000000",
        "end": "1795577640000000000",
    }
    assert second == {
        "query": '{a="b"}',
        "limit": "10",
        "direction": "forward",
        "start": "1795577340000000000",
        "end": "1795577640500000000",
    }


def test_naive_datetimes_and_unknown_directions_are_refused():
    async def scenario(**kwargs):
        async with LokiClient(CONFIG) as loki:
            await loki.query_range('{a="b"}', **kwargs)

    with pytest.raises(ValueError, match="naive"):
        asyncio.run(scenario(start=datetime(2026, 11, 25), end=datetime(2026, 11, 26)))
    with pytest.raises(ValueError, match="backward, forward"):
        asyncio.run(scenario(start=0, end=1, direction="sideways"))
