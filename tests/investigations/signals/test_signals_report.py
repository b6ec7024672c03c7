"""The log scoring, the signals-only report, and an investigation whose backends are down."""

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from investigations import runner
from investigations.signals import build_report, rank_suspects
from investigations.signals.logs import MAX_LINES, score_logs
from investigations.signals.metrics import SeriesScore, calls_between
from investigations.signals.paths import ServicePaths
from investigations.signals.report import evidence_gist
from investigations.tools.log_templates import LogEntry
from tests.factories import T0, make_alert, make_investigation

INCIDENT = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)
WINDOWS = (INCIDENT - timedelta(hours=1), INCIDENT), (INCIDENT, INCIDENT + timedelta(minutes=5))


def entry(minutes, service, line):
    at = INCIDENT + timedelta(minutes=minutes)
    return LogEntry(int(at.timestamp() * 1e9), line, {"namespace": "shop", "service": service})


def test_new_error_templates_make_a_service_the_log_suspect():
    baseline = [entry(-30 + i, "cart", f"ERROR cache miss for key {i}") for i in range(20)]
    incident = [entry(1, "cart", f"ERROR cache miss for key {i}") for i in range(8)]
    incident += [
        entry(0.5 + i / 10, "orders-db", f"FATAL could not open relation {i}: out of memory")
        for i in range(6)
    ]

    scores = score_logs(baseline, incident, ("service",), *WINDOWS)

    db, cart = scores["orders-db"], scores["cart"]
    assert (db.incident_lines, db.baseline_lines, db.new_template_lines) == (6, 0, 6)
    assert (cart.incident_lines, cart.baseline_lines, cart.new_template_lines) == (8, 20, 0)
    assert db.score > cart.score
    assert db.templates[0]["new"] is True
    assert "out of memory" in db.templates[0]["template"]


def test_a_pod_the_metrics_know_names_its_logs_service():
    # Every container is "server", as the log agent labels the streams; the metric scan
    # knows whose each pod is.
    def line(minutes, pod, text):
        at = INCIDENT + timedelta(minutes=minutes)
        labels = {"namespace": "shop", "container": "server", "pod": pod}
        return LogEntry(int(at.timestamp() * 1e9), text, labels)

    baseline = [line(-30 + i, "cart-5c9-x", f"ERROR cache miss for key {i}") for i in range(20)]
    incident = [line(1 + i / 10, "db-0", f"FATAL cannot open relation {i}") for i in range(6)]
    incident += [line(2, "batch-1", "ERROR job failed")]
    owners = {("pod", "cart-5c9-x"): "cart", ("pod", "db-0"): "orders-db"}

    scores = score_logs(baseline, incident, ("service", "container"), *WINDOWS, owners)

    assert set(scores) == {"cart", "orders-db", "server"}  # batch-1: no metrics of its own
    assert scores["orders-db"].incident_lines == 6 and scores["cart"].baseline_lines == 20
    assert scores["orders-db"].new_template_lines == 6  # its templates are its own, too
    assert "cannot open relation" in scores["orders-db"].templates[0]["template"]
    assert set(score_logs(baseline, incident, ("service", "container"), *WINDOWS)) == {"server"}


def test_errors_a_service_always_logs_are_not_a_surge():
    # cart logs a timeout every minute, before and during the incident; payments' errors
    # went from one every ten minutes to one every ten seconds.
    baseline = [entry(-60 + i, "cart", f"ERROR timeout calling pricing {i}") for i in range(60)]
    baseline += [entry(-60 + 10 * i, "payments", f"ERROR card declined {i}") for i in range(6)]
    incident = [entry(i, "cart", f"ERROR timeout calling pricing {i}") for i in range(5)]
    incident += [entry(i / 6, "payments", f"ERROR card declined {i}") for i in range(30)]

    scores = score_logs(baseline, incident, ("service",), *WINDOWS)

    assert scores["cart"].score == 0  # 5 lines where 5 were expected
    assert scores["payments"].score > 10  # 30 lines where 0.5 were expected
    assert scores["payments"].new_template_lines == 0  # the template was known


