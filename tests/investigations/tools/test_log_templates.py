"""One kind of line makes one template, at the right level, judged against the baseline."""

import pytest

from investigations.tools.compaction import compact_logs
from investigations.tools.log_templates import (
    MAX_EXAMPLE_CHARS,
    LogEntry,
    detect_level,
    mine_templates,
    mining_text,
    templates_from_loki_patterns,
)
from investigations.tools.redaction import Redactor

REDACTOR = Redactor()
MINUTE_NS = 60 * 10**9


def mine(entries, **kwargs):
    templates, _ = mine_templates(entries, REDACTOR, **kwargs)
    return templates


@pytest.mark.parametrize(
    ("line", "labels", "level"),
    [
        ("anything", {"detected_level": "error"}, "error"),
        ("Out of memory: Killed process 4121 (postgres)", {"detected_level": "unknown"}, "error"),
        ('{"level": "warn", "msg": "slow query"}', {}, "warn"),
        ('{"severity": "CRITICAL", "message": "disk"}', {}, "error"),
        ('ts=1 level=info msg="retry budget refilled after timeout"', {}, "info"),
        (
            "2026-11-25 03:58:42 WARN  o.h.e.j.s.SqlExceptionHelper - SQL Warning Code: 0",
            {},
            "warn",
        ),
        ("panic: runtime error: index out of range [5] with length 3", {}, "error"),
        ("dial tcp 10.3.4.5:5432: connect: connection refused", {}, "error"),
        ("context deadline exceeded (Client.Timeout exceeded while awaiting headers)", {}, "error"),
        ("Back-off restarting failed container", {}, "error"),
        ("GET /healthz 200 1ms", {}, "unknown"),
        ("write /var/lib/data/segment-7.log: disk quota exceeded", {}, "error"),
        ("token bucket refilled", {"level": "debug"}, "debug"),
    ],
)
def test_levels(line, labels, level):
    assert detect_level(line, labels) == level


def test_lines_are_mined_on_what_they_say():
    assert mining_text('{"msg": "pool exhausted", "n": 3}')[0] == "pool exhausted"
    assert mining_text('{"status": 503, "path": "/v1"}')[0] == "status=503 path=/v1"
    assert mining_text('ts=x level=error msg="payment \\"call\\" failed" id=1')[0] == (
        'payment \\"call\\" failed'
    )
    assert mining_text("level=info msg=started port=80")[0] == "started"
    assert mining_text("2026-11-25T03:57:51.982Z INFO  [main] o.s.Tomcat - started")[0] == (
        "o.s.Tomcat - started"
    )
    assert mining_text("[2026-11-25 03:58:42,123] ERROR [worker-3] disk full")[0] == "disk full"
    assert mining_text("17:49:07.701 INFO  t.s.Travel#366 [getTickets][done]")[0] == (
        "t.s.Travel#366 [getTickets][done]"
    )
    traceback = "Traceback (most recent call last):\n  File \"x.py\"\nKeyError: 'id'"
    assert mining_text(traceback)[0] == "KeyError: 'id'"
    assert mining_text("java.lang.IllegalStateException: closed\n\tat a.b(C.java:1)")[0] == (
        "java.lang.IllegalStateException: closed"
    )


def test_variable_parts_collapse_into_one_template():
    entries = [
        LogEntry(
            i,
            f"2026-11-25T03:5{i % 10}:00Z request {i:08x}-1b2c-4d5e-8f90-{i:012x} from "
            f"10.0.{i % 250}.{i % 200}:{40000 + i} took {i * 1.5:.1f} ms trace=9f86d08188{i:06x}",
            {"service": "edge"},
        )
        for i in range(200)
    ]
    templates = mine(entries)
    assert len(templates) == 1
    assert templates[0].count == 200
    assert "<UUID>" in templates[0].template and "<IP>" in templates[0].template


def test_a_time_of_day_alone_is_masked_too():
    entries = [
        LogEntry(
            i,
            f"{10 + i % 12}:{i % 60:02d}:07.{i:03d} INFO c.Seat#57 [seat] at {i % 24:02d}:15:00",
            {},
        )
        for i in range(120)
    ]
    [template] = mine(entries)
    assert template.template == "c.Seat#57 [seat] at <TS>"


def test_a_rare_error_keeps_its_own_template_inside_a_frequent_info_one():
    entries = [LogEntry(i, f"request finished status={200} id={i}", {}) for i in range(500)]
    entries.append(LogEntry(999, "request finished status=500 id=7", {"level": "error"}))
    templates = mine(entries)
    assert [(t.level, t.count) for t in templates] == [("error", 1), ("unknown", 500)]


