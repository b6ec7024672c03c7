"""Tool output under a token budget: ranked, decision-ready, saying what was left out."""

import math
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from investigations.tools.compaction import (
    DEFAULT_BUDGET_TOKENS,
    compact_log_patterns,
    compact_logs,
    compact_metrics,
    estimate_tokens,
)
from investigations.tools.log_templates import LogEntry, entries_from_loki_streams
from tests.shared import FIXTURES_DIR, fixture

# The recorded incident: a 30-minute window, payment-api failing from minute 20 on.
WINDOW_NS = (1795577340000000000, 1795579140000000000)
INCIDENT_START_NS = WINDOW_NS[0] + 20 * 60 * 10**9
SECOND_NS = 10**9
LEFT_OUT = re.compile(r"^\+([\d,]+) more templates, ([\d,]+) lines not shown$")


def recorded_entries():
    """Every log line of every recorded Loki `query_range` answer that has streams."""
    entries = []
    for path in sorted((FIXTURES_DIR / "loki").glob("query_range_*.json")):
        data = fixture(f"loki/{path.name}")["body"]["data"]
        if data["resultType"] == "streams":
            entries += entries_from_loki_streams(data["result"])
    return entries


VERBS = ["handled", "cached", "queued", "served", "indexed", "synced", "loaded", "flushed"]
OBJECTS = ["request", "session", "invoice", "order", "profile", "report", "webhook", "batch"]


def info_traffic(count, services=("checkout", "payment-api", "orders-db")):
    """Ordinary lines over the whole window, of 64 kinds."""
    step_ns = (WINDOW_NS[1] - WINDOW_NS[0]) // count
    return [
        LogEntry(
            WINDOW_NS[0] + i * step_ns,
            f'level=info msg="{VERBS[i % 8]} {OBJECTS[i // 8 % 8]} for tenant {i * 7919 % 10007}"'
            f" took={i % 97}ms",
            {"service": services[i % len(services)], "detected_level": "info"},
        )
        for i in range(count)
    ]


OOM_LINE = LogEntry(
    INCIDENT_START_NS - 3 * SECOND_NS,
    "Out of memory: Killed process 4121 (postgres) total-vm:2150360kB, anon-rss:1048576kB",
    {"service": "orders-db", "pod": "orders-db-0", "detected_level": "unknown"},
)


def summary_lines(text):
    """One line per shown template: no header, examples or left-out line."""
    lines = text.splitlines()[1:]
    return [line for line in lines if not line.startswith("    ") and not LEFT_OUT.match(line)]


def left_out_line(text):
    match = LEFT_OUT.match(text.splitlines()[-1])
    return match and (int(match[1].replace(",", "")), int(match[2].replace(",", "")))


def test_the_recorded_incident_names_its_failures():
    result = compact_logs(recorded_entries(), incident_start_ns=INCIDENT_START_NS,
                          window_ns=WINDOW_NS)  # fmt: skip

    assert "Connection refused" in result.text
    assert "HikariPool-1 - Connection is not available" in result.text
    assert "payment call failed: 503 Service Unavailable" in result.text
    assert result.left_out == 0 and left_out_line(result.text) is None
    assert estimate_tokens(result.text) <= DEFAULT_BUDGET_TOKENS
    refused = next(t for t in result.data if t["template"].startswith("could not connect"))
    assert refused["level"] == "error" and refused["new"] and refused["services"] == ["payment-api"]
    assert refused["count"] == 21
    assert refused["first_seen"] == "2026-11-25T03:56:36Z"


