"""The metric scan on synthetic series served by a real Prometheus (backfilled by promtool).

Six services in one namespace, one gauge each plus a counter, an hour of baseline and an
incident that begins at ONSET: `db` steps up (the cause), `api` spikes once (noise),
`cache` drifts slowly, `web` is noise only, `queue` has a gap over the onset, and `batch`
exists only after the alert. `db` also uses its CPU limit up (a `_ratio`, from 2% to 95%),
and counts its errors (a counter). `db` and `web` count their requests per route (three and
two series): `db`'s first route serves ten times more from the onset.
"""

import asyncio
import itertools
import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from loki_stub import LogStore
from loki_stub import serve as serve_loki

from investigations import runner
from investigations.runner import _describe_metric_scan as describe
from investigations.signals import build_report, metrics, rank_suspects, scan_metrics
from investigations.signals.metrics import (
    APPEARED_SCORE,
    BRIEF_WEIGHT,
    ROUTINE_WEIGHT,
    SATURATION_LEVEL,
    as_rates,
    is_cumulative,
    resolution,
    score_series,
)
from investigations.signals.report import evidence_gist
from investigations.telemetry import BackendConfig, PrometheusClient
from tests.factories import make_alert, make_investigation
from tests.realprometheus import prometheus_fixture, running_prometheus

STEP = 30
START = (datetime.now(UTC) - timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)
ONSET = START + timedelta(minutes=60)
ALERT = ONSET + timedelta(minutes=1)
NOW = ALERT + timedelta(minutes=5)
BASELINE = (ONSET - timedelta(minutes=2) - timedelta(hours=1), ONSET - timedelta(minutes=2))
INCIDENT = (ONSET - timedelta(minutes=2), NOW)


def value(service, t, rng):
    minutes = (t - START).total_seconds() / 60
    noise = rng.gauss(0, 1)
    if service == "db":
        return 50 + noise + (40 if t >= ONSET else 0)
    if service == "api":
        return 20 + noise + (60 if t == ONSET + timedelta(minutes=2) else 0)
    if service == "cache":
        return 30 + noise + 0.02 * minutes
    if service == "queue":
        return (
            None if ONSET - timedelta(minutes=3) <= t < ONSET + timedelta(minutes=3) else 10 + noise
        )
    if service == "batch":
        return 5 + noise if t >= ONSET else None
    return 40 + noise  # web


def openmetrics():
    rng = random.Random(7)
    lines = ["# HELP busy Work in progress.", "# TYPE busy gauge"]
    for service in ("db", "api", "cache", "web", "queue", "batch"):
        t = START
        while t < NOW + timedelta(minutes=30):
            v = value(service, t, rng)
            if v is not None:
                lines.append(
                    f'busy{{namespace="shop",service="{service}"}} {v:.3f} {t.timestamp():.0f}'
                )
            t += timedelta(seconds=15)
    lines += [
        "# HELP cpu_limit_used_ratio CPU used, of the limit.",
        "# TYPE cpu_limit_used_ratio gauge",
    ]
    t = START
    while t < NOW + timedelta(minutes=30):
        used = 0.95 if t >= ONSET else 0.02 + 0.01 * rng.random()
        lines.append(
            f'cpu_limit_used_ratio{{namespace="shop",service="db"}} {used:.4f} {t.timestamp():.0f}'
        )
        t += timedelta(seconds=15)
    lines += ["# HELP errors Errors.", "# TYPE errors counter"]
    total, t = 0, START
    while t < NOW + timedelta(minutes=30):
        total += 5 if t >= ONSET else 0.1
        lines.append(f'errors_total{{namespace="shop",service="db"}} {total} {t.timestamp():.0f}')
        t += timedelta(seconds=15)
    lines += ["# HELP requests Requests served.", "# TYPE requests counter"]
    for service, route in (("db", "a"), ("db", "b"), ("db", "c"), ("web", "a"), ("web", "b")):
        total, t = 0, START
        labels = f'namespace="shop",service="{service}",route="{route}"'
        while t < NOW + timedelta(minutes=30):
            total += 50 if (service, route) == ("db", "a") and t >= ONSET else 5
            lines.append(f"requests_total{{{labels}}} {total} {t.timestamp():.0f}")
            t += timedelta(seconds=15)
    return "\n".join([*lines, "# EOF", ""])


prometheus_url = prometheus_fixture(openmetrics)


def run_scan(url, baseline, incident, workload_labels=()):
    """The metric scan of namespace `shop` on the Prometheus at `url`, as of the incident's
    end, services named by `service`."""

    async def main():
        config = BackendConfig(url=url, name="Prometheus")
        async with PrometheusClient(config) as prometheus:
            return await scan_metrics(
                prometheus,
                '{namespace="shop"}',
                baseline,
                incident,
                now=incident[1],
                service_label="service",
                workload_labels=workload_labels,
            )

    return asyncio.run(main())


@pytest.fixture(scope="module")
def scan(prometheus_url):
    return run_scan(prometheus_url, BASELINE, INCIDENT)


def by_service(scan, metric="busy"):
    return {s.labels["service"]: s for s in scan.scores if s.metric == metric}


@pytest.mark.slow
def test_a_step_change_is_found_with_its_onset(scan):
    db = by_service(scan)["db"]
    assert db.score > 10
    assert db.direction == 1
    assert ONSET.timestamp() <= db.onset <= ONSET.timestamp() + 2 * STEP


@pytest.mark.slow
def test_noise_a_single_spike_and_a_slow_drift_stay_quiet(scan):
    scores = by_service(scan)
    assert scores["web"].score < 4
    assert scores["api"].score < 4  # one sample is not a change
    assert scores["cache"].score < scores["db"].score / 4