def test_new_and_surged_are_judged_against_the_baseline_rate():
    def lines(text, minutes, per_minute):
        return [
            LogEntry(m * MINUTE_NS + k, text, {"service": "payment-api"})
            for m in minutes
            for k in range(per_minute)
        ]

    entries = (
        lines("cache warmed", range(30), 10)  # steady
        + lines("retrying upstream call", range(20), 1)  # 1/min before ...
        + lines("retrying upstream call", range(20, 30), 6)  # ... 6/min after
        + lines("upstream circuit opened", range(25, 30), 2)  # only after
    )
    templates = {
        t.template: t
        for t in mine(entries, incident_start_ns=20 * MINUTE_NS, window_ns=(0, 30 * MINUTE_NS))
    }

    steady = templates["cache warmed"]
    assert (steady.new, steady.surged, steady.surge_ratio) == (False, False, 1.0)
    retry = templates["retrying upstream call"]
    assert retry.surged and retry.surge_ratio == 6.0 and not retry.new
    opened = templates["upstream circuit opened"]
    assert opened.new and opened.incident_count == 10 and opened.baseline_count == 0


def test_without_a_baseline_nothing_is_called_new():
    entries = [LogEntry(20 * MINUTE_NS + i, "upstream circuit opened", {}) for i in range(5)]
    assert not mine(entries, incident_start_ns=20 * MINUTE_NS)[0].new
    covered = mine(entries, incident_start_ns=20 * MINUTE_NS, window_ns=(0, 30 * MINUTE_NS))
    assert covered[0].new


def test_ranking_puts_errors_then_new_then_surged_then_count():
    entries = (
        [LogEntry(m * MINUTE_NS, "heartbeat ok", {}) for m in range(30)]
        + [LogEntry(m * MINUTE_NS, "gc pause", {"level": "warn"}) for m in range(30)]
        + [LogEntry(25 * MINUTE_NS, "feature flag reloaded", {"level": "info"})]
        + [LogEntry(m * MINUTE_NS, "disk write failed", {"level": "error"}) for m in range(29, 30)]
        + [LogEntry(m * MINUTE_NS, "request rejected", {"level": "error"}) for m in range(30)]
    )
    ranked = [t.template for t in mine(entries, incident_start_ns=20 * MINUTE_NS)]
    assert ranked == [
        "disk write failed",
        "request rejected",
        "feature flag reloaded",
        "gc pause",
        "heartbeat ok",
    ]


def test_examples_are_few_short_distinct_and_redacted():
    entries = [
        LogEntry(i, f"login ok user=u{i % 2} token={'a1' * 200}{i % 2} " + "x" * 1000, {})
        for i in range(50)
    ]
    templates, counts = mine_templates(entries, REDACTOR)
    examples = templates[0].examples
    assert len(examples) == 2
    assert all(len(e) <= MAX_EXAMPLE_CHARS and "a1a1" not in e for e in examples)
    assert counts == {"key_value": 2}


def test_services_count_where_a_template_came_from():
    entries = [
        LogEntry(i, "connection reset by peer", {"app": "a" if i % 3 else "b"}) for i in range(9)
    ]
    entries.append(LogEntry(10, "connection reset by peer", {"namespace": "prod"}))
    assert mine(entries)[0].services == {"a": 6, "b": 3, "namespace=prod": 1}


def test_a_line_is_counted_for_the_service_labels_the_settings_name(settings):
    # The scan and the agents' tools name a stream's service alike: by
    # ROOTLINE_SERVICE_LABELS, each also under its OpenTelemetry name.
    def line(labels):
        return LogEntry(1, "connection reset by peer", labels)

    settings.ROOTLINE_SERVICE_LABELS = ["component", "service"]
    entries = [line({"component": "ledger", "app": "x"}), line({"service_name": "cart"})]
    entries.append(line({"app": "x"}))
    assert mine(entries)[0].services == {"ledger": 1, "cart": 1, "app=x": 1}


def test_a_line_is_counted_for_the_scope_s_service_label_first():
    # Alerts on OpenTelemetry's job (shop/web) and a Loki fed through OTLP: a stream is
    # the job its service_namespace and service_name make, as the suspects name it.
    labels = {"service_namespace": "shop", "service_name": "db", "app": "x"}
    entries = [LogEntry(1, "connection reset by peer", labels)]

    assert mine(entries)[0].services == {"db": 1}
    compacted = compact_logs(entries, service_label="job")
    assert compacted.data[0]["services"] == ["shop/db"]


def test_loki_patterns_count_their_samples():
    patterns = [
        {"pattern": "<_> lease expired <_>", "level": "warn", "samples": [[1200, 2], [1260, 3]]},
        {"pattern": "<_> level=error msg=boom <_>", "samples": [[1300, 1]]},
        {"pattern": "<_> nothing <_>", "samples": []},
    ]
    templates, _ = templates_from_loki_patterns(
        patterns, REDACTOR, incident_start_ns=1250 * 10**9, services=["orders-db"]
    )
    assert [t.as_dict()["template"] for t in templates] == [
        "<_> level=error msg=boom <_>",
        "<_> lease expired <_>",
    ]
    lease = templates[1].as_dict()
    assert lease["count"] == 5 and lease["level"] == "warn" and lease["services"] == ["orders-db"]
    assert lease["first_seen"] == "1970-01-01T00:20:00Z" and lease["last_seen"].endswith("21:00Z")
    assert (lease["baseline_count"], lease["incident_count"]) == (2, 3)