def test_the_oom_kill_and_the_errors_outrank_a_flood_of_info_lines():
    """The recorded answers were filtered before orders-db's OOM line; here it is, with a
    flood of ordinary traffic around the recorded errors."""
    entries = info_traffic(20_000) + recorded_entries() + [OOM_LINE]

    result = compact_logs(entries, incident_start_ns=INCIDENT_START_NS - 10 * SECOND_NS,
                          window_ns=WINDOW_NS)  # fmt: skip

    shown = summary_lines(result.text)
    errors = [line for line in shown if line.startswith("[ERROR")]
    assert shown[: len(errors)] == errors
    assert len(errors) == sum(t["level"] == "error" for t in result.data) == 7
    oom = next(line for line in errors if "Out of memory: Killed process" in line)
    assert oom.startswith("[ERROR NEW] 1 line ") and "orders-db" in oom
    assert any("HikariPool-1 - Connection is not available" in line for line in errors)
    assert any("Connection refused" in line for line in errors)
    assert estimate_tokens(result.text) <= DEFAULT_BUDGET_TOKENS


def test_what_was_left_out_is_said_and_adds_up():
    entries = [*info_traffic(12_000), OOM_LINE]

    result = compact_logs(entries, budget_tokens=250)

    assert result.left_out > 0
    hidden = result.data[result.shown :]
    assert left_out_line(result.text) == (len(hidden), sum(t["count"] for t in hidden))
    assert result.shown + result.left_out == len(result.data)
    assert "Out of memory" in result.text.splitlines()[1]
    assert estimate_tokens(result.text) <= 250


def test_every_shown_template_gets_an_example_before_any_gets_two():
    failures = ["disk full", "socket closed by peer early", "checksum mismatch in block", "x"]
    entries = [
        LogEntry(i * SECOND_NS, f'level=error msg="{failure}" shard={i}', {})
        for failure in failures
        for i in range(1, 20)
    ]
    result = compact_logs(entries, budget_tokens=140)
    lines = result.text.splitlines()
    assert result.shown == 4
    assert sum(line.startswith("    e.g.") for line in lines) >= 4
    assert lines[2].startswith("    e.g.") and not lines[3].startswith("    e.g.")


def test_examples_and_templates_carry_no_secret():
    entries = [
        LogEntry(i, f'level=warn msg="retrying" dsn=postgres://app:Pa55w0rd{i}@orders-db/x', {})
        for i in range(5)
    ]
    result = compact_logs(entries)
    assert "Pa55w0rd" not in result.text and "Pa55w0rd" not in str(result.data)
    # the five lines make one example once their secrets are gone
    assert result.data[0]["examples"] == [
        'level=warn msg="retrying" dsn=postgres://app:[REDACTED:url_password]@orders-db/x'
    ]
    assert result.redactions == {"url_password": 1}


def test_loki_patterns_give_the_same_shape():
    patterns = fixture("loki/patterns.json")["body"]["data"]

    result = compact_log_patterns(
        patterns, incident_start_ns=INCIDENT_START_NS, window_ns=WINDOW_NS,
        services=["payment-api"],
    )  # fmt: skip

    assert [t["count"] for t in result.data] == [51, 49, 47]
    assert all(t["level"] == "error" and t["new"] for t in result.data)
    assert all(t["source"] == "loki_patterns" for t in result.data)
    assert "<_>HikariPool-1 - Connection is not available" in result.text
    assert (
        "[ERROR NEW] 49 lines 03:49:30..03:58:50 payment-api: <_>could not connect" in result.text
    )
    assert set(result.data[0]) == set(compact_logs(recorded_entries()).data[0])


def test_no_lines_and_no_series_say_so():
    assert compact_logs([]).text == "no log lines"
    assert compact_metrics([], baseline=(0, 10), incident=(10, 20)).text == "no series matched"


def test_metrics_are_summarised_most_changed_first_never_as_points():
    quiet = [(t, 0.5 + 0.01 * (t % 3)) for t in range(0, 1800, 15)]
    step = [(t, 1.0 if t < 1200 else 40.0) for t in range(0, 1800, 15)]
    series = [({"service": f"quiet-{i}"}, quiet) for i in range(150)]
    series.append(({"__name__": "http_errors", "service": "payment-api"}, step))

    result = compact_metrics(series, baseline=(0, 1200), incident=(1200, 1800), budget_tokens=300)

    lines = result.text.splitlines()
    assert lines[1].startswith('http_errors{service="payment-api"}: score 100.0; mean 1 → 40')
    assert "changed from 00:20:00" in lines[1]
    assert lines[-1] == f"+{result.left_out} more series not shown"
    assert result.left_out == 151 - result.shown
    assert len(lines) == 1 + result.shown + 1  # a line per series, never points
    assert estimate_tokens(result.text) <= 300


