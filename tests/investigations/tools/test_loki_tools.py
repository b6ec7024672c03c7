"""The log tools against Loki's recorded answers (shared/fixtures/loki), served with respx.

The recorded incident: payment-api loses its database orders-db about 20 minutes into a
30-minute window (03:29-03:59 UTC); checkout sees 503s from payment-api.
"""

import asyncio
import copy
import json
from datetime import UTC, datetime

import httpx
import pytest

from investigations.telemetry import BackendConfig, LokiClient, clear_cache
from investigations.tools import LOG_TOOLS, TOOLS, ToolContext, call
from investigations.tools.compaction import estimate_tokens
from tests.investigations.telemetry.recorded import FAST_RETRIES, mock_router, recorded, response

LOKI = "http://loki.test:3100"
SELECTOR = '{namespace="production"}'
WINDOW_START = datetime(2026, 11, 25, 3, 29, tzinfo=UTC)
INCIDENT_START = datetime(2026, 11, 25, 3, 47, tzinfo=UTC)
NOW = datetime(2026, 11, 25, 3, 59, tzinfo=UTC)
# Lines the fixture README promises but the recorded 50-line answer does not hold (they
# fall outside its limit): the OOM kill of orders-db and payment-api's leaked secrets.
# The tests add them to the recorded answer, in Loki's own shape.
OOM_LINE = (
    "2026-11-25T03:48:57Z kernel: Out of memory: Killed process 4242 (postgres) "
    "total-vm:8388608kB, anon-rss:4194304kB, oom_score_adj:0"
)
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwYXltZW50LWFwaSJ9.c2lnbmF0dXJlLXNlY3JldA"
DSN_PASSWORD = "Sup3rS3cretPw"
LEAK_LINE = json.dumps(
    {
        "level": "error",
        "msg": f"retrying with Authorization: Bearer {BEARER} "
        f"dsn=postgres://payments:{DSN_PASSWORD}@orders-db.production.svc:5432/orders",
    }
)


def context(**overrides):
    values = {
        "now": NOW,
        "incident": (INCIDENT_START, NOW),
        "baseline": (WINDOW_START, INCIDENT_START),
        "scope": {"selector": '{namespace="production"}', "matchers": {"namespace": "production"}},
        "budget_tokens": 2000,
    }
    return ToolContext(**(values | overrides))


def run_tool(name, tool_input, answers, **context_overrides):
    """Call tool `name` with Loki answering `answers` ({path: record or Response});
    returns (result, the requests Loki received). Nothing is served from the cache."""
    clear_cache()
    with mock_router(LOKI) as router:
        routes = {}
        for path, answer in answers.items():
            answer = answer if isinstance(answer, httpx.Response) else response(answer)
            routes[path] = router.get(f"/loki/api/v1/{path}").mock(return_value=answer)

        async def main():
            async with LokiClient(BackendConfig(url=LOKI, name="Loki"), **FAST_RETRIES) as loki:
                return await call(TOOLS[name], context(loki=loki, **context_overrides), tool_input)

        result = asyncio.run(main())
    return result, {path: [c.request for c in route.calls] for path, route in routes.items()}


def errors_with_extra_lines(*lines):
    """The recorded error lines, plus `lines` in a new payment-api stream at 03:49."""
    record = copy.deepcopy(recorded("loki", "query_range_streams_errors"))
    at = int(datetime(2026, 11, 25, 3, 49, tzinfo=UTC).timestamp()) * 10**9
    record["body"]["data"]["result"].append(
        {
            "stream": {"namespace": "production", "service": "payment-api"},
            "values": [[str(at + i), line] for i, line in enumerate(lines)],
        }
    )
    return record


def recorded_lines():
    result = recorded("loki", "query_range_streams_errors")["body"]["data"]["result"]
    return sum(len(stream["values"]) for stream in result)


def test_every_log_tool_is_read_only_and_described_for_a_model():
    assert {t.name for t in LOG_TOOLS} == {"query_logs", "log_patterns", "log_labels"}
    for tool in LOG_TOOLS:
        definition = tool.definition()
        assert definition["input_schema"]["type"] == "object"
        assert len(definition["description"]) > 80


def test_query_logs_names_the_incident_templates_under_the_budget():
    result, requests = run_tool(
        "query_logs",
        {"query": '{namespace="production"} |~ "(?i)error|exception|refused"'},
        {"query_range": errors_with_extra_lines(OOM_LINE)},
    )

    assert not result.is_error, result.text
    assert estimate_tokens(result.text) <= 2000
    text = result.text.lower()
    assert "connection refused" in text
    assert "connection is not available" in text  # the pool timeout
    assert "out of memory" in text
    assert "503 service unavailable" in text  # checkout's side
    # The request is what the guardrails allow: default range and line limit.
    [sent] = requests["query_range"]
    assert sent.url.params["limit"] == "500"
    assert sent.url.params["direction"] == "backward"
    assert int(sent.url.params["end"]) == int(NOW.timestamp()) * 10**9
    templates = result.data["templates"]
    assert sum(t["count"] for t in templates) == recorded_lines() + 1  # every line, in data


def test_no_secret_leaves_the_log_tools():
    record = errors_with_extra_lines(LEAK_LINE, LEAK_LINE.replace("retrying", "giving up"))

    for name, tool_input in [
        ("query_logs", {"query": '{service="payment-api"}'}),
        ("log_patterns", {"selector": '{service="payment-api"}'}),
    ]:
        answers = {"query_range": record}
        if name == "log_patterns":  # no pattern ingester: the tool mines the lines itself
            answers["patterns"] = httpx.Response(404, text="404 page not found\n")
        result, _ = run_tool(name, tool_input, answers)

        everything = result.text + json.dumps(result.data)
        assert BEARER not in everything and DSN_PASSWORD not in everything, name
        assert "[REDACTED:" in result.text
        assert result.redactions, name


