"""The request-path scan: requests grouped by the trace id in their log lines, and the
service where they stopped going as usual; read from bench/loki_stub.py over real HTTP,
paged past Loki's line limit."""

import asyncio
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import pytest
from loki_stub import LogStore, serve

from investigations.signals import build_report, paths, rank_suspects
from investigations.signals.logs import MAX_LINES
from investigations.signals.paths import (
    missing_steps,
    path_query,
    paths_by_span,
    read_all,
    scan_paths,
    score_paths,
    tally,
)
from investigations.telemetry import BackendConfig, LokiClient
from investigations.tools.log_templates import line_masker, mining_text

INCIDENT = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)
BASELINE = (INCIDENT - timedelta(hours=1), INCIDENT)
NOW = INCIDENT + timedelta(minutes=20)
LABELS = ("service",)

# One kind of request: web takes an order, asks cart, cart asks db, web answers.
CHECKOUT = [
    ("web", "INFO  w.OrderController#40 TraceID: {t} [checkout][start]"),
    ("cart", "INFO  c.CartService#12 TraceID: {t} [load cart]"),
    ("db", "INFO  d.Query#7 TraceID: {t} [select items]"),
    ("cart", "INFO  c.CartService#30 TraceID: {t} [cart loaded]"),
    ("web", "INFO  w.OrderController#55 TraceID: {t} [checkout][done]"),
]
# db fails before it logs: cart's call throws, web answers an error.
CHECKOUT_DB_FAILS = [
    *CHECKOUT[:2],
    ("web", "WARN  w.OrderController#60 TraceID: {t} [checkout][cart said 500]"),
]
# A search request whose second step varies all day (every other one is a `miss` with its
# own number): its divergences are chronic.
SEARCH = [("web", "INFO  w.Search#9 TraceID: {t} [search]")]
SEARCH_VARIANTS = [
    ("search", "INFO  s.Index#3 TraceID: {t} [hit]"),
    ("search", "INFO  s.Index#4 TraceID: {t} [miss {n}]"),
]


def request(n, started, steps):
    """Log entries (labels, ts_ns, line) of one request: its steps 10 ms apart."""
    trace = f"{n:08x}abcdef0123456789abcdef01"
    start_ns = int(started.timestamp() * 1e9)
    return [
        (
            {"namespace": "shop", "service": service},
            start_ns + i * 10_000_000,
            f"04:00:00.{i:03d} {text.format(t=trace, n=n)}",
        )
        for i, (service, text) in enumerate(steps)
    ]


def traffic(fault_from=None):
    """Two requests a minute from an hour before the incident to NOW; from `fault_from` on,
    every checkout fails at db. Search takes a variant path one time in four, always."""
    entries, n = [], 0
    at = BASELINE[0]
    while at < NOW:
        n += 1
        failing = fault_from is not None and at >= fault_from
        entries += request(n, at, CHECKOUT_DB_FAILS if failing else CHECKOUT)
        n += 1
        variant = SEARCH_VARIANTS[1 if n % 4 == 0 else 0]
        entries += request(n, at + timedelta(seconds=30), [*SEARCH, variant])
        at += timedelta(minutes=1)
    return entries


def test_a_request_that_stops_early_is_credited_to_the_step_it_never_reached():
    normal = ("web", "take"), ("cart", "load"), ("db", "select"), ("web", "done")
    rare = ("web", "take"), ("cart", "load"), ("cart", "cached"), ("web", "done")
    failed = ("web", "take"), ("cart", "load"), ("web", "error")
    longer = (*normal, ("web", "audit"))
    unknown_start = ("batch", "run"), ("db", "select")

    found = tally(
        missing_steps([normal] * 5 + [rare]), [failed, failed, longer, unknown_start, rare]
    )

    # failed is closest to normal (the more common of two as close): db never came.
    assert {service: dict(steps) for service, steps in found.items()} == {"db": {"select": 2}}


def test_divergences_score_against_the_control_span_per_request():
    # cart's requests diverge one in ten before and during the incident: no surge;
    # db's went from none to half of the requests.
    ok = ("web", "a"), ("cart", "b"), ("db", "c")
    cart_odd = ("web", "a"), ("cart", "x")
    db_missing = ("web", "a"), ("cart", "b")
    reference = [ok] * 50
    control = [ok] * 90 + [cart_odd] * 10
    incident = [ok] * 40 + [cart_odd] * 10 + [db_missing] * 50  # cart_odd diverges at "b"

    scores = score_paths(reference, [control], incident)

    assert scores["cart"].incident_diverged == scores["cart"].baseline_diverged == 10
    assert scores["cart"].score == 0
    assert scores["db"].incident_diverged == 50 and scores["db"].baseline_diverged == 0
    assert scores["db"].score > 10