def test_the_same_failure_half_an_hour_ago_does_not_make_it_look_normal_now():
    # payments failed from 20 to 10 minutes before the incident (300 lines), then
    # recovered; now it fails again (30 lines in five minutes). At the hour's rate 25 were
    # to be expected; its calmest stretch (five quiet minutes) expects about one.
    earlier = [entry(-20 + i / 30, "payments", f"ERROR card declined {i}") for i in range(300)]
    now = [entry(i / 6, "payments", f"ERROR card declined {i}") for i in range(30)]

    payments = score_logs(earlier, now, ("service",), *WINDOWS)["payments"]
    suspects = rank_suspects([], {"payments": payments}, "service")
    report, _ = build_report(suspects, alerting_services={"web"}, unchecked=[])

    assert payments.baseline_lines == 300
    assert payments.expected_lines == pytest.approx(1.0)  # (0 + 1) lines per 5 minutes
    assert payments.score > 15
    assert (
        "30 error-like log lines in the incident window (baseline: 300; its calmest "
        in (report["summary"])
    )
    assert "stretch predicts 1)" in report["summary"]


def test_without_a_line_in_the_control_span_the_whole_baseline_rate_is_used():
    # The logs hold nothing of the baseline's last half (a gap in shipping, say): cart's
    # rate is the whole window's, 60 an hour, so five lines in five minutes are usual.
    baseline = [entry(-60 + i / 2, "cart", f"ERROR timeout calling pricing {i}") for i in range(60)]
    incident = [entry(i, "cart", f"ERROR timeout calling pricing {i}") for i in range(5)]

    cart = score_logs(baseline, incident, ("service",), *WINDOWS)["cart"]

    assert cart.expected_lines == pytest.approx(5.0)
    assert cart.score == 0