@pytest.mark.slow
def test_missing_data_and_a_series_born_after_the_alert(scan):
    scores = by_service(scan)
    assert scores["queue"].score < 4  # the gap is not a change
    batch = scores["batch"]
    assert batch.baseline_median is None and batch.score > 4
    assert batch.onset >= ONSET.timestamp()


@pytest.mark.slow
def test_a_counter_is_scanned_as_its_rate(scan):
    [errors] = [s for s in scan.scores if s.metric == "errors_total"]
    assert errors.counter
    assert errors.score > 20
    assert errors.incident_peak == pytest.approx(5 / 15, rel=0.1)


@pytest.mark.slow
def test_a_baseline_of_days_is_read_at_a_coarser_step_not_refused(prometheus_url, scan):
    # Four days and an hour at 30 s would be 11,654 points a series: more than
    # Prometheus answers (11,000). The scan reads every series at 60 s instead.
    days = (BASELINE[0] - timedelta(days=4), BASELINE[1])

    long = run_scan(prometheus_url, days, INCIDENT)

    assert scan.step_seconds == 30 and long.step_seconds == 60
    assert long.errors == [] and long.series_found == scan.series_found
    db = by_service(long)["db"]
    assert db.score > 10 and db.direction == 1
    assert rank_suspects(long.scores, {}, "service")[0].service == "db"
    # The timeline says so; the usual step goes unsaid.
    assert "metrics scanned at a 60 s step; saturated:" in describe(long, "service")[1]
    assert " step" not in describe(scan, "service")[1]


@pytest.mark.slow
def test_the_series_cap_holds_though_the_store_ignores_its_limit(prometheus_url, monkeypatch):
    # The scan reads the metrics that fit even as one series per service (errors_total
    # and cpu_limit_used_ratio, one series each) and names those left out (busy: six
    # services; requests_total: two). Prometheus 2.42 answers the series API's limit=5
    # with all 13 series: a listing that reached its limit says the scan was capped.
    monkeypatch.setattr(metrics, "MAX_SERIES", 3)
    monkeypatch.setattr(metrics, "MAX_SERIES_LISTED", 5)

    capped = run_scan(prometheus_url, BASELINE, INCIDENT)

    assert capped.series_found == 13 and capped.truncated
    assert capped.left_out == ["busy", "requests_total"] and capped.metrics == 4
    assert {s.metric for s in capped.scores} == {"errors_total", "cpu_limit_used_ratio"}
    assert (
        "13 series of 4 metrics scanned (capped) (2 left out, over the cap)"
        in describe(capped, "service")[1]
    )


@pytest.mark.slow
def test_over_the_cap_a_metric_is_read_as_one_series_per_service(prometheus_url, monkeypatch):
    # Ten series fit: every metric as one series per service (busy 6, requests_total 2,
    # the others 1) takes all ten, so requests_total's five series are read as the sum of
    # each service's rates, and db's still shows its first route's surge.
    monkeypatch.setattr(metrics, "MAX_SERIES", 10)

    capped = run_scan(prometheus_url, BASELINE, INCIDENT)

    assert capped.aggregated == ["requests_total"] and capped.left_out == []
    assert not capped.truncated  # all 13 were listed
    requests = {s.labels["service"]: s for s in capped.scores if s.metric == "requests_total"}
    assert set(requests) == {"db", "web"}
    assert all(set(s.labels) == {"service"} for s in requests.values())
    db, web = requests["db"], requests["web"]
    assert db.aggregated == web.aggregated == "sum" and db.counter
    # 5 per 15 s on each of three routes, then 50 on one: 1 -> 4 per second.
    assert db.baseline_median == pytest.approx(1.0) and db.incident_peak == pytest.approx(4.0)
    assert db.score > 10 and db.direction == 1 and web.score < 1
    assert {s.aggregated for s in capped.scores if s.metric != "requests_total"} == {""}
    suspects = rank_suspects(capped.scores, {}, "service")
    assert suspects[0].service == "db"
    assert "(1 read per service, over the cap)" in describe(capped, "service")[1]
    report, text = build_report(suspects, alerting_services=["db"], unchecked=[])
    assert "requests_total (the sum of the service's series, as rates) went up" in text
    evidence = {e["metric"]: e for e in report["evidence"]}["requests_total"]
    assert evidence["aggregated"] == "sum"
    assert evidence_gist(evidence).endswith(", all its series")


@pytest.mark.slow
def test_a_ratio_read_per_service_is_its_highest_series(tmp_path, monkeypatch):
    # Two services, each a container and its sidecar, each using a share of its CPU limit.
    # From the onset db's container holds 95% while its sidecar idles at 5%: read as one
    # series per service (the cap is two series), db is saturated, not at 50%.
    lines = ["# HELP limit_used_ratio Share of the limit used.", "# TYPE limit_used_ratio gauge"]
    for service, container in itertools.product(("db", "web"), ("main", "sidecar")):
        labels = f'namespace="shop",service="{service}",container="{container}"'
        t = START
        while t < NOW + timedelta(minutes=5):
            used = 0.95 if (service, container) == ("db", "main") and t >= ONSET else 0.05
            lines.append(f"limit_used_ratio{{{labels}}} {used} {t.timestamp():.0f}")
            t += timedelta(seconds=15)
    monkeypatch.setattr(metrics, "MAX_SERIES", 2)

    with running_prometheus("\n".join([*lines, "# EOF", ""]), tmp_path) as url:
        scan = run_scan(url, BASELINE, INCIDENT)

    assert scan.aggregated == ["limit_used_ratio"]
    used = by_service(scan, "limit_used_ratio")
    assert used["db"].aggregated == used["web"].aggregated == "max"
    assert used["db"].saturated == pytest.approx(0.95) and used["web"].saturated is None
    _, text = build_report(
        rank_suspects(scan.scores, {}, "service"), alerting_services=[], unchecked=[]
    )
    assert "limit_used_ratio (the highest of the service's series) held at 95%" in text


