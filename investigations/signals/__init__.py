"""The deterministic signal scan: what changed in scope when the alert began, no LLM.

`scan(...)` reads Prometheus and Loki (either may be missing or down) and returns the
ranked suspects and what could not be checked; the runner records each step on the
timeline and writes the signals-only report.
"""

from investigations.signals.logs import LogScan, scan_logs
from investigations.signals.metrics import MetricScan, scan_metrics
from investigations.signals.paths import PathScan, scan_paths
from investigations.signals.report import build_report, confidence
from investigations.signals.suspects import Suspect, rank_suspects

__all__ = [
    "LogScan",
    "MetricScan",
    "PathScan",
    "Suspect",
    "build_report",
    "confidence",
    "rank_suspects",
    "scan_logs",
    "scan_metrics",
    "scan_paths",
]
