"""bench/loki_stub.py: the recorded Loki answers replayed against the stub, LogQL's
matchers, filters, limits and time ranges, and the project's LokiClient talking to it.

Recorded fixtures (shared/fixtures/loki) cover 2026-11-25 03:29-03:59 UTC; the streams
Loki answered there are the stub's data, so the same request must give the same answer.
"""

import asyncio
import gzip
import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from loki_stub import EMPTY_COMPATIBLE, LogStore, serve

from investigations.telemetry import BackendConfig, LokiClient, QueryError
from tests.shared import fixture

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "loki_stub.py"
QUERY_RANGE = "/loki/api/v1/query_range"
LOG_QUERY_FIXTURES = (
    "query_range_streams_errors",
    "query_range_streams_json_filter",
    "query_range_streams_logfmt_filter",
    "query_range_empty",
)
SECOND = 10**9
T0 = 1_795_577_340 * SECOND  # 2026-11-25T03:29:00Z, where the recorded window starts

CHECKOUT = {"namespace": "production", "service": "checkout", "pod": "checkout-1"}
PAYMENT = {"namespace": "production", "service": "payment-api", "pod": "payment-api-1"}
PAYMENT_NO_POD = {"namespace": "production", "service": "payment-api"}
ORDERS_DB = {"namespace": "production", "service": "orders-db", "pod": "orders-db-0"}
STAGING = {"namespace": "staging", "service": "checkout", "pod": "checkout-9"}
# Given out of order on purpose: the store sorts each stream by time.
ENTRIES = [
    (PAYMENT, T0 + 7 * SECOND + 2, '{"level": "error", "msg": "HikariPool-1 - timed out"}'),
    (CHECKOUT, T0, 'level=info msg="order placed" duration=12ms'),
    (PAYMENT, T0 + 1 * SECOND, '{"level": "info", "msg": "charge ok"}'),
    (ORDERS_DB, T0 + 2 * SECOND, "checkpoint complete"),
    (CHECKOUT, T0 + 3 * SECOND, 'level=error msg="payment call failed: 503" duration=743ms'),
    (PAYMENT, T0 + 4 * SECOND, '{"level": "error", "msg": "Connection refused"}'),
    (ORDERS_DB, T0 + 5 * SECOND, "Out of memory: Killed process 4121 (postgres)"),
    (PAYMENT_NO_POD, T0 + 6 * SECOND, "ERROR retrying with a leaked token"),
    (CHECKOUT, T0 + 7 * SECOND, 'level=error msg="payment call failed: timed out" duration=30s'),
    (PAYMENT, T0 + 7 * SECOND + 1, '{"level": "error", "msg": "Connection refused"}'),
    (STAGING, T0 + 7200 * SECOND, "level=error msg=staging is elsewhere in time"),
]


def recorded(name):
    return fixture(f"loki/{name}.json")


def recorded_entries(*names):
    """The lines of the streams Loki answered to these recorded requests."""
    return [
        (stream["stream"], int(ts), line)
        for name in names
        for stream in recorded(name)["body"]["data"]["result"]
        for ts, line in stream["values"]
    ]


def replay(stub, name):
    request = recorded(name)["request"]
    return httpx.get(stub.url + request["path"], params=request["params"])


def query_range(stub, logql, start=T0, end=T0 + 60 * SECOND, **params):
    params = {"query": logql, "start": start, "end": end, **params}
    return httpx.get(stub.url + QUERY_RANGE, params=params)


def streams(response):
    """(labels, [(ts_ns, line), ...]) of each stream, in the answer's order."""
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["resultType"] == "streams"
    return [(s["stream"], [(int(ts), line) for ts, line in s["values"]]) for s in data["result"]]


def lines(response):
    return [line for _, entries in streams(response) for _, line in entries]