def test_what_is_read_and_how_within_the_cap():
    series = [{"__name__": "bucket", "svc": f"s{n % 2}", "le": str(n)} for n in range(50)]
    series += [{"__name__": "cpu", "svc": f"s{n}"} for n in range(5)]
    series += [{"__name__": "mem", "svc": "s0", "pod": str(n)} for n in range(5)]
    series += [{"__name__": "up", "svc": "s0"}, {"job": "no name"}]

    def plan(cap):
        return metrics.plan_reads(series, cap, "svc")

    # Per service: bucket 2, cpu 5, mem 1, up 1 (9 in all); one by one: 50, 5, 5, 1.
    assert plan(100) == (["bucket", "cpu", "mem", "up"], [], [])
    assert plan(61) == (["bucket", "cpu", "mem", "up"], [], [])
    # The metrics that cost fewest series more go one by one first: cpu and up cost none.
    assert plan(60) == (["cpu", "mem", "up"], ["bucket"], [])
    assert plan(13) == (["cpu", "mem", "up"], ["bucket"], [])
    assert plan(12) == (["cpu", "up"], ["bucket", "mem"], [])
    # Under the cost of every metric per service, the cheapest fit and the rest are left
    # out: bucket costs 2 per service, cpu 5.
    assert plan(8) == (["mem", "up"], ["bucket"], ["cpu"])
    assert plan(1) == (["up"], [], ["bucket", "cpu", "mem"])


@pytest.mark.slow
def test_the_cause_ranks_first(scan):
    suspects = rank_suspects(scan.scores, {}, "service")
    assert suspects[0].service == "db"
    assert suspects[0].evidence[0]["metric"] == "cpu_limit_used_ratio"  # saturated
    assert {e["metric"] for e in suspects[0].evidence[1:]} == {
        "busy",
        "errors_total",
        "requests_total",
    }
    assert scan.series_found == 13 and scan.metrics == 4


@pytest.mark.slow
def test_a_ratio_at_its_ceiling_is_read_as_saturation(scan):
    [used] = [s for s in scan.scores if s.metric == "cpu_limit_used_ratio"]
    assert used.saturated == pytest.approx(0.95)
    assert used.baseline_median == pytest.approx(0.025, abs=0.005)
    # Not ratios: a gauge that went from 50 to 90, a rate of a third per second.
    assert {s.metric for s in scan.scores if s.saturated is not None} == {"cpu_limit_used_ratio"}


def test_scores_on_plain_points():
    base = [(t, 10.0 + n % 3) for n, t in enumerate(range(0, 600, 30))]
    step = base + [(t, 30.0) for t in range(600, 900, 30)]
    scored = score_series(step, (0, 600), (600, 900), metric="m", labels={"a": "b"})
    assert scored.score > 10 and scored.direction == 1 and scored.onset == 600
    assert scored.baseline_median == 11 and scored.incident_peak == 30
    assert scored.returns == 0 and scored.metric == "m" and scored.labels == {"a": "b"}
    # Nothing in the incident: a steady series stopped, a sparse one just said nothing.
    silent = score_series(base, (0, 600), (600, 900))
    assert (silent.score, silent.stopped) == (APPEARED_SCORE, 600)
    sparse = [(t, v) for t, v in base if t < 120 or t >= 450]
    assert score_series(sparse, (0, 600), (600, 900)).score == 0
    flat = [(t, 0.0) for t in range(0, 600, 30)] + [(t, 0.0) for t in range(600, 900, 30)]
    assert score_series(flat, (0, 600), (600, 900)).score == 0
    with_nan = [*step, (930, math.nan)]
    assert score_series(with_nan, (0, 600), (600, 960)).score == scored.score


def test_a_change_is_told_by_its_own_side_not_by_a_swing_the_other_way():
    # A callee's latency: one slow call as the fault began, then it fell and stayed low
    # (no traffic reached it). The change is down; the evidence must not say "went down
    # (0.01 -> 0.04)" nor date it from the spike.
    base = [(t, 0.010 + 0.001 * (n % 3)) for n, t in enumerate(range(0, 3600, 60))]
    incident = [(3600, 0.04), (3660, 0.001), (3720, 0.001), (3780, 0.001), (3840, 0.001)]

    scored = score_series(base + incident, (0, 3600), (3600, 3900))
    evidence = scored.as_evidence("service")

    assert scored.score > 3 and evidence["direction"] == "down"
    assert (evidence["baseline"], evidence["incident"], evidence["onset"]) == (0.011, 0.001, 3660)


def test_counters_are_known_by_metadata_or_their_openmetrics_name():
    assert is_cumulative("http_requests_total", {})
    assert is_cumulative("latency_seconds_bucket", {})
    assert not is_cumulative("memory_bytes", {})
    assert not is_cumulative("odd_total", {"odd_total": [{"type": "gauge"}]})
    assert is_cumulative("requests", {"requests": [{"type": "counter"}]})
    assert as_rates([(0, 10), (30, 40), (60, 5)]) == [(30, 1.0), (60, 5 / 30)]  # a reset


def test_spikes_apart_are_not_a_change_but_a_lasting_step_is():
    baseline = [(t, 5.0 if n % 8 else 50.0) for n, t in enumerate(range(0, 1200, 30))]
    spiky = [(t, 50.0 if n % 2 else 5.0) for n, t in enumerate(range(1200, 1500, 30))]
    step = [(t, 80.0) for t in range(1200, 1500, 30)]

    assert score_series(baseline + spiky, (0, 1200), (1200, 1500)).score == 0
    # Beyond the spikes' own level, by 10 spreads (the mean absolute deviation's: the MAD
    # of a baseline that is 5 in seven points of eight is 0).
    assert score_series(baseline + step, (0, 1200), (1200, 1500)).score > 10


