"""A series that stops reporting, and a service that went silent altogether.

The scenario, served by a real Prometheus (backfilled by promtool): `web`, the alerting
service, fails and slows from a minute after ONSET; `cart` (one pod) stops reporting at
ONSET, every series of it, while Prometheus, failing to scrape it, keeps writing its `up`
at 0; `checkout` is rolled (its old pod stops at ONSET, up included, and a new one starts
then); `cache` restarts in its pod 30 s after ONSET (its counter starts over, its start
time moves).
"""

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from investigations.runner import _describe_metric_scan as describe
from investigations.signals import build_report, metrics, rank_suspects, suspects
from investigations.signals.metrics import (
    APPEARED_SCORE,
    newest_sample,
    resets,
    score_series,
    stopped,
)
from investigations.signals.report import evidence_gist
from tests.investigations.signals.test_metric_scan import run_scan
from tests.realprometheus import prometheus_fixture

# Unix seconds for the unit tests: an hour of baseline, five minutes of incident.
BASELINE, INCIDENT = (0, 3600), (3600, 3900)


def every(interval, start=0, end=3900, skip=()):
    return [
        (t, 1.0) for t in range(start, end + 1, interval) if not any(a <= t < b for a, b in skip)
    ]


def test_a_steady_series_that_stops_in_the_incident_stopped_at_its_first_missing_sample():
    assert stopped(every(30, end=3660), BASELINE, now=3900) == 3690


def test_a_late_scrape_or_ingest_is_not_a_stop():
    # Silent for the last 60 s (two steps): Prometheus may not have the samples yet.
    assert stopped(every(30, end=3840), BASELINE, now=3900) is None
    # A target scraped every minute must miss three scrapes, not two.
    assert stopped(every(60, end=3780), BASELINE, now=3900) is None
    assert stopped(every(60, end=3720), BASELINE, now=3900) == 3780


def test_a_stop_before_the_window_counts_as_a_rule_s_for_delays_the_alert():
    # The window opens at 3600; an alert whose rule waits `for: 5m` fired after a target
    # that stopped at 3300 had been down that long.
    assert stopped(every(30, end=3270), BASELINE, now=3900) == 3300
    # Twenty minutes before it is an earlier change, not this incident's.
    assert stopped(every(30, end=2400), BASELINE, now=3900) is None