def shape(value):
    """The keys of every nested object, and which leaves are booleans."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    return bool if isinstance(value, bool) else "number"


@pytest.fixture(scope="module")
def recorded_stub():
    """Every line of the recorded log-query answers, in one store."""
    with serve(LogStore(recorded_entries(*LOG_QUERY_FIXTURES))) as stub:
        yield stub


@pytest.fixture(scope="module")
def errors_stub():
    """Exactly the 50 lines Loki answered to query_range_streams_errors. (The json and
    logfmt answers hold some of them again under their parsed labels: with those, the same
    query would rightly find more streams.)"""
    with serve(LogStore(recorded_entries("query_range_streams_errors"))) as stub:
        yield stub


@pytest.fixture(scope="module")
def stub():
    """ENTRIES: five streams, one of them outside the usual minute from T0."""
    with serve(LogStore(ENTRIES)) as stub:
        yield stub


# The recorded requests, replayed.


def test_the_errors_query_gets_lokis_answer(errors_stub):
    record = recorded("query_range_streams_errors")
    response = replay(errors_stub, "query_range_streams_errors")

    assert response.status_code == record["status"] == 200
    assert response.headers["Content-Type"] == record["headers"]["Content-Type"]
    body, expected = response.json(), record["body"]
    assert body["status"] == expected["status"] == "success"
    assert body["data"]["resultType"] == expected["data"]["resultType"] == "streams"
    assert [s["stream"] for s in body["data"]["result"]] == [
        s["stream"] for s in expected["data"]["result"]
    ]
    assert body["data"]["result"] == expected["data"]["result"]


def test_answers_carry_lokis_stats_fields(errors_stub):
    body = replay(errors_stub, "query_range_streams_errors").json()
    expected = recorded("query_range_streams_errors")["body"]

    assert shape(body["data"]["stats"]) == shape(expected["data"]["stats"])
    assert body["data"]["stats"]["summary"]["totalEntriesReturned"] == 50


def test_a_selector_that_matches_nothing_gets_an_empty_answer(recorded_stub):
    response = replay(recorded_stub, "query_range_empty")

    assert response.status_code == recorded("query_range_empty")["status"]
    assert streams(response) == []


@pytest.mark.parametrize(
    ("name", "stage"),
    [("query_range_streams_json_filter", "json"), ("query_range_streams_logfmt_filter", "logfmt")],
)
def test_parser_stages_are_refused(recorded_stub, name, stage):
    response = replay(recorded_stub, name)

    assert response.status_code == 400
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert f"does not support pipeline stages (| {stage})" in response.text
    assert "supports only stream selectors and line filters" in response.text


def test_metric_queries_are_refused(recorded_stub):
    response = replay(recorded_stub, "query_range_matrix_count_by_level")

    assert response.status_code == 400
    assert "does not support metric queries" in response.text


@pytest.mark.parametrize("name", ["error_parse", "error_no_selector", "error_bad_time_range"])
def test_mistakes_get_lokis_plain_text_answer(recorded_stub, name):
    record = recorded(name)
    response = replay(recorded_stub, name)

    assert response.status_code == record["status"] == 400
    assert response.headers["Content-Type"] == record["headers"]["Content-Type"]
    assert response.text == record["body"]


def test_label_names_are_lokis_plus_detected_level(errors_stub):
    response = replay(errors_stub, "labels")
    names = response.json()["data"]

    assert response.headers["Content-Type"] == recorded("labels")["headers"]["Content-Type"]
    assert names == sorted(names)
    # Loki keeps detected_level as structured metadata, out of its label index; the
    # recorded answers show it among the stream labels, so the stub has it as one.
    assert set(names) - set(recorded("labels")["body"]["data"]) == {"detected_level"}
    assert set(recorded("labels")["body"]["data"]) <= set(names)


def test_service_values_are_those_of_the_recorded_lines(errors_stub):
    values = replay(errors_stub, "label_service_values").json()

    assert values["status"] == "success"
    # orders-db logged nothing that matched the recorded errors query.
    assert values["data"] == ["checkout", "payment-api"]
    assert set(values["data"]) <= set(recorded("label_service_values")["body"]["data"])


def test_the_patterns_endpoint_is_not_found(recorded_stub):
    response = replay(recorded_stub, "patterns")

    assert response.status_code == 404
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.text == "404 page not found\n"


@pytest.mark.parametrize(
    "path", ["/loki/api/v1/series", "/loki/api/v1/query", "/loki/api/v1/labels/", "/metrics"]
)
def test_other_paths_are_not_found(stub, path):
    response = httpx.get(stub.url + path)

    assert (response.status_code, response.text) == (404, "404 page not found\n")


def test_ready(stub):
    response = httpx.get(stub.url + "/ready")

    assert (response.status_code, response.text.strip()) == (200, "ready")


# Stream selectors.


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ('{service="checkout"}', [CHECKOUT]),
        ('{namespace="production", service!="payment-api"}', [CHECKOUT, ORDERS_DB]),
        ('{service=~"pay.*"}', [PAYMENT, PAYMENT_NO_POD]),
        ('{service=~"pay"}', []),  # label regexps are anchored at both ends
        ('{namespace="production", service!~"pay.*|orders-db"}', [CHECKOUT]),
        ('{service="payment-api", pod=""}', [PAYMENT_NO_POD]),  # an absent label is ""
        ('{service="payment-api", pod!=""}', [PAYMENT]),
        ('{namespace="staging"}', []),  # its only line is outside the window
    ],
)
def test_matchers(stub, selector, expected):
    assert [labels for labels, _ in streams(query_range(stub, selector))] == [
        dict(sorted(labels.items())) for labels in expected
    ]


@pytest.mark.parametrize(
    "selector", ["{}", '{service=""}', '{service=~".*"}', '{service!="checkout"}', '{a!~"b"}']
)
def test_selectors_that_match_everything_are_refused(stub, selector):
    response = query_range(stub, selector)

    assert response.status_code == 400
    assert response.text == f"parse error : {EMPTY_COMPATIBLE}"


def test_a_not_empty_matcher_is_selective_enough(stub):
    assert len(lines(query_range(stub, '{pod!=""}'))) == 9


# Line filters.


@pytest.mark.parametrize(
    ("logql", "expected"),
    [
        ('{service="checkout"} |= "error"', ["timed out", "503"]),
        ('{service="checkout"} != "error"', ["order placed"]),
        ('{service="checkout"} |~ "failed: [0-9]+"', ["503"]),
        ('{service="checkout"} !~ "duration=[0-9]+ms"', ["timed out"]),
        ('{service="checkout"} |~ "(?i)ERROR|PLACED"', ["timed out", "503", "order placed"]),
        ('{service="checkout"} |~ "(?i)FAILED: \\\\d+"', ["503"]),
        ('{service="checkout"} |~ `duration=\\d{3}ms`', ["503"]),
        ('{service="checkout"} |= "msg=\\"payment call"', ["timed out", "503"]),
        ('{service="checkout"} |= "error" != "503" |~ "timed"', ["timed out"]),
        (
            '{namespace="production"} |~ "(?i)error|refused" !~ "(?i)hikari"',
            ["timed out", "503", "refused", "refused", "leaked token"],
        ),
    ],
)
def test_line_filters(stub, logql, expected):
    found = lines(query_range(stub, logql))

    assert len(found) == len(expected), found
    for line, text in zip(found, expected, strict=True):
        assert text in line


@pytest.mark.parametrize(
    ("logql", "unsupported"),
    [
        ('{service="checkout"} | json', "pipeline stages (| json)"),
        ('{service="checkout"} | logfmt | level="error"', "pipeline stages (| logfmt)"),
        ('{service="checkout"} | line_format "{{.msg}}"', "pipeline stages (| line_format)"),
        ('{service="checkout"} |> "<_> error <_>"', "pattern line filters"),
        ('{service="checkout"} |= "error" or "refused"', "`or` between line filters"),
        ('{service="checkout"} |= ip("10.0.0.1")', "functions in line filters (ip)"),
        ('count_over_time({service="checkout"}[5m])', "metric queries"),
        ('sum by (service) (rate({service="checkout"} |= "error" [5m]))', "metric queries"),
    ],
)
def test_what_the_stub_does_not_evaluate_is_refused(stub, logql, unsupported):
    response = query_range(stub, logql)

    assert response.status_code == 400
    assert f"does not support {unsupported}:" in response.text


@pytest.mark.parametrize(
    ("logql", "message"),
    [
        ("", "parse error : syntax error: unexpected $end"),
        (
            '{service="checkout"',
            "parse error at line 1, col 20: syntax error: unexpected $end, expecting } or ,",
        ),
        (
            "{service}",
            "parse error at line 1, col 9: syntax error: unexpected }, expecting = or =~ or !~ "
            "or !=",
        ),
        (
            '{service="checkout"} |= error',
            "parse error at line 1, col 25: syntax error: unexpected IDENTIFIER, expecting "
            "STRING or ip",
        ),
        ('{service="check\\d"}', "parse error at line 1, col 10: invalid char escape"),
        ('{service="checkout"} |= "error', "parse error at line 1, col 25: literal not terminated"),
    ],
)
def test_parse_errors(stub, logql, message):
    response = query_range(stub, logql)

    assert (response.status_code, response.text) == (400, message)


def test_a_bad_regexp_is_a_parse_error(stub):
    response = query_range(stub, '{service="checkout"} |~ "(unclosed"')

    assert response.status_code == 400
    assert response.text.startswith("parse error : error parsing regexp: ")


# Limit, direction and time range.


def test_backward_gives_the_newest_lines_across_streams(stub):
    answer = streams(query_range(stub, '{namespace="production"}', limit=3))

    assert answer == [
        (CHECKOUT, [(T0 + 7 * SECOND, ENTRIES[8][2])]),
        (PAYMENT, [(T0 + 7 * SECOND + 2, ENTRIES[0][2]), (T0 + 7 * SECOND + 1, ENTRIES[9][2])]),
    ]
    # Loki writes a stream's labels sorted by name.
    assert [list(labels) for labels, _ in answer] == [["namespace", "pod", "service"]] * 2


def test_forward_gives_the_oldest_lines_oldest_first(stub):
    answer = streams(query_range(stub, '{namespace="production"}', limit=4, direction="forward"))

    assert [(labels["service"], [ts for ts, _ in entries]) for labels, entries in answer] == [
        ("checkout", [T0, T0 + 3 * SECOND]),
        ("orders-db", [T0 + 2 * SECOND]),
        ("payment-api", [T0 + 1 * SECOND]),
    ]


def test_without_limit_and_direction_the_newest_hundred_come_back():
    many = [(CHECKOUT, T0 + i * SECOND, f"line {i}") for i in range(150)]
    with serve(LogStore(many)) as big:
        answer = streams(query_range(big, '{service="checkout"}', end=T0 + 3600 * SECOND))

    [(_, entries)] = answer
    assert [line for _, line in entries] == [f"line {i}" for i in range(149, 49, -1)]


def test_timestamps_keep_nanosecond_precision(stub):
    start = T0 + 7 * SECOND + 1
    response = query_range(stub, '{service="payment-api"}', start=start, end=start + 1)

    assert response.json()["data"]["result"][0]["values"] == [
        ["1795577347000000001", ENTRIES[9][2]]
    ]


def test_start_is_inclusive_and_end_exclusive(stub):
    response = query_range(
        stub, '{namespace="production"}', start=T0 + 3 * SECOND, end=T0 + 5 * SECOND
    )

    assert sorted(ts for _, entries in streams(response) for ts, _ in entries) == [
        T0 + 3 * SECOND,
        T0 + 4 * SECOND,
    ]


def test_an_empty_range_is_allowed(stub):
    assert streams(query_range(stub, '{namespace="production"}', start=T0, end=T0)) == []


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-11-25T03:29:03Z", "2026-11-25T03:29:05Z"),
        ("2026-11-25T04:29:03+01:00", "2026-11-25T03:29:04.999999999Z"),
        ("1795577343", "1795577345"),
        ("1795577343.0", "1795577344.9999"),
    ],
)
def test_times_as_rfc3339_or_seconds(stub, start, end):
    response = query_range(stub, '{namespace="production"}', start=start, end=end)

    assert sorted(ts for _, entries in streams(response) for ts, _ in entries) == [
        T0 + 3 * SECOND,
        T0 + 4 * SECOND,
    ]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "many"}, 'strconv.Atoi: parsing "many": invalid syntax'),
        ({"limit": "0"}, "limit must be a positive value"),
        ({"limit": "5001"}, "max entries limit per query exceeded, limit > "),
        ({"direction": "sideways"}, "invalid direction 'sideways'"),
        ({"start": "yesterday"}, "could not parse 'start' parameter: strconv.ParseInt: "),
        ({"end": "1.2.3"}, "could not parse 'end' parameter: strconv.ParseFloat: "),
    ],
)
def test_bad_parameters_are_refused_as_loki_refuses_them(stub, params, message):
    response = query_range(stub, '{service="checkout"}', **params)

    assert response.status_code == 400
    assert response.text.startswith(message)


def test_a_short_window_of_a_large_store_is_read_quickly():
    services = ("checkout", "payment-api", "orders-db")
    many = [
        ({"service": services[i % 3]}, T0 + i * 10_000_000, f"request {i} error" * (i % 2))
        for i in range(170_000)
    ]
    with serve(LogStore(many)) as big, httpx.Client(base_url=big.url) as client:
        started = time.perf_counter()
        for i in range(100):
            start = T0 + i * 10 * SECOND
            params = {"query": '{service=~".+"} |= "error"', "start": start, "end": start + SECOND}
            assert len(client.get(QUERY_RANGE, params=params).json()["data"]["result"]) == 3
        # A scan of every line per query would take seconds.
        assert time.perf_counter() - started < 2


# Labels.


def test_label_names_of_the_window(stub):
    response = httpx.get(
        f"{stub.url}/loki/api/v1/labels", params={"start": T0, "end": T0 + 60 * SECOND}
    )

    assert response.json() == {"status": "success", "data": ["namespace", "pod", "service"]}


def test_label_names_of_matching_streams(stub):
    params = {"query": '{service="payment-api", pod=""}', "start": T0, "end": T0 + 60 * SECOND}
    response = httpx.get(f"{stub.url}/loki/api/v1/labels", params=params)

    assert response.json()["data"] == ["namespace", "service"]


def test_label_values_of_the_window_and_selector(stub):
    window = {"start": T0, "end": T0 + 60 * SECOND}
    url = f"{stub.url}/loki/api/v1/label/pod/values"

    assert httpx.get(url, params=window).json()["data"] == [
        "checkout-1",
        "orders-db-0",
        "payment-api-1",
    ]
    assert httpx.get(url, params={**window, "query": '{service="payment-api"}'}).json() == {
        "status": "success",
        "data": ["payment-api-1"],
    }
    assert httpx.get(url, params={"start": T0, "end": T0 + 3 * 3600 * SECOND}).json()["data"] == [
        "checkout-1",
        "checkout-9",
        "orders-db-0",
        "payment-api-1",
    ]


def test_label_queries_take_only_matchers(stub):
    params = {"query": '{service="checkout"} |= "error"', "start": T0, "end": T0 + SECOND}
    response = httpx.get(f"{stub.url}/loki/api/v1/labels", params=params)

    assert (response.status_code, response.text) == (400, "only label matchers are supported")


# Loading a case pack.


def write_logs(path, entries):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for labels, ts_ns, line in entries:
            f.write(json.dumps({"labels": labels, "ts_ns": str(ts_ns), "line": line}) + "\n")
    return path


def test_a_case_pack_file_loads_into_streams(tmp_path):
    store = LogStore.from_jsonl_gz(write_logs(tmp_path / "logs.jsonl.gz", ENTRIES))

    assert len(store) == len(ENTRIES)
    assert len(store.streams) == 5
    payment = next(s for s in store.streams if s.labels == dict(sorted(PAYMENT.items())))
    assert payment.timestamps == [
        T0 + SECOND,
        T0 + 4 * SECOND,
        T0 + 7 * SECOND + 1,
        T0 + 7 * SECOND + 2,
    ]


def test_the_script_serves_a_case_pack(tmp_path):
    logs = write_logs(tmp_path / "logs.jsonl.gz", ENTRIES)
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(logs), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = re.search(r"http://\S+", process.stdout.readline())[0]
        response = httpx.get(
            url + QUERY_RANGE,
            params={"query": '{service="orders-db"}', "start": T0, "end": T0 + 60 * SECOND},
        )
        assert [v[1] for v in response.json()["data"]["result"][0]["values"]] == [
            "Out of memory: Killed process 4121 (postgres)",
            "checkpoint complete",
        ]
    finally:
        process.terminate()
        process.wait(timeout=10)


# The project's own client.


def at(ts_ns):
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ts_ns // 1000)


def ask(stub, call):
    async def scenario():
        config = BackendConfig(url=stub.url, name="Loki")
        async with LokiClient(config, cache_seconds=0, backoff_seconds=0.001) as loki:
            return await call(loki)

    return asyncio.run(scenario())


def test_lokiclient_reads_log_queries(stub):
    result = ask(
        stub,
        lambda loki: loki.query_range(
            '{service="checkout"} |= "error"', at(T0), at(T0 + 60 * SECOND), limit=10
        ),
    )

    assert result.result_type == "streams"
    [(labels, entries)] = result.streams
    assert labels == CHECKOUT
    assert entries == [(T0 + 7 * SECOND, ENTRIES[8][2]), (T0 + 3 * SECOND, ENTRIES[4][2])]


def test_lokiclient_reads_labels_and_values(stub):
    start, end = at(T0), at(T0 + 60 * SECOND)

    assert ask(stub, lambda loki: loki.labels(start, end)) == ["namespace", "pod", "service"]
    assert ask(stub, lambda loki: loki.label_values("service", start, end, query='{pod!=""}')) == [
        "checkout",
        "orders-db",
        "payment-api",
    ]


def test_lokiclient_falls_back_when_patterns_are_not_found(stub):
    patterns = ask(
        stub, lambda loki: loki.patterns('{service="checkout"}', at(T0), at(T0 + 60 * SECOND))
    )

    assert patterns is None


def test_lokiclient_quotes_the_refusal_of_a_metric_query(stub):
    with pytest.raises(QueryError) as refused:
        ask(
            stub,
            lambda loki: loki.query_range(
                'sum(count_over_time({service="checkout"}[1m]))',
                at(T0),
                at(T0 + 60 * SECOND),
                step=60,
            ),
        )

    assert refused.value.status == 400
    assert "does not support metric queries" in refused.value.message