def test_a_level_the_baseline_keeps_returning_to_counts_a_tenth(monkeypatch):
    # One sample a minute: a call's latency sits at 4-5 ms and now and then jumps to
    # 60 ms (two levels, as a cache miss makes); then it holds 60 ms, or a new 300 ms.
    def baseline(jumps):
        return [
            (t, 0.06 if n in jumps else 0.004 + 0.0005 * (n % 3))
            for n, t in enumerate(range(0, 3600, 60))
        ]

    at_60 = [(t, 0.06) for t in range(3600, 3900, 60)]
    at_300 = [(t, 0.3) for t in range(3600, 3900, 60)]
    windows = (0, 3600), (3600, 3900)
    three_times, twice = baseline({9, 10, 30, 51}), baseline({9, 10, 30})
    cases = [(three_times, at_60), (three_times, at_300), (twice, at_60)]

    scored = [score_series(b + level, *windows).score for b, level in cases]
    said = [score_series(b + level, *windows).returns for b, level in cases]
    monkeypatch.setattr(metrics, "ROUTINE_RETURNS", math.inf)
    unruled = [score_series(b + level, *windows).score for b, level in cases]

    assert min(unruled) > 50
    assert scored[0] == pytest.approx(ROUTINE_WEIGHT * unruled[0])
    # A level beyond any it reached, or one reached in two stretches only (an earlier
    # incident: the same fault injected before), is a change in full.
    assert scored[1:] == unruled[1:]
    assert said == [3, 0, 0]  # how often it came back, said only where it counted


def test_a_change_must_hold_two_minutes_to_count_in_full():
    # One sample a minute. The baseline is flat; then two samples in a row jump (a
    # sparse percentile, one slow call) or the series steps up and stays.
    baseline = [(t, 1.0 + 0.1 * (n % 3)) for n, t in enumerate(range(0, 3600, 60))]
    pair = [(t, 5.0 if t in (3660, 3720) else 1.1) for t in range(3600, 4020, 60)]
    held = [(t, 5.0 if 3660 <= t <= 3780 else 1.1) for t in range(3600, 4020, 60)]
    windows = (0, 3600), (3600, 4020)

    brief = score_series(baseline + pair, *windows).score
    lasting = score_series(baseline + held, *windows).score

    assert lasting > 20
    assert brief == pytest.approx(lasting * BRIEF_WEIGHT)  # weak evidence, not none
    # An incident window still shorter than two minutes must agree in all its points.
    assert score_series(baseline + held[1:3], (0, 3600), (3600, 3720)).score == lasting


def test_a_step_of_the_series_own_resolution_is_not_a_change():
    # An idle service: requests counted per minute, mostly none, now and then one or two.
    idle = [
        (t, (1 / 60) * (n % 7 == 0) + (1 / 60) * (n % 11 == 0))
        for n, t in enumerate(range(0, 3600, 60))
    ]
    one_more = [(t, 1 / 60) for t in range(3600, 3900, 60)]
    busy = [(t, 30 / 60) for t in range(3600, 3900, 60)]

    assert score_series(idle + one_more, (0, 3600), (3600, 3900)).score <= 1
    assert score_series(idle + busy, (0, 3600), (3600, 3900)).score >= 20
    assert resolution([0.0, 0.5, 1.0, 1.0]) == 0.5
    assert resolution([5.0, 50.0, 5.0]) == 0  # two levels, not a grid


def test_a_count_that_is_mostly_zero_has_a_spread():
    # One sample a minute: a gauge counting rare events, 0 in all but four minutes of the
    # hour, where it was 1 (its MAD is 0, and two values are no resolution). Two minutes
    # at 2 are a blip; a quarter hour at 6 is a change.
    rare = [(t, 1.0 if n in (7, 22, 38, 51) else 0.0) for n, t in enumerate(range(0, 3600, 60))]
    blip = [(t, 2.0 if t in (3660, 3720) else 0.0) for t in range(3600, 3900, 60)]
    burst = [(t, 6.0) for t in range(3600, 3900, 60)]
    windows = (0, 3600), (3600, 3900)

    assert score_series(rare + blip, *windows).score < metrics.CHANGE_SIGMAS
    assert 20 < score_series(rare + burst, *windows).score < 100
    # The spread is 1.2533 x the mean absolute deviation from the median (0): 4/60.
    assert score_series(rare + burst, *windows).score == pytest.approx(6 / (1.2533 * 4 / 60))


def test_a_series_flat_at_zero_tops_out_near_a_thousand():
    # Nothing for an hour (errors of a quiet service), then one error a minute: two
    # samples of it, or five minutes. Its only scale is a share of the incident's largest
    # value, whichever way it came.
    zero = [(t, 0.0) for t in range(0, 3600, 60)]
    blip = [(t, 1 / 60 if t in (3660, 3720) else 0.0) for t in range(3600, 3900, 60)]
    held = [(t, 1 / 60) for t in range(3600, 3900, 60)]
    windows = (0, 3600), (3600, 3900)

    lasting = score_series(zero + held, *windows).score
    assert lasting == pytest.approx(1 / metrics.INCIDENT_RELATIVE_SCALE)
    assert score_series(zero + blip, *windows).score == pytest.approx(BRIEF_WEIGHT * lasting)