def test_log_patterns_uses_lokis_patterns_when_it_has_them():
    result, requests = run_tool(
        "log_patterns",
        {"selector": '{service="payment-api"}'},
        {"patterns": recorded("loki", "patterns")},
    )

    assert not result.is_error, result.text
    assert "Loki's detected patterns" in result.text
    assert "HikariPool-1 - Connection is not available" in result.text
    assert result.data["templates"][0]["level"] == "error"
    assert all(t["source"] == "loki_patterns" for t in result.data["templates"])
    [sent] = requests["patterns"]
    assert sent.url.params["query"] == '{service="payment-api"}'


def test_log_patterns_falls_back_to_mining_when_loki_has_no_patterns():
    result, requests = run_tool(
        "log_patterns",
        {"selector": '{namespace="production"}'},
        {
            "patterns": httpx.Response(404, text="404 page not found\n"),
            "query_range": recorded("loki", "query_range_streams_errors"),
        },
    )

    assert not result.is_error, result.text
    assert result.text.startswith(f"Templates mined from the newest {recorded_lines()} lines")
    assert "connection refused" in result.text.lower()
    assert requests["query_range"][0].url.params["limit"] == "1000"


def test_a_metric_logql_query_is_summarised_per_series():
    result, _ = run_tool(
        "query_logs",
        {"query": f"sum by (service, detected_level) (count_over_time({SELECTOR}[1m]))"},
        {"query_range": recorded("loki", "query_range_matrix_count_by_level")},
    )

    assert not result.is_error, result.text
    series = result.data["series"]
    assert series and all("baseline_mean" in s or "incident_mean" in s for s in series)
    assert "[[" not in result.text  # summaries, never raw point lists
    appeared = {
        s["labels"]["service"]
        for s in series
        if s["state"] == "appeared" and s["labels"]["detected_level"] == "error"
    }
    assert appeared == {"checkout", "payment-api"}  # no error line before the incident
    assert '{detected_level="error",service="payment-api"}: score 10.0; appeared at 03:50' in (
        result.text
    )


def test_label_discovery():
    names, _ = run_tool("log_labels", {}, {"labels": recorded("loki", "labels")})
    values, requests = run_tool(
        "log_labels",
        {"label": "service", "selector": '{namespace="production"}'},
        {"label/service/values": recorded("loki", "label_service_values")},
    )

    assert names.data["values"] == ["namespace", "pod", "service", "service_name"]
    assert "4 label names" in names.text
    assert values.text.splitlines()[1:] == ["checkout", "orders-db", "payment-api"]
    assert requests["label/service/values"][0].url.params["query"] == '{namespace="production"}'


def test_lokis_own_refusal_comes_back_for_the_model_to_fix():
    result, _ = run_tool(
        "query_logs",
        {"query": '{service="payment-api" |= "error'},
        {"query_range": recorded("loki", "error_parse")},
    )

    assert result.is_error
    assert "syntax error: unexpected |=" in result.text


@pytest.mark.parametrize(
    ("tool_input", "message"),
    [
        ({"query": '{service="x"}', "start": "2026-11-24T20:00:00Z"}, "at most 6h"),
        ({"query": '{service="x"}', "limit": 5000}, "limit=5000 is outside 1..1000"),
        ({"query": '{service="x"}', "start": "yesterday"}, "is not a time"),
        ({"query": "   "}, "query is empty"),
        ({"query": '{service="x"}', "end": "2026-11-25T03:00:00Z"}, "range is empty"),
        ({"limit": 10}, "query: Field required"),
    ],
)
def test_guardrails_refuse_before_loki_is_asked(tool_input, message):
    result, _ = run_tool("query_logs", tool_input, {})  # any request would be unmocked

    assert result.is_error
    assert message in result.text


def test_an_end_after_the_investigations_now_is_clamped():
    _, requests = run_tool(
        "query_logs",
        {"query": '{service="checkout"}', "end": "2026-11-25T09:00:00Z"},
        {"query_range": recorded("loki", "query_range_empty")},
    )

    assert int(requests["query_range"][0].url.params["end"]) == int(NOW.timestamp()) * 10**9


def test_a_grafana_link_carries_the_same_query_and_range(settings):
    settings.ROOTLINE_GRAFANA_URL = "https://grafana.example"
    settings.ROOTLINE_GRAFANA_LOKI_UID = "loki-uid"
    query = '{service="checkout"} |= "503"'

    result, _ = run_tool(
        "query_logs", {"query": query}, {"query_range": recorded("loki", "query_range_empty")}
    )

    [link] = result.links
    url = httpx.URL(link)
    assert url.host == "grafana.example" and url.path == "/explore"
    pane = json.loads(url.params["panes"])["rootline"]
    assert pane["queries"][0]["expr"] == query
    assert pane["range"]["to"] == str(int(NOW.timestamp() * 1000))


def test_without_loki_the_tools_say_so():
    async def main():
        return await call(TOOLS["query_logs"], context(loki=None), {"query": '{a="b"}'})

    result = asyncio.run(main())
    assert result.is_error
    assert "ROOTLINE_LOKI_URL" in result.text


def test_a_tiny_budget_is_still_respected():
    for budget in (60, 150, 400):
        result, _ = run_tool(
            "query_logs",
            {"query": '{namespace="production"}'},
            {"query_range": errors_with_extra_lines(OOM_LINE, LEAK_LINE)},
            budget_tokens=budget,
        )
        assert estimate_tokens(result.text) <= budget
        assert BEARER not in result.text
