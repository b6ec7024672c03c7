"""A series is summarised as a change: how much, how unusual, since when."""

import random
import sys

import pytest

from investigations.tools.metric_summaries import (
    APPEARANCE_SCORE,
    CHANGE_THRESHOLD_SIGMAS,
    MAX_ANOMALY_SCORE,
    summarize,
    summarize_series,
)

BASELINE = (0, 1200)
INCIDENT = (1200, 1800)
STEP_SECONDS = 15


def series(value_at):
    return [(t, value_at(t)) for t in range(0, 1801, STEP_SECONDS)]


def test_a_step_change_scores_high_and_says_when_it_began():
    rng = random.Random(7)
    points = series(lambda t: rng.gauss(100, 5) + (80 if t >= 1425 else 0))

    summary = summarize({"service": "payment-api"}, points, baseline=BASELINE, incident=INCIDENT)

    assert summary.state == "present"
    assert summary.score > 8
    assert summary.change_started_at == 1425
    assert summary.baseline_median == pytest.approx(100, abs=3)
    assert summary.change_ratio == pytest.approx(1.5, abs=0.1)
    assert summary.incident_max > 160


def test_noise_alone_scores_low_and_has_no_change_start():
    rng = random.Random(11)
    scores = []
    for _ in range(50):
        points = series(lambda t: rng.gauss(0.25, 0.03))
        summary = summarize({}, points, baseline=BASELINE, incident=INCIDENT)
        scores.append(summary.score)
        assert summary.change_started_at is None
    assert max(scores) < CHANGE_THRESHOLD_SIGMAS


def test_a_zero_baseline_is_a_change_from_zero_not_a_division_by_zero():
    points = series(lambda t: 0.0 if t < 1300 else 12.5)

    summary = summarize({}, points, baseline=BASELINE, incident=INCIDENT)

    assert summary.baseline_mean == 0 and summary.change_ratio is None
    assert summary.absolute_change == pytest.approx(12.5 * 34 / 41)
    assert summary.score == MAX_ANOMALY_SCORE
    assert summary.change_started_at == 1305


def test_a_constant_baseline_still_has_a_scale():
    summary = summarize({}, series(lambda t: 100.0 if t < 1200 else 101.0), baseline=BASELINE,
                        incident=INCIDENT)  # fmt: skip
    assert summary.score == pytest.approx(1.0)


def test_missing_and_non_finite_points_are_dropped_and_counted():
    points = series(lambda t: 5.0)
    points[3] = (points[3][0], "NaN")
    points[90] = (points[90][0], float("inf"))
    points.append(("not a time", 1.0))
    points.append((1500,))

    summary = summarize({}, points, baseline=BASELINE, incident=INCIDENT)

    assert summary.dropped_points == 4
    assert summary.score == 0 and summary.incident_mean == 5.0


def test_a_series_only_in_the_incident_window_has_appeared():
    points = [(t, 3.0) for t in range(1380, 1800, 15)]

    summary = summarize({"code": "503"}, points, baseline=BASELINE, incident=INCIDENT)

    assert summary.state == "appeared"
    assert summary.score == APPEARANCE_SCORE
    assert summary.change_started_at == 1380
    assert summary.baseline_mean is None and summary.incident_mean == 3.0


def test_a_series_gone_in_the_incident_window_has_disappeared():
    summary = summarize({"job": "orders-db"}, [(t, 1.0) for t in range(0, 1190, 15)],
                        baseline=BASELINE, incident=INCIDENT)  # fmt: skip
    assert summary.state == "disappeared" and summary.incident_points == 0


def test_prometheus_string_values_are_read():
    points = [[t, "0.5" if t < 1200 else "2"] for t in range(0, 1800, 60)]
    summary = summarize({}, points, baseline=BASELINE, incident=INCIDENT)
    assert summary.baseline_mean == 0.5 and summary.last == 2.0


def test_the_most_changed_series_come_first():
    flat = series(lambda t: 1.0 + (t % 30) / 300)
    small = series(lambda t: 1.0 + (t % 30) / 300 + (0.05 if t >= 1200 else 0))
    big = series(lambda t: 1.0 + (t % 30) / 300 + (5 if t >= 1200 else 0))
    ranked = summarize_series(
        [({"s": "flat"}, flat), ({"s": "small"}, small), ({"s": "empty"}, []), ({"s": "big"}, big)],
        baseline=BASELINE,
        incident=INCIDENT,
    )
    assert [s.labels["s"] for s in ranked] == ["big", "small", "flat", "empty"]
    assert ranked[-1].state == "empty"
    assert set(ranked[0].as_dict()) >= {"score", "change_started_at", "change_ratio", "last"}


def test_means_of_values_near_the_float_limit_do_not_overflow():
    # Found by the compaction property test: three points at the float limit.
    top = sys.float_info.max
    points = [(t, top) for t in (100, 200, 300)] + [(t, -top) for t in (2000, 2100)]

    summary = summarize({"service": "x"}, points, baseline=(0, 1800), incident=(1800, 3600))

    assert summary.baseline_mean == top
    assert summary.incident_mean == -top