def test_a_gauge_that_leaves_its_only_value_for_another_changed_state(monkeypatch):
    # One sample a minute. A replica count held at 3 for the hour drops to 2; a process'
    # start time moves by the hour the process ran before it restarted.
    windows = (0, 3600), (3600, 3900)
    start = 1_796_000_000.0

    def scored(before, *incident):
        points = [(t, before) for t in range(0, 3600, 60)]
        return score_series(
            points + list(zip(range(3600, 3900, 60), incident, strict=True)),
            *windows,
            metric="m",
            labels={"service": "api", "pod": "api-1"},
        )

    replicas = scored(3.0, 3.0, 2.0, 2.0, 2.0, 2.0)
    restart = scored(start, start, start + 3600, start + 3600, start + 3600, start + 3600)
    for state, direction, now in ((replicas, -1, 2.0), (restart, 1, start + 3600)):
        assert state.left_constant and state.score == APPEARED_SCORE
        assert (state.direction, state.onset, state.incident_peak) == (direction, 3660, now)
    # Not a new state: a minute at another value, a value that keeps moving, a series
    # that was not held at one value, and one that moved more than a state change counts.
    assert not scored(3.0, 3.0, 2.0, 3.0, 3.0, 3.0).left_constant
    assert not scored(20.5, 20.5, 20.55, 20.6, 20.65, 20.7).left_constant
    noisy = score_series(
        [(t, 3.0 + (n % 2)) for n, t in enumerate(range(0, 3600, 60))]
        + [(t, 2.0) for t in range(3600, 3900, 60)],
        *windows,
    )
    assert not noisy.left_constant
    from_zero = scored(0.0, 0.0, 5.0, 5.0, 5.0, 5.0)
    assert not from_zero.left_constant and from_zero.score > APPEARED_SCORE

    ranked = rank_suspects([replicas], {}, "service", services_in_scope=["web"])
    suspect = ranked[0]
    assert suspect.service == "api"
    item = suspect.evidence[0]
    assert item["left_constant"] and evidence_gist(item) == "m down (10.0), off its only value"
    report, _ = build_report([suspect], alerting_services=["web"], unchecked=[])
    assert (
        "m{pod=api-1} went down from 3, its only value through the baseline, to 2 (-1)"
        in report["summary"]
    )
    # Read by their robust deviations alone, neither is a change.
    monkeypatch.setattr(metrics, "CONSTANT_POINTS", math.inf)
    assert scored(3.0, 3.0, 2.0, 2.0, 2.0, 2.0).score < APPEARED_SCORE
    assert scored(start, start, *[start + 3600] * 4).score < 1


def test_a_ratio_held_at_its_ceiling_is_saturation():
    # One sample a minute. A container's CPU, as a share of its limit, idles at 0.3-0.9%
    # (its noise makes the jump to its limit "only" a few hundred deviations) and then
    # holds 82-90% for three minutes: throttled. The same values under a name that is not
    # a ratio, a brief touch, a lower level, a baseline that already sat that high, or one
    # just under the line, are not saturation.
    baseline = [(t, 0.003 + 0.003 * (n % 3)) for n, t in enumerate(range(0, 3600, 60))]
    throttled = [(t, 0.0) for t in range(3600, 3720, 60)]
    throttled += [
        (t, v) for t, v in zip(range(3720, 3960, 60), (0.9, 0.82, 0.85, 0.76), strict=True)
    ]
    windows = (0, 3600), (3600, 4020)

    def saturated(points, metric="container_cpu_usage_ratio", base=baseline):
        return score_series(base + points, *windows, metric=metric).saturated

    busy = [(t, 0.85 + 0.01 * (n % 3)) for n, t in enumerate(range(0, 3600, 60))]

    assert saturated(throttled) == 0.82  # held for two minutes (three samples)
    assert saturated(throttled, metric="cpu_usage_seconds") is None
    # The same as a percent (OpenTelemetry's "%"), said as a share all the same.
    in_percent = [[(t, 100 * v) for t, v in points] for points in (baseline, throttled)]
    assert saturated(in_percent[1], "cpu_limit_used_percent", in_percent[0]) == 0.82
    assert saturated(in_percent[1], "cpu_limit_used", in_percent[0]) is None
    busy_percent = [(t, 100 * v) for t, v in busy]
    held_82 = [(t, 82.0) for t in range(3600, 4020, 60)]
    assert saturated(held_82, "used_percent", busy_percent) is None
    scored = score_series(
        in_percent[0] + in_percent[1],
        *windows,
        metric="cpu_limit_used_percent",
        labels={"service": "cart"},
    )
    _, text = build_report(
        rank_suspects([scored], {}, "service"), alerting_services=[], unchecked=[]
    )
    assert "cpu_limit_used_percent{} held at 82% or more of its full scale" in text
    assert "saturated (baseline median 0.6%)" in text
    assert saturated([(3720, 0.95), (3780, 0.1)]) is None
    assert saturated([(t, 0.7) for t in range(3600, 4020, 60)]) is None
    assert saturated([(t, 0.95) for t in range(3600, 4020, 60)], base=busy) is None
    # Just under the line, then just over it: not a change, so not saturation.
    near = [(t, 0.78 + 0.01 * (n % 2)) for n, t in enumerate(range(0, 3600, 60))]
    assert saturated([(t, 0.81) for t in range(3600, 4020, 60)], base=near) is None
    assert SATURATION_LEVEL == 0.8
    scored = score_series(
        baseline + throttled,
        *windows,
        metric="container_cpu_usage_ratio",
        labels={"service": "cart"},
    )
    output, text = describe(
        metrics.MetricScan(scores=[scored], series_found=1, metrics=1), "service"
    )
    assert output["saturated"][0]["saturated"] == 0.82
    assert "scanned; saturated: container_cpu_usage_ratio of cart (82%); most abnormal:" in text


BOUNDS = (0.05, 0.1, 0.25, 0.5, 1.0)