def test_a_service_s_onset_is_when_its_first_diverging_request_began():
    ok = ("web", "a"), ("cart", "b"), ("db", "c")
    cart_odd = ("web", "a"), ("cart", "x")
    db_missing = ("web", "a"), ("cart", "b")
    incident = [ok, db_missing, cart_odd, ok, db_missing, cart_odd]
    began = [100.0, 160.0, 130.0, 90.0, 150.0, 200.0]

    scores = score_paths([ok] * 50, [[ok] * 50], incident, began=began)

    assert scores["db"].onset == 150.0  # the earlier of its two, not the first in the list
    assert scores["cart"].onset == 130.0
    assert scores["db"].as_evidence()["onset"] == 150.0
    assert score_paths([ok] * 50, [[ok] * 50], incident)["db"].onset is None


def test_an_earlier_incident_in_the_control_span_does_not_make_the_same_failure_normal():
    # db failed for half of the requests in three of the six parts of the control span (the
    # same fault an hour ago); cart diverges one in ten all the time.
    ok = ("web", "a"), ("cart", "b"), ("db", "c")
    cart_odd = ("web", "a"), ("cart", "x")
    db_missing = ("web", "a"), ("cart", "b")
    calm = [ok] * 27 + [cart_odd] * 3
    earlier = [ok] * 12 + [cart_odd] * 3 + [db_missing] * 15
    control = [calm, calm, calm, earlier, earlier, earlier]
    incident = [ok] * 65 + [cart_odd] * 10 + [db_missing] * 25

    scores = score_paths([ok] * 50, control, incident)
    whole = score_paths([ok] * 50, [[path for part in control for path in part]], incident)

    assert whole["db"].score == 0  # against the whole control span, db's failure is usual
    assert scores["db"].score > 8 and scores["db"].baseline_diverged == 0
    assert scores["db"].baseline_requests == 30
    assert scores["cart"].score == 0  # its divergences are as common in every part


def test_a_part_calm_by_chance_does_not_make_steady_noise_a_surge():
    # cart's requests diverge two in a hundred all the time; by chance one part saw none.
    ok = ("web", "a"), ("cart", "b"), ("db", "c")
    cart_odd = ("web", "a"), ("cart", "x")
    parts = [[ok] * (100 - n) + [cart_odd] * n for n in (2, 1, 3, 0, 2, 2)]
    incident = [ok] * 294 + [cart_odd] * 6

    scores = score_paths([ok] * 50, parts, incident)

    assert scores["cart"].baseline_diverged == 0  # the calmest part
    assert scores["cart"].score < 2


def test_without_control_requests_nothing_scores():
    ok = ("web", "a"), ("db", "c")
    db_missing = (("web", "a"),)

    assert score_paths([ok] * 50, [[], []], [db_missing] * 10) == {}


def test_control_parts_too_small_to_tell_a_rate_by_count_together():
    ok = ("web", "a"), ("db", "c")
    db_missing = (("web", "a"),)
    parts = [[ok] * 9 + [db_missing]] * 6  # 10 requests each, one in ten diverges
    incident = [ok] * 90 + [db_missing] * 10

    scores = score_paths([ok] * 50, parts, incident)

    assert scores["db"].baseline_requests == 60 and scores["db"].baseline_diverged == 6
    assert scores["db"].score == 0


@pytest.fixture
def loki():
    """run(entries, scan): `scan(client)` against bench/loki_stub.py serving `entries`."""
    with ExitStack() as stubs:

        def run(entries, scan):
            url = stubs.enter_context(serve(LogStore(entries))).url

            async def go():
                async with LokiClient(BackendConfig("Loki", url)) as client:
                    return await scan(client)

            return asyncio.run(go())

        yield run


def scan_shop(client):
    return scan_paths(client, '{namespace="shop"}', LABELS, BASELINE, (INCIDENT, NOW), now=NOW)