def test_a_capped_baseline_is_read_as_the_span_it_covers():
    # Loki answered only the newest MAX_LINES lines: they cover the last 10 minutes of the
    # hour, so the baseline rate is theirs over 10 minutes, not over the hour.
    span = 10 * 60 / MAX_LINES
    baseline = [
        entry(-(i + 1) * span / 60, "cart", f"ERROR timeout calling pricing {i}")
        for i in range(MAX_LINES)
    ]
    incident = [
        entry(i * span / 60, "cart", f"ERROR timeout calling pricing {i}")
        for i in range(MAX_LINES // 2)
    ]

    scores = score_logs(baseline, incident, ("service",), *WINDOWS)

    assert scores["cart"].score == 0  # the same rate as before


def test_logs_and_metrics_are_combined_per_service():
    metrics = [
        SeriesScore("cpu", {"service": "cart"}, 12.0, 1, 100.0, 1.0, 5.0),
        SeriesScore("cpu", {"service": "web"}, 2.0, 1, None, 1.0, 1.1),
    ]
    logs = score_logs(
        [], [entry(1, "orders-db", "ERROR connection refused")] * 5, ("service",), *WINDOWS
    )

    suspects = rank_suspects(metrics, logs, "service", services_in_scope=["web"])

    assert [s.service for s in suspects] == ["orders-db", "cart", "web"]
    assert suspects[0].evidence[0]["kind"] == "logs"
    assert suspects[1].evidence[0]["metric"] == "cpu"


def test_a_weak_best_metric_change_counts_as_little_as_it_is():
    # The strongest change in scope is 4 robust deviations: no clear metric suspect, so
    # it is not scaled up to count as much as the best of a kind (a saturated limit).
    weak = [SeriesScore("cpu", {"service": "cart"}, 4.0, 1, 100.0, 1.0, 1.2)]
    [cart] = rank_suspects(weak, {}, "service")
    assert cart.score == pytest.approx(0.4)
    strong = [SeriesScore("cpu", {"service": "cart"}, 40.0, 1, 100.0, 1.0, 5.0)]
    strong.append(SeriesScore("mem", {"service": "web"}, 4.0, 1, 100.0, 1.0, 1.2))
    ranked = {s.service: s.score for s in rank_suspects(strong, {}, "service")}
    assert ranked == {"cart": pytest.approx(1.0), "web": pytest.approx(0.1)}


def test_where_nothing_changed_clearly_the_alerting_service_leads():
    # The scan read web's and cart's series; the loudest moved 2 robust deviations, under
    # the threshold of a change: noise ranks by chance, the alert fired on web.
    noise = [
        SeriesScore("cpu", {"service": "cart"}, 2.0, 1, INCIDENT.timestamp(), 1.0, 1.1),
        SeriesScore("cpu", {"service": "web"}, 0.5, 1, INCIDENT.timestamp(), 1.0, 1.02),
    ]

    ranked = rank_suspects(noise, {}, "service", ["web"], alerting_services=["web"])
    report, text = build_report(ranked, alerting_services={"web"}, unchecked=[])

    assert [s.service for s in ranked] == ["web", "cart"]
    assert (ranked[0].alert_score, ranked[1].alert_score) == (1.0, 0.0)
    assert ranked[0].score == pytest.approx(0.3 + 0.05)  # a change at 3 deviations, scaled
    assert ranked[0].evidence[0] == {"kind": "alert", "services": 1}
    assert report["root_cause"]["service"] == "web"
    assert "web, the alerting service itself. No service in scope changed clearly" in text
    assert "so the alert is the evidence left, and it fired here" in text
    assert any("Nothing the scan reads changed clearly" in step for step in report["next_steps"])
    assert "limits around when the alert fired;" in report["next_steps"][0]
    # Confidence is in what changed: web's 0.05 of the two's 0.25.
    assert report["confidence"] == pytest.approx(0.2)
    assert evidence_gist(ranked[0].evidence[0]) == "the alert fired here; nothing changed clearly"


def test_the_alert_is_no_evidence_where_something_changed_or_nothing_was_read():
    change = [SeriesScore("cpu", {"service": "cart"}, 3.0, 1, INCIDENT.timestamp(), 1.0, 1.3)]
    ranked = rank_suspects(change, {}, "service", ["web"], alerting_services=["web"])
    assert [(s.service, s.alert_score) for s in ranked] == [("cart", 0.0), ("web", 0.0)]
    # Where alerts fired on several services, each leads the noise.
    noise = [SeriesScore("cpu", {"service": "cart"}, 2.9, 1, INCIDENT.timestamp(), 1.0, 1.1)]
    both = rank_suspects(noise, {}, "service", alerting_services=["web", "api"])
    assert [(s.service, s.alert_score) for s in both] == [("api", 1), ("web", 1), ("cart", 0)]
    assert both[0].evidence == [{"kind": "alert", "services": 2}]
    assert "and on 1 more" in build_report(both, alerting_services={"web", "api"}, unchecked=[])[1]
    # A scan that read nothing (every store down) found nothing, not the alerting service.
    blind = rank_suspects([], {}, "service", ["web"], alerting_services=["web"])
    assert [(s.service, s.score) for s in blind] == [("web", 0.0)]
    report, _ = build_report(blind, alerting_services={"web"}, unchecked=["metrics (down)"])
    assert report["root_cause"] is None


def test_errors_that_began_after_the_alert_fired_count_a_tenth():
    # The alert fired a minute into the incident. cart's errors began before it; search's,
    # twice as many, only four minutes after it (the next fault, say): they did not cause
    # this alert.
    cart = [entry(0.5 + i / 10, "cart", f"ERROR payment gateway refused {i}") for i in range(6)]
    search = [entry(5 + i / 20, "search", f"ERROR index shard {i} down") for i in range(12)]
    incident = cart + search
    logs = score_logs([], incident, ("service",), *WINDOWS)
    fired = (INCIDENT + timedelta(minutes=1)).timestamp()

    as_of_the_alert = rank_suspects([], logs, "service", alert_start=fired)
    without_an_alert = rank_suspects([], logs, "service")

    assert logs["search"].onset == (INCIDENT + timedelta(minutes=5)).timestamp()
    assert logs["cart"].onset == (INCIDENT + timedelta(minutes=0.5)).timestamp()
    assert [s.service for s in as_of_the_alert] == ["cart", "search"]
    late = as_of_the_alert[1]
    assert late.log_score == pytest.approx(logs["search"].score / 10)
    assert late.evidence[0]["late"] is True
    assert as_of_the_alert[0].evidence[0]["late"] is False
    assert as_of_the_alert[0].onset == logs["cart"].onset
    assert [s.service for s in without_an_alert] == ["search", "cart"]


def test_a_change_several_services_share_is_split_among_them():
    # The node's CPU moved on the four pods it runs, by far the most; cart's own latency
    # moved less, but only in cart.
    node = [
        SeriesScore("node_busy", {"service": name}, 400.0, 1, INCIDENT.timestamp(), 0.1, 0.9)
        for name in ("web", "cart", "db", "queue")
    ]
    own = [SeriesScore("latency", {"service": "cart"}, 150.0, 1, INCIDENT.timestamp(), 1, 9)]

    suspects = rank_suspects(node + own, {}, "service")

    assert suspects[0].service == "cart"
    assert suspects[0].metric_score == 150.0
    assert {s.metric_score for s in suspects[1:]} == {100.0}  # 400 shared by four


def test_a_saturated_service_leads_though_others_moved_more_or_logged_errors():
    # cart's CPU held at its limit (a few hundred deviations: its idle baseline was noisy);
    # web's sparse latency moved a thousand, and orders logged a handful of errors above
    # nothing. The node both search pods run on saturated too: shared, it counts half each.
    at = INCIDENT.timestamp()
    metrics = [
        SeriesScore("cpu_ratio", {"service": "cart"}, 300.0, 1, at, 0.01, 1.0, saturated=0.999),
        SeriesScore("latency", {"service": "web"}, 1000.0, 1, at, 0.005, 24.0),
        SeriesScore("node_ratio", {"service": "search"}, 50.0, 1, at, 0.2, 0.9, saturated=0.9),
        SeriesScore("node_ratio", {"service": "ads"}, 50.0, 1, at, 0.2, 0.9, saturated=0.9),
    ]
    logs = score_logs([], [entry(1, "orders", "ERROR order not found")] * 7, ("service",), *WINDOWS)

    suspects = rank_suspects(metrics, logs, "service")
    by_service = {s.service: s for s in suspects}
    _, text = build_report(suspects, alerting_services={"web"}, unchecked=[])

    assert suspects[0].service == "cart"
    assert by_service["cart"].saturation_score == 1.0
    assert by_service["search"].saturation_score == by_service["ads"].saturation_score == 0.5
    assert by_service["web"].saturation_score == 0.0
    assert by_service["cart"].as_dict()["saturation_score"] == 1.0
    assert (
        "cpu_ratio{} held at 99% or more of its full scale, saturated (baseline median 1.0%)"
        in text
    )
    assert evidence_gist(by_service["cart"].evidence[0]) == "cpu_ratio up (300.0), saturated"
    assert "cart's cpu_ratio held at its ceiling: find what uses it" in text
    # Without the ceiling, the same deviations rank cart behind the errors and web.
    plain = [
        SeriesScore(m.metric, m.labels, m.score, 1, at, m.baseline_median, 1.0) for m in metrics
    ]
    assert rank_suspects(plain, logs, "service")[0].service == "orders"


def test_the_signals_only_report_names_the_cause_and_what_next():
    metrics = [
        SeriesScore("busy", {"service": "db"}, 40.0, 1, INCIDENT.timestamp(), 50.0, 90.0),
        SeriesScore("busy", {"service": "web"}, 4.0, 1, INCIDENT.timestamp() + 60, 40.0, 44.0),
        SeriesScore("p50", {"service": "web"}, 1.8, 1, None, 0.005, 0.06, returns=4),
    ]
    suspects = rank_suspects(metrics, {}, "service")

    report, text = build_report(suspects, alerting_services={"web"}, unchecked=["logs (x)"])

    assert report["root_cause"]["service"] == "db"
    assert report["confidence"] == pytest.approx(40 / 44, abs=0.01)
    assert report["summary"].startswith("Most likely root cause: db (the alert fired on web).")
    assert "busy{} went up (50 -> 90, 40 robust deviations) from 04:00:00 UTC" in text
    assert (
        "p50{} went up (0.005 -> 0.06, 2 robust deviations; a level it reached 4 separate "
        "times in the baseline)" in text
    )
    assert evidence_gist(suspects[1].evidence[1]) == "p50 up (1.8), a usual level"
    assert [s["service"] for s in report["suspects"]] == ["db", "web"]
    assert "Not checked: logs (x)" in report["next_steps"]
    assert "Confirm that web depends on db" in text
    assert "ceiling" not in text  # nothing saturated


def test_without_an_alerting_service_the_report_names_none():
    # An alert that names no service, or a question: nothing to tell the cause apart from.
    suspects = rank_suspects(
        [SeriesScore("busy", {"service": "db"}, 40.0, 1, INCIDENT.timestamp(), 50.0, 90.0)],
        {},
        "service",
    )

    report, text = build_report(suspects, alerting_services=set(), unchecked=[])

    assert report["summary"].startswith("Most likely root cause: db. ")
    assert "fired on" not in text
    assert "Confirm that" not in text


def test_the_report_quotes_the_template_and_the_step_but_not_in_its_summary():
    # orders-db fails with a new error (and its usual one surged); cart stops answering
    # a step of its requests. The list of suspects quotes both, with the secret in the
    # log line redacted; the summary, which briefs the agents, quotes no log words.
    baseline = [entry(-30 + i, "orders-db", f"WARN slow query {i} ms") for i in range(3)]
    incident = [
        entry(0.5 + i / 10, "orders-db", f"FATAL auth failed for `db` password=hunter2 try {i}")
        for i in range(6)
    ]
    incident += [entry(1 + i / 10, "orders-db", f"WARN slow query {i} ms") for i in range(9)]
    logs = score_logs(baseline, incident, ("service",), *WINDOWS)
    paths = ServicePaths(
        "cart",
        incident_diverged=40,
        baseline_diverged=1,
        incident_requests=100,
        baseline_requests=100,
        missing=Counter({"Reserved items for cart <HEX>": 30, "Priced cart <NUM>": 10}),
        score=20.0,
        onset=INCIDENT.timestamp(),
    )
    suspects = rank_suspects([], logs, "service", service_paths={"cart": paths})

    report, text = build_report(suspects, alerting_services={"web"}, unchecked=[])

    by_service = {s["service"]: s for s in report["suspects"]}
    db_line = next(line for line in text.splitlines() if "**orders-db**" in line)
    cart_line = next(line for line in text.splitlines() if "**cart**" in line)
    assert by_service["orders-db"]["example"]["new"] is True
    assert db_line.endswith("`` (6 lines, new to the incident).")
    assert "Most often: `` auth failed for `db` password=[REDACTED" in db_line
    assert "hunter2" not in text
    assert cart_line.endswith(
        "The step most often no longer reached: `Reserved items for cart <HEX>` (30 requests)."
    )
    for words in ("auth failed", "Reserved items", "Most often"):
        assert words not in report["summary"]
        assert all(words not in s["why"] for s in report["suspects"])


def test_no_evidence_gives_an_honest_empty_report():
    report, text = build_report([], alerting_services={"web"}, unchecked=[])
    assert report["root_cause"] is None and report["confidence"] == 0
    assert text.startswith("The signal scan found no service that changed clearly")
    assert report["summary"].endswith("in the incident window.")


def test_an_empty_report_says_up_front_what_it_could_not_check():
    # A scope that matched nothing is no evidence that nothing changed.
    unchecked = ['metrics: Prometheus has nothing with namespace="prod" between 09:00 and 10:05']
    report, text = build_report([], alerting_services={"web"}, unchecked=unchecked)
    assert report["summary"] == (
        "The signal scan found no service that changed clearly in the incident window, but it "
        "could not check everything: 1 gap under Next steps."
    )
    assert f"- Not checked: {unchecked[0]}" in text


@pytest.mark.django_db
def test_an_investigation_whose_backends_are_down_completes_saying_so(settings):
    settings.ROOTLINE_PROMETHEUS_URL = "http://127.0.0.1:9"  # nothing listens there
    settings.ROOTLINE_LOKI_URL = "http://127.0.0.1:9"
    investigation = make_investigation(
        make_alert(service="checkout"), as_of=T0 + timedelta(minutes=5)
    )

    runner.run(investigation.pk)

    investigation.refresh_from_db()
    assert investigation.status == "completed"
    steps = {s.tool: s for s in investigation.steps.all()}
    assert steps["scan_metrics"].status == "error"
    assert "127.0.0.1:9" in steps["scan_metrics"].error
    assert steps["scan_logs"].status == "error"
    unchecked = investigation.report["unchecked"]
    assert steps["scan_paths"].status == "error"
    assert [u.split(":")[0] for u in unchecked] == ["metrics", "logs", "request paths"]
    assert investigation.report["root_cause"] is None
    assert "Not checked: metrics" in investigation.report_text


@pytest.mark.django_db
def test_the_alert_start_is_when_the_first_alert_fired():
    later = make_alert("b" * 16, starts_at=T0 + timedelta(minutes=3))
    first = make_alert("a" * 16, starts_at=T0)

    # No metric store to ask when its condition began: startsAt, and no step.
    investigation = make_investigation(later, first)
    assert runner.alert_start(investigation, None) == T0
    assert not investigation.steps.exists()
    assert runner.alert_start(make_investigation(question="why?"), None) is None


def test_the_calls_between_services_come_from_labels_that_name_both_ends():
    series = [
        {"__name__": "cpu", "service": "web"},
        {"__name__": "cpu", "service": "cart"},
        {"__name__": "cpu", "service": "db"},
        # A service mesh's, a tracing service graph's, a src_/dst_ pair.
        {"__name__": "a", "source_service": "web", "destination_service": "cart"},
        {"__name__": "b", "client": "cart", "server": "db"},
        {"__name__": "c", "src_app": "web", "dst_app": "db", "resource": "web"},
        # Not calls: an end that is no service in scope, a call to itself, no pair.
        {"__name__": "a", "source_service": "web", "destination_service": "payments-api"},
        {"__name__": "b", "client": "db", "server": "db"},
        {"__name__": "d", "source": "web", "target": "db"},
    ]

    assert calls_between(series, "service") == {("web", "cart"), ("cart", "db"), ("web", "db")}


def starved_checkout(calls):
    """Suspects where email did less work (its only changes went down) and checkout, which
    calls it, changed two minutes before; the alert fired on web."""
    start = INCIDENT.timestamp()
    metrics = [
        SeriesScore("writes", {"service": "email"}, 3.8, -1, start + 120, 72.0, 0.0),
        SeriesScore("cpu", {"service": "email"}, 2.0, -1, None, 0.1, 0.04),
        SeriesScore("memory", {"service": "checkout"}, 3.4, 1, start, 38.0, 53.0),
    ]
    return rank_suspects(metrics, {}, "service", alerting_services=["web"], calls=calls)


def test_a_suspect_that_did_less_work_points_to_its_callers():
    calls = {("checkout", "email"), ("web", "checkout"), ("web", "cart")}
    suspects = starved_checkout(calls)

    assert [(s.service, s.callers) for s in suspects[:2]] == [
        ("email", ["checkout"]),
        ("checkout", ["web"]),
    ]
    assert suspects[0].as_dict()["callers"] == ["checkout"]
    report, text = build_report(suspects, alerting_services={"web"}, unchecked=[])
    assert report["root_cause"]["service"] == "email"
    assert (
        "email did less work (every change found in it went down), as a service does when "
        "its callers stop calling it or call it less. It is called by checkout (suspect 2, "
        "changed from 04:00:00 UTC, before it)" in text
    )
    assert "web calls email through checkout (web -> checkout -> email)" in text
    assert "Confirm that web depends on" not in text


def test_without_calls_or_with_a_change_up_there_is_no_pointer_to_callers():
    _, text = build_report(starved_checkout(set()), alerting_services={"web"}, unchecked=[])
    assert "did less work" not in text
    assert "Confirm that web depends on email" in text

    start = INCIDENT.timestamp()
    metrics = [SeriesScore("writes", {"service": "email"}, 3.8, 1, start, 72.0, 200.0)]
    suspects = rank_suspects(metrics, {}, "service", calls={("checkout", "email")})
    _, text = build_report(suspects, alerting_services={"web"}, unchecked=[])
    assert suspects[0].callers == ["checkout"]
    assert "did less work" not in text
    assert "checkout (not among the suspects)" not in text