def histogram_openmetrics():
    """request_duration_seconds, a classic histogram of db's and web's requests on two
    routes each, 20 requests every 15 s: about 30 ms, and from ONSET about 350 ms on db's
    route a."""
    rng = random.Random(3)
    times, t = [], START
    while t < NOW + timedelta(minutes=5):
        times.append(t)
        t += timedelta(seconds=15)
    lines = [
        "# HELP request_duration_seconds Time to serve a request.",
        "# TYPE request_duration_seconds histogram",
    ]
    name = "request_duration_seconds"
    for service, route in itertools.product(("db", "web"), ("a", "b")):
        slow = (service, route) == ("db", "a")
        buckets, count, total, rows = [0] * (len(BOUNDS) + 1), 0, 0.0, []
        for t in times:
            for _ in range(20):
                latency = rng.lognormvariate(math.log(0.35 if slow and t >= ONSET else 0.03), 0.3)
                for n, bound in enumerate((*BOUNDS, math.inf)):
                    buckets[n] += latency <= bound
                count, total = count + 1, total + latency
            rows.append((t, list(buckets), count, total))
        labels = f'namespace="shop",service="{service}",route="{route}"'
        for n, bound in enumerate((*BOUNDS, "+Inf")):
            lines += [
                f'{name}_bucket{{{labels},le="{bound}"}} {b[n]} {t.timestamp():.0f}'
                for t, b, _, _ in rows
            ]
        lines += [
            f"request_duration_seconds_count{{{labels}}} {c} {t.timestamp():.0f}"
            for t, _, c, _ in rows
        ]
        lines += [
            f"request_duration_seconds_sum{{{labels}}} {s:.3f} {t.timestamp():.0f}"
            for t, _, _, s in rows
        ]
    return "\n".join([*lines, "# EOF", ""])


@pytest.fixture(scope="module")
def histogram_url(tmp_path_factory):
    with running_prometheus(histogram_openmetrics(), tmp_path_factory.mktemp("histogram")) as url:
        yield url


@pytest.mark.slow
def test_a_histogram_is_scored_as_its_quantile_not_bucket_by_bucket(histogram_url):
    scan = run_scan(histogram_url, BASELINE, INCIDENT)

    assert scan.series_found == 32 and scan.histograms == ["request_duration_seconds_bucket"]
    assert scan.aggregated == [] and scan.left_out == []
    quantiles = {
        (s.labels["service"], s.labels["route"]): s
        for s in scan.scores
        if s.metric == "request_duration_seconds_bucket"
    }
    assert set(quantiles) == {("db", "a"), ("db", "b"), ("web", "a"), ("web", "b")}
    assert all(
        "le" not in s.labels and s.quantile == 0.9 and not s.counter for s in quantiles.values()
    )
    slow = quantiles["db", "a"]
    # The p90s, 0.044 s and 0.51 s, interpolated in their buckets: (0, 0.05], (0.5, 1].
    assert 0.025 < slow.baseline_median < 0.05 and 0.5 < slow.incident_peak <= 1.0
    assert slow.score > 10 and slow.direction == 1
    assert ONSET.timestamp() <= slow.onset <= ONSET.timestamp() + 2 * STEP
    assert max(s.score for key, s in quantiles.items() if key != ("db", "a")) < 4
    suspects = rank_suspects(scan.scores, {}, "service")
    assert suspects[0].service == "db"
    report, text = build_report(suspects, alerting_services=["web"], unchecked=[])
    assert "p90 of request_duration_seconds_bucket{namespace=shop,route=a} went up (0.04" in text
    evidence = {e["metric"]: e for e in report["evidence"]}["request_duration_seconds_bucket"]
    assert evidence["quantile"] == 0.9
    assert evidence_gist(evidence).startswith("request_duration_seconds_bucket p90 up (")
    timeline = describe(scan, "service")[1]
    assert "32 series of 3 metrics scanned (1 histogram read as its p90)" in timeline
    assert "most abnormal: request_duration_seconds_bucket p90 of db (" in timeline


@pytest.mark.slow
def test_over_the_cap_a_histogram_is_the_quantile_of_all_the_service_s_requests(
    histogram_url, monkeypatch
):
    # Six fit: every metric as one series per service (32 series: 24 buckets, 4 counts, 4
    # sums). db's p90 over both routes (half its requests slow) lands in the slow ones'
    # buckets.
    monkeypatch.setattr(metrics, "MAX_SERIES", 6)

    scan = run_scan(histogram_url, BASELINE, INCIDENT)

    assert "request_duration_seconds_bucket" in scan.aggregated
    quantiles = by_service(scan, "request_duration_seconds_bucket")
    db, web = quantiles["db"], quantiles["web"]
    assert set(db.labels) == {"service"} and db.aggregated == "sum" and db.quantile == 0.9
    assert db.baseline_median < 0.05 and db.incident_peak > 0.25 and db.score > 10
    assert web.score < 4
    _, text = build_report(
        rank_suspects(scan.scores, {}, "service"), alerting_services=[], unchecked=[]
    )
    assert (
        "p90 of request_duration_seconds_bucket (all the service's series together) went up" in text
    )


def test_a_quantile_is_interpolated_in_its_bucket_as_prometheus_does():
    buckets = [(0.1, 10), (0.5, 30), (math.inf, 40)]
    assert metrics.bucket_quantile(0.5, buckets) == pytest.approx(0.3)  # 10 of 20 in (0.1, 0.5]
    assert metrics.bucket_quantile(0.1, buckets) == pytest.approx(0.04)  # from 0
    assert metrics.bucket_quantile(0.99, buckets) == 0.5  # in +Inf's: the highest bound
    assert metrics.bucket_quantile(0.5, reversed(buckets)) == pytest.approx(0.3)
    # A count that falls between buckets (a reset, a scrape between them) is made monotonic.
    assert metrics.bucket_quantile(0.5, [(0.1, 12), (0.5, 10), (math.inf, 20)]) == (
        pytest.approx(0.1 * 10 / 12)
    )
    assert math.isnan(metrics.bucket_quantile(0.5, [(0.1, 0), (math.inf, 0)]))  # no request
    assert math.isnan(metrics.bucket_quantile(0.5, [(0.1, 3), (0.5, 4)]))  # no +Inf