def test_reading_pages_past_the_line_limit_without_losing_or_repeating_a_line(loki):
    # 3 pages' worth in one slice, with a burst of lines in one nanosecond astride the
    # first page's end.
    start = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
    start_ns = int(start.timestamp() * 1e9)
    times = [start_ns + i * 1000 for i in range(MAX_LINES - 5)]
    times += [times[-1] + 1000] * 10
    times += [times[-1] + 1000 + i for i in range(2 * MAX_LINES)]
    entries = [
        ({"service": "web"}, ts, f"TraceID: {i:032x} line {i}") for i, ts in enumerate(times)
    ]
    edges = [start, start + timedelta(seconds=1), start + timedelta(seconds=2)]  # two slices

    read, truncated = loki(
        entries, lambda client: read_all(client, path_query('{service="web"}'), edges)
    )

    assert not truncated
    assert sorted(line for _, line, _ in read) == sorted(line for _, _, line in entries)


def test_the_scan_finds_where_requests_stopped_through_loki(loki):
    scan = loki(traffic(fault_from=INCIDENT + timedelta(minutes=5)), scan_shop)

    assert scan.query == '{namespace="shop"} |~ "(?i)trace[-_.]?id"'
    assert not scan.truncated
    reference, control, incident = scan.requests
    assert (reference, control) == (60, 60)  # two requests a minute, half an hour each
    assert incident == 38  # the last minute's requests may still be running: not counted
    top = max(scan.services.values(), key=lambda s: s.score)
    assert top.service == "db"
    assert top.incident_diverged == 14 and top.baseline_diverged == 0
    assert top.missing.most_common(1)[0][0].startswith("d.Query#7 TraceID: <HEX>")
    # search's variants diverge as often as they did in the baseline
    assert scan.services.get("search") is None or scan.services["search"].score < 2


def test_path_evidence_ranks_and_reports_quoting_the_step_in_the_suspect_list_only(loki):
    scan = loki(traffic(fault_from=INCIDENT + timedelta(minutes=5)), scan_shop)

    suspects = rank_suspects([], {}, "service", ["web"], service_paths=scan.services)
    report, text = build_report(suspects, alerting_services={"web"}, unchecked=[])

    assert suspects[0].service == "db"
    evidence = suspects[0].evidence[0]
    assert evidence["kind"] == "paths"
    assert evidence["missing_steps"][0]["requests"] == 14
    assert (
        "14 of 38 requests in the incident window stopped going through it as they used to "
        "(in the calmest stretch of the baseline: 0 of 60), from 04:05:00 UTC."
    ) in report["summary"]
    # The step is quoted for the engineer; the summary, which briefs the agents, quotes
    # no log text (log text reaches a model only through its tools).
    assert "d.Query" not in report["summary"]
    assert "The step most often no longer reached: `d.Query#7 TraceID: <HEX>" in text
    assert suspects[0].onset == (INCIDENT + timedelta(minutes=5)).timestamp()

    # Had the alert fired at the incident's start, db's failures began five minutes after
    # it (more than LATE_AFTER): weak evidence for this alert, and the report says so.
    fired = INCIDENT.timestamp()
    late = rank_suspects([], {}, "service", ["web"], scan.services, alert_start=fired)
    report, _ = build_report(late, alerting_services={"web"}, unchecked=[])

    assert late[0].path_score == pytest.approx(scan.services["db"].score / 10)
    assert "from 04:05:00 UTC, after the alert fired, so weak evidence." in report["summary"]


def test_a_step_is_what_masking_the_whole_line_would_give():
    # Steps are masked from the first HEAD_WORDS words, with the ids that vary per line
    # made one id first (so that the masking of a kind of line is done once): the same
    # steps as masking the whole line.
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    lines = [
        "2026-11-25 04:00:00.123 2026-11-25 04:00:01 2026-11-25T04:00:02Z 04:00:03 "
        "10.0.0.1:80 0x1f a0b1c2d3e4 step one two three TraceID: {t}",
        "04:00:00.001 INFO  c.Cart#12 TraceID: {t} SpanID: 576f9c38fc25e197 [load] user 42",
        '{{"msg": "select 1f2e3d4c5b6a where id=deadbeef01 and n=12345", "traceId": "{t}"}}',
        "TraceID: {t} " + " ".join(f"word{i}" for i in range(40)),
        "a-0123456789abcdef-b 0123456789abcdef-x 550e8400-e29b-41d4-a716-446655440000 TraceID: {t}",
    ]
    at = int(INCIDENT.timestamp() * 1e9)
    masker = line_masker()
    for n, line in enumerate(lines):
        text = line.format(t=trace)
        spans = [(INCIDENT, INCIDENT + timedelta(minutes=1))]

        [[path]], _ = paths_by_span([(at + n, text, {"service": "web"})], LABELS, spans)

        whole = masker.mask(" ".join(mining_text(text)[0].split()))
        assert path[0][1] == " ".join(whole.split()[: paths.STEP_WORDS])


