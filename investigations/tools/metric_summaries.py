"""Metric series summarised as a change: baseline window against incident window.

A model needs to know which series changed, by how much and since when, not the points. The
score is robust: the incident window's mean measured in robust standard deviations of the
baseline (median and MAD), so that a spike in the baseline does not hide a change and noise
does not look like one. Non-finite values (NaN, ±Inf) are dropped and counted.
"""

import math
import statistics
from dataclasses import asdict, dataclass

# MAD times this estimates the standard deviation of normally distributed data.
MAD_TO_SIGMA = 1.4826
# A constant baseline still has a scale (this share of its level), so that 100 → 101 is
# not an infinitely large change; the last resort is MIN_SCALE.
MIN_RELATIVE_SCALE = 0.01
MIN_SCALE = 1e-9
MAX_ANOMALY_SCORE = 100.0
# A point further than this many robust deviations from the baseline median has changed;
# a series whose score reaches it has changed.
CHANGE_THRESHOLD_SIGMAS = 3.0
# A series that exists in only one window has changed, decisively but not infinitely.
APPEARANCE_SCORE = 10.0


@dataclass
class SeriesSummary:
    labels: dict
    state: str  # "present", "appeared", "disappeared" or "empty"
    baseline_points: int = 0
    incident_points: int = 0
    dropped_points: int = 0
    baseline_mean: float | None = None
    baseline_median: float | None = None
    baseline_mad: float | None = None
    incident_mean: float | None = None
    incident_max: float | None = None
    last: float | None = None
    change_ratio: float | None = None
    absolute_change: float | None = None
    score: float = 0.0
    change_started_at: float | None = None

    def as_dict(self):
        return asdict(self)


def _mean(values):
    """The mean, without the overflow of summing values near the float limit (each is
    scaled by the largest first: even fsum's partial sums of n values / n overflow)."""
    scale = max(abs(v) for v in values) or 1.0
    return scale * (math.fsum(v / scale for v in values) / len(values))


def _points(points):
    """Finite (seconds, value) pairs sorted by time, and how many were dropped."""
    kept, dropped = [], 0
    for point in points:
        try:
            ts, value = float(point[0]), float(point[1])
        except (TypeError, ValueError, IndexError):
            dropped += 1
            continue
        if math.isfinite(ts) and math.isfinite(value):
            kept.append((ts, value))
        else:
            dropped += 1
    kept.sort()
    return kept, dropped


def summarize(labels, points, *, baseline, incident):
    """One series (`points` of (unix seconds, value), values may be Prometheus' strings)
    against the baseline window [start, end) and the incident window [start, end]."""
    kept, dropped = _points(points)
    base = [v for ts, v in kept if baseline[0] <= ts < baseline[1]]
    inside = [(ts, v) for ts, v in kept if incident[0] <= ts <= incident[1]]
    summary = SeriesSummary(dict(labels), "empty", len(base), len(inside), dropped)
    if base:
        summary.baseline_mean = _mean(base)
        summary.baseline_median = statistics.median(base)
        summary.baseline_mad = statistics.median(abs(v - summary.baseline_median) for v in base)
    if inside:
        values = [v for _, v in inside]
        summary.incident_mean = _mean(values)
        summary.incident_max = max(values)
        summary.last = values[-1]
    if base and inside:
        _compare(summary, inside)
    elif inside:
        summary.state = "appeared"
        summary.score = APPEARANCE_SCORE
        summary.change_started_at = inside[0][0]
    elif base:
        summary.state = "disappeared"
        summary.score = APPEARANCE_SCORE
    return summary


def _compare(summary, inside):
    summary.state = "present"
    median = summary.baseline_median
    scale = max(MAD_TO_SIGMA * summary.baseline_mad, MIN_RELATIVE_SCALE * abs(median), MIN_SCALE)
    summary.absolute_change = summary.incident_mean - summary.baseline_mean
    if summary.baseline_mean:
        summary.change_ratio = summary.incident_mean / summary.baseline_mean
    score = abs(summary.incident_mean - median) / scale
    # Only values near the float limit make an infinite or undefined score.
    summary.score = min(score, MAX_ANOMALY_SCORE) if math.isfinite(score) else MAX_ANOMALY_SCORE
    if summary.score >= CHANGE_THRESHOLD_SIGMAS:
        summary.change_started_at = next(
            (ts for ts, v in inside if abs(v - median) > CHANGE_THRESHOLD_SIGMAS * scale), None
        )


def summarize_series(series, *, baseline, incident):
    """Summaries of `series` ((labels, points) pairs), the most changed first."""
    summaries = [
        summarize(labels, points, baseline=baseline, incident=incident) for labels, points in series
    ]
    return sorted(summaries, key=lambda s: (-s.score, -abs(s.absolute_change or 0.0)))