def test_a_histogram_is_a_quantile_per_step_of_its_buckets_rates():
    class Read:
        def __init__(self, labels, points):
            self.labels, self.points = labels, points

    def bucket(le, counts, route="a"):
        labels = {"__name__": "d_bucket", "route": route, "le": le}
        return Read(labels, [(30.0 * n, c) for n, c in enumerate(counts)])

    # Each step 10 requests; in the third, all slow (over 0.5 s). A counter reset between
    # the third and fourth sample counts from zero.
    matrix = [
        bucket("0.1", [0, 10, 20, 20, 10]),
        bucket("0.5", [0, 10, 20, 20, 10]),
        bucket("+Inf", [0, 10, 20, 30, 10]),
        bucket("+Inf", [0, 0, 0, 0, 0], route="b"),
    ]
    [(labels, points), (idle, nothing)] = metrics.quantile_series(matrix, 0.9)
    assert labels == {"__name__": "d_bucket", "route": "a"} and idle["route"] == "b"
    assert [t for t, _ in points] == [30.0, 60.0, 90.0, 120.0]
    assert [round(v, 3) for _, v in points] == [0.09, 0.09, 0.5, 0.09]
    assert all(math.isnan(v) for _, v in nothing)


def exporter_openmetrics():
    """db and web, two pods each, report `busy` with their own service label. An exporter
    found through the Service "kubelet" reports every pod's two containers' share of their
    CPU limit; another, with no service label, counts db-2's restarts; kube-state-metrics
    counts each deployment's available replicas. From ONSET db-1's main container holds
    95% of its limit, db-2 restarts every 15 s and db has one replica available of two."""
    pods = {"db": ("db-1", "db-2"), "web": ("web-1", "web-2")}
    times, t = [], START
    while t < NOW + timedelta(minutes=5):
        times.append(t)
        t += timedelta(seconds=15)
    lines = ["# HELP busy Work in progress.", "# TYPE busy gauge"]
    for service, pod in ((s, p) for s, ps in pods.items() for p in ps):
        labels = f'namespace="shop",service="{service}",pod="{pod}"'
        lines += [f"busy{{{labels}}} {40 + n % 3} {t.timestamp():.0f}" for n, t in enumerate(times)]
    lines += ["# HELP limit_used_ratio Share of the limit used.", "# TYPE limit_used_ratio gauge"]
    for pod, container in itertools.product(
        ("db-1", "db-2", "web-1", "web-2"), ("main", "sidecar")
    ):
        labels = f'namespace="shop",service="kubelet",pod="{pod}",container="{container}"'
        lines += [
            f"limit_used_ratio{{{labels}}} "
            f"{0.95 if (pod, container) == ('db-1', 'main') and t >= ONSET else 0.05 + n % 2 / 100}"
            f" {t.timestamp():.0f}"
            for n, t in enumerate(times)
        ]
    lines += ["# HELP restarts Container restarts.", "# TYPE restarts counter"]
    restarts = 0
    for t in times:
        restarts += t >= ONSET
        lines.append(
            f'restarts_total{{namespace="shop",pod="db-2"}} {restarts} {t.timestamp():.0f}'
        )
    lines += ["# HELP available Replicas available.", "# TYPE available gauge"]
    for deployment, t in itertools.product(pods, times):
        labels = f'namespace="shop",service="kube-state-metrics",deployment="{deployment}"'
        value = 1 if deployment == "db" and t >= ONSET else 2
        lines.append(f"available{{{labels}}} {value} {t.timestamp():.0f}")
    return "\n".join([*lines, "# EOF", ""])


def test_a_pod_belongs_to_the_service_whose_series_cover_fewest_pods():
    series = [
        {"__name__": "busy", "service": "db", "pod": "db-1"},
        {"__name__": "cpu", "service": "kubelet", "pod": "db-1"},
        {"__name__": "cpu", "service": "kubelet", "pod": "web-1"},
        {"__name__": "busy", "service": "web", "pod": "web-1"},
        {"__name__": "busy", "service": "api", "pod": "shared"},  # a tie: no one's
        {"__name__": "busy", "service": "batch", "pod": "shared"},
        {"__name__": "up", "service": "db"},
    ]
    owners = metrics.pod_owners(series, "service", ["pod"])
    assert owners == {("pod", "db-1"): "db", ("pod", "web-1"): "web"}
    assert metrics.credit(series[1], owners, "service", ["pod"])["service"] == "db"
    assert metrics.credit(series[0], owners, "service", ["pod"]) is series[0]
    assert metrics.credit(series[4], owners, "service", ["pod"]) is series[4]
    assert metrics.credit({"pod": "web-1"}, owners, "service", ["pod"]) == {
        "pod": "web-1",
        "service": "web",
    }
    # A workload named after a service with series of its own is that service's, though
    # only the exporter's series name it.
    series += [
        {"__name__": "available", "service": "kube-state-metrics", "deployment": "db"},
        {"__name__": "available", "service": "kube-state-metrics", "deployment": "cron"},
    ]
    owners = metrics.pod_owners(series, "service", ["pod", "deployment"])
    assert owners[("deployment", "db")] == "db"
    assert owners[("deployment", "cron")] == "kube-state-metrics"