def test_trace_ids_and_steps_are_read_from_plain_logfmt_and_json_lines():
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    at = int(INCIDENT.timestamp() * 1e9)
    secret = "password=hunter2hunter2"
    entries = [
        (at, f"12:00:00.001 INFO  a.Api#1 TraceID: {trace} [take order]", {"service": "web"}),
        (at + 1, f'level=info msg="load cart 42" trace_id={trace}', {"service": "cart"}),
        (at + 2, f'{{"msg": "select items", "traceId": "{trace.upper()}"}}', {"service": "db"}),
        (at + 3, f"no trace id here {trace}", {"service": "db"}),
        # the secret straddles STEP_CHARS (300): "TraceID: " + 32 + " long " + 247 + " "
        (at + 4, f"TraceID: {trace} long {'x' * 247} {secret}", {"service": "db"}),
        (at + 5, f"TraceID: {trace} unlabelled", {"pod": "web-1"}),
    ]
    spans = [(INCIDENT, INCIDENT + timedelta(minutes=1))]

    [[path]], [[began]] = paths_by_span(entries, LABELS, spans)

    assert began == INCIDENT.timestamp()  # when its first line was logged

    assert [service for service, _ in path] == ["web", "cart", "db", "db"]
    assert path[0][1] == "a.Api#1 TraceID: <HEX> [take order]"
    assert path[1][1] == "load cart 42"
    assert path[2][1] == "select items"
    assert path[3][1] == f"TraceID: <HEX> long {'x' * 247}"  # the cut word is dropped

    # A pod the metric scan knows is its service's, whatever its stream says.
    owners = {("pod", "web-1"): "web"}
    [[path]], _ = paths_by_span(entries, LABELS, spans, owners)
    assert [service for service, _ in path] == ["web", "cart", "db", "db", "web"]


def test_a_capped_read_still_has_the_incident(loki, monkeypatch):
    # Room for 20 lines (about 3 minutes of this traffic) per slice: each slice is read
    # from its start only. A 4-minute incident at the end of 80 minutes would fall past
    # the lines read of an equal slice of the whole; it has slices of its own.
    monkeypatch.setattr(paths, "MAX_PATH_LINES", 8 * 20)
    monkeypatch.setattr(paths, "MAX_LINES", 10)
    start = NOW - timedelta(minutes=4)

    scan = loki(
        traffic(fault_from=start),
        lambda client: scan_paths(
            client, '{namespace="shop"}', LABELS, (BASELINE[0], start), (start, NOW), now=NOW
        ),
    )

    assert scan.truncated
    reference, control, incident = scan.requests
    assert reference and control and incident
    assert max(scan.services.values(), key=lambda s: s.score).service == "db"


def test_an_incident_window_that_ends_at_once_reads_nothing_for_it(loki):
    scan = loki(
        traffic(),
        lambda client: scan_paths(
            client, '{namespace="shop"}', LABELS, (BASELINE[0], NOW), (NOW, NOW), now=NOW
        ),
    )

    assert scan.requests[2] == 0
    assert all(s.incident_diverged == 0 for s in scan.services.values())


def test_the_closest_path_is_sought_among_the_most_common_only(monkeypatch):
    # Thousands of rare paths (first words that vary) must not make each comparison
    # cost thousands: only the MAX_CLOSEST_CANDIDATES most common are candidates.
    common = ("web", "take"), ("cart", "load"), ("db", "select")
    rare = ("web", "take"), ("cart", "load"), ("cache", "hit"), ("cache", "store")
    sample = ("web", "take"), ("cart", "load"), ("cache", "hit")  # closest to rare
    reference = [common] * 3 + [rare]

    def credited():
        found = tally(missing_steps(reference), [sample])
        return {service: dict(steps) for service, steps in found.items()}

    assert credited() == {"cache": {"store": 1}}
    monkeypatch.setattr(paths, "MAX_CLOSEST_CANDIDATES", 1)
    assert credited() == {"db": {"select": 1}}