def test_a_gap_that_heals_and_a_sparse_series_are_not_stops():
    healed = every(30, skip=[(3600, 3800)])
    # Five minutes on, five off: half the samples of its interval.
    sparse = [(t, v) for t, v in every(30) if (t // 300) % 2 == 0 and t <= 3700]

    assert stopped(healed, BASELINE, now=3900) is None
    assert stopped(sparse, BASELINE, now=3900) is None


def test_a_store_with_nothing_recent_in_scope_is_behind_not_silent():
    # Every series ends three minutes before "now": the store has not got the rest.
    assert newest_sample([every(30, end=3720), every(15, end=3705)], now=3900) == 3720
    # One series is recent: the store is up to date, and the others did stop.
    assert newest_sample([every(30, end=3720), every(15, end=3885)], now=3900) is None
    # A scope scraped every five minutes is not late after three.
    assert newest_sample([every(300, end=3600)], now=3900) is None
    assert newest_sample([every(300, end=2700)], now=3900) == 2700
    assert newest_sample([[(3600, 1.0)], []], now=3900) is None  # no interval to judge


def test_every_service_going_silent_at_once_points_at_what_they_share():
    def series(service, points):
        return score_series(points, BASELINE, INCIDENT, metric="m", labels={"service": service})

    silent = [series(name, every(30, end=3660)) for name in ("cart", "web")]
    ranked = rank_suspects(silent, {}, "service", services_in_scope=["web"])
    report, _ = build_report(ranked, alerting_services=["web"], unchecked=[])
    assert all(s.silence_score == 0.5 for s in ranked)
    assert report["next_steps"][0].startswith(
        "All 2 services that changed stopped reporting their metrics: look first at what they "
        "share, Prometheus' way to them"
    )
    # One that still reports a change: the services went silent, not the way to them.
    moving = [(t, 1.0 if t < 3600 else 5.0 + (t % 60) / 60) for t, _ in every(30)]
    ranked = rank_suspects([*silent, series("db", moving)], {}, "service", ["web"])
    report, _ = build_report(ranked, alerting_services=["web"], unchecked=[])
    assert not any(step.startswith("All ") for step in report["next_steps"])


def test_a_counter_that_starts_over_only_in_the_incident_restarted():
    assert resets([(0, 1.0), (30, 5.0), (60, 2.0), (90, 4.0), (120, 4.0)]) == [60]
    rates = [(t, 1.0) for t, _ in every(30)]

    restart = score_series(rates, BASELINE, INCIDENT, counter=True, resets=[3720])
    assert (restart.restarted, restart.score, restart.onset) == (3720, APPEARED_SCORE, 3720)
    assert restart.direction == 0
    # One that restarts now and then, as in the baseline, did not restart for this.
    habit = score_series(rates, BASELINE, INCIDENT, counter=True, resets=[1800, 3720])
    assert habit.restarted is None and habit.score == 0


def test_a_stop_scores_as_an_appearance_unless_the_values_moved_more_before_it():
    flat = score_series(every(30, end=3660), BASELINE, INCIDENT)
    assert (flat.score, flat.direction, flat.onset, flat.stopped) == (
        APPEARED_SCORE,
        -1,
        3690,
        3690,
    )

    rng = random.Random(1)
    climbing = [(t, 100 + rng.gauss(0, 1) + (400 if t >= 3600 else 0)) for t, _ in every(30)]
    oom = score_series([p for p in climbing if p[0] <= 3750], BASELINE, INCIDENT)
    assert oom.score > APPEARED_SCORE and oom.direction == 1 and oom.onset == 3600
    assert oom.stopped == 3780

    alive = score_series(every(30), BASELINE, INCIDENT)
    assert alive.stopped is None and alive.score == 0
    # Moving is about its latest values: a constant does not move, nor does NaN.
    assert not alive.moving
    wobbling = [(t, float(t % 60)) for t, _ in every(30)]
    assert score_series(wobbling, BASELINE, INCIDENT).moving
    undefined = [(t, math.nan if t > 3700 else v) for t, v in wobbling]
    assert not score_series(undefined, BASELINE, INCIDENT).moving


STEP = 15
START = (datetime.now(UTC) - timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)
ONSET = START + timedelta(minutes=60)
NOW = ONSET + timedelta(minutes=6)
WINDOWS = (START, ONSET - timedelta(minutes=2)), (ONSET - timedelta(minutes=2), NOW)


def steps(first, last):
    t = first
    while t <= last:
        yield t
        t += timedelta(seconds=STEP)


def openmetrics():
    rng = random.Random(3)
    end = NOW + timedelta(minutes=30)
    pods = {  # pod: (service, first sample, last sample)
        "web-5d8f": ("web", START, end),
        "cart-7f9c": ("cart", START, ONSET - timedelta(seconds=STEP)),
        "checkout-old": ("checkout", START, ONSET - timedelta(seconds=STEP)),
        "checkout-new": ("checkout", ONSET, end),
        "cache-0": ("cache", START, end),
    }
    failing = ONSET + timedelta(minutes=1)
    lines = []

    def family(name, kind, help_text, value, pods=pods, last=None):
        """One metric's samples: `value(pod, service, t)` for each pod's times (`last` may
        move a pod's last sample)."""
        lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"])
        series = name + ("_total" if kind == "counter" else "")
        for pod, (service, first, until) in pods.items():
            labels = f'namespace="shop",service="{service}",pod="{pod}"'
            for t in steps(first, (last or {}).get(pod, until)):
                lines.append(f"{series}{{{labels}}} {value(pod, service, t)} {t.timestamp():.0f}")

    def inflight(pod, service, t):
        busy = 60 if service == "web" and t >= failing else 20
        return f"{busy + rng.gauss(0, 1):.3f}"

    totals = dict.fromkeys(pods, 0.0)

    def served(pod, service, t):
        restart = pod == "cache-0" and t == ONSET + timedelta(seconds=30)
        totals[pod] = 0.0 if restart else totals[pod] + 10 + rng.random()
        return f"{totals[pod]:.1f}"

    failed = [0.0]

    def failures(pod, service, t):
        failed[0] += 75 if t >= failing else 1.5 * rng.random()
        return f"{failed[0]:.1f}"

    family("inflight", "gauge", "Requests in progress.", inflight)
    family("requests", "counter", "Requests served.", served)
    # Prometheus goes on writing cart's `up`, at 0, once it can no longer scrape it.
    family(
        "up",
        "gauge",
        "Whether the target was scraped.",
        lambda pod, service, t: 0 if pod == "cart-7f9c" and t >= ONSET else 1,
        last={"cart-7f9c": end},
    )
    family("failures", "counter", "Requests failed.", failures, pods={"web-5d8f": pods["web-5d8f"]})
    # What every client library exports: the process' start time, which a restart moves.
    restarted = ONSET + timedelta(seconds=30)
    family(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        pods={pod: pods[pod] for pod in ("web-5d8f", "cache-0")},
        value=lambda pod, service, t: (
            (restarted if pod == "cache-0" and t >= restarted else START).timestamp() - 7.25
        ),
    )
    return "\n".join([*lines, "# EOF", ""])


prometheus_url = prometheus_fixture(openmetrics)


@pytest.fixture(scope="module")
def scan(prometheus_url):
    return run_scan(prometheus_url, *WINDOWS, workload_labels=["pod"])


@pytest.mark.slow
def test_the_series_of_a_pod_that_went_away_stopped_where_it_did(scan):
    stops = {(s.metric, s.labels["pod"]): s.stopped for s in scan.scores if s.stopped}

    assert set(stops) == {
        ("inflight", "cart-7f9c"),
        ("requests_total", "cart-7f9c"),
        ("inflight", "checkout-old"),
        ("requests_total", "checkout-old"),
        ("up", "checkout-old"),
    }
    restarts = {(s.metric, s.labels["pod"]): s.restarted for s in scan.scores if s.restarted}
    assert list(restarts) == [("requests_total", "cache-0")]
    assert ONSET.timestamp() < restarts["requests_total", "cache-0"] <= ONSET.timestamp() + 60
    # Its start time, a gauge held at one value for the hour, now holds another.
    started = {s.labels["pod"]: s for s in scan.scores if s.metric == "process_start_time_seconds"}
    assert started["cache-0"].left_constant and started["cache-0"].direction == 1
    assert started["cache-0"].onset == restarts["requests_total", "cache-0"]
    assert not started["web-5d8f"].left_constant and started["web-5d8f"].score == 0
    # cart's `up` went on, at 0: a change, but no sign that cart works.
    [up] = [s for s in scan.scores if s.metric == "up" and s.labels["pod"] == "cart-7f9c"]
    assert up.stopped is None and up.direction == -1 and up.incident_peak == 0
    assert not up.moving
    for at in stops.values():
        assert ONSET.timestamp() - 30 <= at <= ONSET.timestamp() + 30


@pytest.mark.slow
def test_over_the_cap_a_restart_shows_in_the_service_s_start_time(prometheus_url, monkeypatch):
    # Every metric read as one series per service: a counter as the sum of its series'
    # rates, which a reset does not show (a metric with one series per service, as the
    # start time here, is read as it is; a service's several would be averaged).
    monkeypatch.setattr(metrics, "MAX_SERIES", 15)
    capped = run_scan(prometheus_url, *WINDOWS, workload_labels=["pod"])

    assert capped.aggregated == ["inflight", "requests_total", "up"] and not capped.left_out
    cache = {s.metric: s for s in capped.scores if s.labels.get("service") == "cache"}
    assert cache["requests_total"].aggregated == "sum" and cache["requests_total"].restarted is None
    started = cache["process_start_time_seconds"]
    assert started.left_constant and started.direction == 1
    assert ONSET.timestamp() < started.onset <= ONSET.timestamp() + 60
    ranked = rank_suspects(capped.scores, {}, "service", services_in_scope=["web"])
    cache_suspect = next(s for s in ranked if s.service == "cache")
    assert cache_suspect.evidence[0]["metric"] == "process_start_time_seconds"


@pytest.mark.slow
def test_a_service_that_stopped_reporting_leads_its_callers_symptoms(scan, monkeypatch):
    ranked = rank_suspects(scan.scores, {}, "service", services_in_scope=["web"])

    assert [s.service for s in ranked[:2]] == ["cart", "web"]
    cart = ranked[0]
    assert cart.evidence[0] == {
        "kind": "silence",
        "series": 2,
        "metrics": 2,
        "onset": cart.evidence[0]["onset"],
        "last": cart.evidence[0]["last"],
        "late": False,
    }
    assert evidence_gist(cart.evidence[0]) == "stopped reporting (2 series)"
    # A rolled service still reports through its new pod: no silence, but a rollout,
    # and the new pod's series, judged against the old one's baseline, did not change.
    checkout = next(s for s in ranked if s.service == "checkout")
    assert checkout.silence_score == 0 and checkout.rollout_score == pytest.approx(1.0)
    [rollout] = checkout.evidence
    assert rollout == {
        "kind": "rollout",
        "replaced": ["checkout-old"],
        "new": ["checkout-new"],
        "pods_replaced": 1,
        "pods_new": 1,
        "onset": rollout["onset"],
        "late": False,
        "changed": {},  # one pod a side: its labels cannot say what a version is
    }
    assert ONSET.timestamp() - 30 <= rollout["onset"] <= ONSET.timestamp() + 30
    assert evidence_gist(rollout) == "pods replaced (1 by 1)"

    report, _ = build_report(ranked, alerting_services=["web"], unchecked=[])
    assert report["root_cause"]["service"] == "cart"
    assert report["summary"].startswith(
        "Most likely root cause: cart (the alert fired on web). All 2 series of it that "
        "reported steadily through the baseline (2 metrics) stopped reporting from "
    )
    assert evidence_gist(cart.evidence[1]) == "up down (20.0)"  # its target is down
    assert evidence_gist(cart.evidence[2]).endswith(" stopped (10.0)")
    assert any(
        "stopped reporting its metrics: check that its pods" in step
        for step in report["next_steps"]
    )
    assert (
        "stopped reporting: 3 series of checkout, 2 series of cart; "
        "started over: 1 series of cache; " in describe(scan, "service")[1]
    )

    # cache restarted in its pod: said so, but no more than any change of unknown size.
    cache = next(s for s in ranked if s.service == "cache")
    [restart] = [item for item in cache.evidence if item.get("restarted")]
    assert evidence_gist(restart) == "requests_total restarted (10.0)"
    report, _ = build_report([cache], alerting_services=["web"], unchecked=[])
    assert "requests_total{namespace=shop,pod=cache-0} started over at " in report["summary"]
    assert "(a counter that never did in the baseline: its process restarted)" in report["summary"]

    # Had cart stopped more than a minute after the alert fired, its silence would be weak.
    stop = cart.evidence[0]["onset"]
    late = rank_suspects(scan.scores, {}, "service", ["web"], alert_start=stop - 61)
    assert late[0].service == "web"
    cart_late = next(s for s in late if s.service == "cart")
    assert cart_late.silence_score == pytest.approx(0.1) and cart_late.evidence[0]["late"]
    assert evidence_gist(cart_late.evidence[0]).endswith(", after the alert fired")
    on_time = rank_suspects(scan.scores, {}, "service", ["web"], alert_start=stop - 60)
    assert on_time[0].service == "cart" and not on_time[0].evidence[0]["late"]

    # Without its silence, cart is one series' stop among web's failures.
    monkeypatch.setattr(suspects, "SILENCE_WEIGHT", 0)
    assert rank_suspects(scan.scores, {}, "service", services_in_scope=["web"])[0].service == "web"