@pytest.mark.slow
@pytest.mark.parametrize("cap", [5000, 11])
def test_an_exporter_s_series_of_a_pod_are_its_service_s(tmp_path, monkeypatch, cap):
    # 15 series: busy 4, limit_used_ratio 8, restarts_total 1, available 2. At a cap of 11,
    # every metric per service (busy 2, limit_used_ratio 4 by service and pod,
    # restarts_total 1, available 2 by service and deployment), then busy, restarts_total
    # and available series by series: limit_used_ratio is read per service and pod and
    # combined per service as credited.
    monkeypatch.setattr(metrics, "MAX_SERIES", cap)

    async def main(url):
        async with PrometheusClient(BackendConfig(url=url, name="Prometheus")) as prometheus:
            return await scan_metrics(
                prometheus,
                '{namespace="shop"}',
                BASELINE,
                INCIDENT,
                now=INCIDENT[1],
                service_label="service",
                workload_labels=["pod", "deployment"],
            )

    with running_prometheus(exporter_openmetrics(), tmp_path) as url:
        scan = asyncio.run(main(url))

    assert scan.aggregated == ([] if cap == 5000 else ["limit_used_ratio"])
    assert {s.labels.get("service") for s in scan.scores} == {"db", "web"}
    used = max((s for s in scan.scores if s.metric == "limit_used_ratio"), key=lambda s: s.score)
    assert used.labels["service"] == "db" and used.saturated == pytest.approx(0.95)
    if cap == 5000:
        assert used.labels["pod"] == "db-1" and used.labels["container"] == "main"
    else:
        assert used.labels == {"service": "db"} and used.aggregated == "max"
        assert len(by_service(scan, "limit_used_ratio")) == 2
    [restarts] = [s for s in scan.scores if s.metric == "restarts_total"]
    assert restarts.labels["service"] == "db" and restarts.score > 10
    available = max((s for s in scan.scores if s.metric == "available"), key=lambda s: s.score)
    assert available.labels["service"] == "db" and available.score >= 10
    assert available.direction == -1 and available.incident_peak == 1
    suspects = rank_suspects(scan.scores, {}, "service")
    assert [s.service for s in suspects] == ["db", "web"]


@pytest.mark.slow
@pytest.mark.django_db
@pytest.mark.parametrize(
    "workload", [{"alertname": "PodCrashLooping", "pod": "db-2"}, {"deployment": "db"}]
)
def test_an_alert_on_an_exporter_s_series_names_the_pod_s_service(tmp_path, settings, workload):
    # A crash-looping container's alert, as kube-state-metrics' rules raise it: its service
    # label names the exporter, its pod db-2 (or, replicas missing, its deployment db). The
    # investigation names db as the alerting service, and the exporter is no suspect.
    settings.ROOTLINE_LOKI_URL = ""
    alert = make_alert(
        **{"alertname": "DeploymentReplicasMismatch", **workload},
        namespace="shop",
        service="kube-state-metrics",
        starts_at=ALERT,
    )
    investigation = make_investigation(alert, as_of=NOW)

    with running_prometheus(exporter_openmetrics(), tmp_path) as url:
        settings.ROOTLINE_PROMETHEUS_URL = url
        runner.run(investigation.pk)

    investigation.refresh_from_db()
    assert investigation.status == "completed"
    assert investigation.scope["services"] == ["db"]
    assert [s["service"] for s in investigation.suspects] == ["db"]
    assert "db, the alerting service itself" in investigation.report["summary"]
    ranked = investigation.steps.get(tool="rank_suspects")
    assert ranked.input["alerting_services"] == ["db"]


@pytest.mark.slow
@pytest.mark.django_db
@pytest.mark.parametrize(
    "renamed",
    [{}, {"namespace": "k8s_namespace_name", "pod": "k8s_pod_name", "service": "service_name"}],
)
def test_logs_name_services_as_metrics_do(tmp_path, settings, renamed):
    # The log agent labels streams by pod and container (every container "server"), not
    # by service: db-1's new errors are db's, as its saturated CPU is. Or Loki names the
    # labels as its OpenTelemetry ingestion does, and ROOTLINE_LOKI_LABELS says so.
    settings.ROOTLINE_LOKI_LABELS = renamed

    def at(moment):
        return int(moment.timestamp() * 10**9)

    def stream(pod):
        labels = {"namespace": "shop", "pod": pod, "container": "server"}
        return {renamed.get(name, name): value for name, value in labels.items()}

    entries = [
        (stream("web-1"), at(ONSET - timedelta(minutes=m)), f"ERROR slow {m}")
        for m in range(5, 50, 5)
    ]
    entries += [
        (stream("db-1"), at(ONSET + timedelta(seconds=10 * n)), f"FATAL cannot open relation {n}")
        for n in range(20)
    ]
    investigation = make_investigation(
        make_alert(namespace="shop", service="web", starts_at=ALERT), as_of=NOW
    )

    with (
        running_prometheus(exporter_openmetrics(), tmp_path) as url,
        serve_loki(LogStore(entries)) as loki,
    ):
        settings.ROOTLINE_PROMETHEUS_URL, settings.ROOTLINE_LOKI_URL = url, loki.url
        runner.run(investigation.pk)

    investigation.refresh_from_db()
    assert investigation.status == "completed", investigation.error
    scan_logs = investigation.steps.get(tool="scan_logs")
    assert scan_logs.input["query"].startswith(
        f'{{{renamed.get("namespace", "namespace")}="shop"}} |~ '
    )
    assert {s["service"] for s in scan_logs.output["services"]} == {"db", "web"}
    [db] = [s for s in investigation.suspects if s["service"] == "db"]
    [errors] = [item for item in db["evidence"] if item["kind"] == "logs"]
    assert errors["incident_lines"] == errors["new_template_lines"] == 20
    # Where to read them: db has no stream of its own name.
    assert errors["streams"] == [stream("db-1")]
    assert investigation.suspects[0]["service"] == "db"