def test_metric_labels_carry_no_secret():
    labels = {"__name__": "probe_success", "instance": "https://bob:Sw0rdfish@api.acme.io/x"}
    result = compact_metrics([(labels, [(0, 1), (20, 0)])], baseline=(0, 10), incident=(10, 30))
    assert "Sw0rdfish" not in result.text and "Sw0rdfish" not in str(result.data)
    assert result.redactions == {"url_password": 1}


def test_a_zero_budget_gives_nothing_and_a_tiny_one_a_cut_header():
    entries = info_traffic(50)
    assert compact_logs(entries, budget_tokens=0).text == ""
    tiny = compact_logs(entries, budget_tokens=3).text
    assert len(tiny) <= 12 and tiny.endswith("…")


LINE_TEXT = st.one_of(
    st.text(max_size=300),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40).map(
        lambda s: s * 500
    ),
    st.sampled_from(
        [
            'level=error msg="could not connect" host=db port=5432',
            '{"level": "info", "msg": "handled", "latency_ms": 12}',
            "Traceback (most recent call last):\n  File x\nValueError: bad",
            "password=hunter2 " * 40,
        ]
    ),
)
ENTRIES = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=2**62),
        LINE_TEXT,
        st.dictionaries(
            st.sampled_from(["service", "detected_level", "pod"]), st.text(max_size=30)
        ),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(entries=ENTRIES, budget=st.integers(min_value=50, max_value=4000),
       incident_start=st.one_of(st.none(), st.integers(min_value=0, max_value=2**62)))  # fmt: skip
def test_log_output_never_exceeds_its_budget(entries, budget, incident_start):
    result = compact_logs(entries, budget_tokens=budget, incident_start_ns=incident_start)
    assert estimate_tokens(result.text) <= budget
    assert result.shown + result.left_out == len(result.data)


@settings(max_examples=30, deadline=None)
@given(templates=st.integers(min_value=1000, max_value=5000), budget=st.integers(50, 4000))
def test_thousands_of_templates_stay_under_budget(templates, budget):
    patterns = [
        {"pattern": f"<_> step {i} of job {'x' * (i % 300)} <_>", "samples": [[i, i % 7 + 1]]}
        for i in range(templates)
    ]
    result = compact_log_patterns(patterns, budget_tokens=budget)
    assert estimate_tokens(result.text) <= budget
    assert left_out_line(result.text) == (
        result.left_out,
        sum(t["count"] for t in result.data[result.shown :]),
    )


def test_a_thousand_distinct_lines_are_mined_and_cut_to_the_budget():
    entries = [
        LogEntry(i, f"{'abcdefghij'[i % 10]}{i} event{i} in zone{i}", {}) for i in range(1000)
    ]
    result = compact_logs(entries)
    assert len(result.data) == 1000
    assert estimate_tokens(result.text) <= DEFAULT_BUDGET_TOKENS
    assert left_out_line(result.text) == (result.left_out, result.left_out)


VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["NaN", "+Inf", "-Inf", "0", "1e308", "oops"]),
)
SERIES = st.lists(
    st.tuples(
        st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=300), max_size=6),
        st.lists(st.tuples(st.floats(min_value=0, max_value=3600), VALUES), max_size=40),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(series=SERIES, budget=st.integers(min_value=50, max_value=4000))
def test_metric_output_never_exceeds_its_budget(series, budget):
    result = compact_metrics(series, baseline=(0, 1800), incident=(1800, 3600),
                             budget_tokens=budget)  # fmt: skip
    assert estimate_tokens(result.text) <= budget


def test_estimate_tokens_is_characters_over_four_rounded_up():
    assert [estimate_tokens("x" * n) for n in (0, 1, 4, 5, 8)] == [0, 1, 1, 2, 2]
    assert estimate_tokens("é" * 7) == math.ceil(7 / 4)
