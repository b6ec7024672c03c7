"""The log scan: per service, error-like lines in both windows, and which templates are new.

Only a stream selector and a line filter go to Loki (`{...} |~ "..."` through
`query_range`), so the scan works on any Loki version. Lines are mined into templates
(drain3, as in the tools); a service whose error-like lines surged against its own
baseline rate, or come in templates the baseline never showed, is a suspect. A service
that always logs errors at the same rate is not: chronic errors say nothing about this
incident. The baseline rate is that of the calmest part of the baseline's last half
(control.py), so that the same failure half an hour ago does not make it look normal now.
"""

import asyncio
import bisect
import math
from collections import Counter
from dataclasses import dataclass, field

from investigations.scope import label_value, quote
from investigations.signals.control import CONTROL_PARTS, calmest, control_span, cut
from investigations.tools.log_templates import LogEntry, mine_templates
from investigations.tools.redaction import default_redactor

ERROR_FILTER = (
    "(?i)(error|exception|fail|fatal|panic|refused|timed? ?out|denied|unavailable|traceback"
    "|unreachable|reset by peer|broken pipe|oom|out of memory|killed)"
)
MAX_LINES = 5000  # Loki's default max_entries_limit_per_query
MAX_EXAMPLE_TEMPLATES = 3
MAX_STREAMS = 3


@dataclass
class ServiceLogs:
    service: str
    incident_lines: int = 0
    baseline_lines: int = 0  # in the whole baseline window
    expected_lines: float = 0.0  # in the incident, at the calmest control part's rate
    new_template_lines: int = 0
    templates: list[dict] = field(default_factory=list)  # the service's notable templates
    score: float = 0.0
    onset: float | None = None  # unix seconds of its first error-like line in the incident
    # The streams (label sets) of its error-like lines in the incident, by lines: where to
    # read them, however the service was named (see `service_of`).
    streams: Counter = field(default_factory=Counter)

    def as_evidence(self):
        return {
            "kind": "logs",
            "incident_lines": self.incident_lines,
            "baseline_lines": self.baseline_lines,
            "expected_lines": round(self.expected_lines, 1),
            "new_template_lines": self.new_template_lines,
            "templates": self.templates,
            "score": round(self.score, 2),
            "onset": self.onset,
            "streams": [dict(labels) for labels, _ in self.streams.most_common(MAX_STREAMS)],
        }


@dataclass
class LogScan:
    services: dict[str, ServiceLogs] = field(default_factory=dict)
    query: str = ""
    lines: tuple[int, int] = (0, 0)  # baseline, incident
    truncated: bool = False
    errors: list[str] = field(default_factory=list)


def error_query(selector):
    """The one LogQL query of the scan: error-like lines of the streams under `selector`."""
    return f"{selector} |~ {quote(ERROR_FILTER)}"


async def scan_logs(loki, selector, service_labels, baseline, incident, *, now, owners=None):
    """Error-like lines under `selector` in both windows, scored per service (see
    `service_of`; `owners`, awaited once the lines are read, as the metric scan's)."""
    query = error_query(selector)
    scan = LogScan(query=query)

    async def fetch(start, end):
        result = await loki.query_range(query, start, end, limit=MAX_LINES, direction="backward")
        return [LogEntry(ts, line, s.labels) for s in result.streams for ts, line in s.entries]

    base, inside = await asyncio.gather(fetch(*baseline), fetch(incident[0], now))
    scan.lines = (len(base), len(inside))
    scan.truncated = max(scan.lines) >= MAX_LINES
    scan.services = score_logs(
        base, inside, service_labels, baseline, (incident[0], now), await owned(owners)
    )
    return scan


async def owned(owners):
    """{(workload label, value): service}: what `owners`, an awaitable of the metric scan's
    (read while the logs are) or None, gives; {} where it gives none."""
    return (await owners if owners is not None else None) or {}


def covered(entries, window):
    """The seconds of `window` that `entries` speak for: all of it, unless Loki capped the
    answer at MAX_LINES, in which case (newest first) only from the oldest line returned."""
    start, end = window[0].timestamp(), window[1].timestamp()
    if len(entries) >= MAX_LINES:
        start = max(start, min(e.timestamp_ns for e in entries) / 1e9)
    return max(end - start, 1.0)


def service_of(labels, service_labels, owners=None):
    """The service a stream's `labels` are from: its workload's (a pod's) in the metric
    scan's `owners` (metrics.pod_owners), so that logs and metrics name a service alike
    however the log agent labels its streams (a container named "server" in every pod,
    Loki's `service_name`), else its first service label."""
    if owners:
        for name, value in labels.items():
            if owner := owners.get((name, value)):
                return owner
    return next(filter(None, (label_value(labels, name) for name in service_labels)), None)


def score_logs(baseline_entries, incident_entries, service_labels, baseline, incident, owners=None):
    """ServiceLogs by service, from the error-like lines of the `baseline` and `incident`
    windows ((start, end) datetimes). The score is how far the incident's lines lie above
    what the service's rate in the calmest part of the control span predicts for a window
    that long, in Poisson standard deviations (see `surge`); lines of templates the
    baseline never showed count twice. A window Loki capped at MAX_LINES counts only the
    span it covers. The onset is the service's first error-like line in the incident."""
    services = {}
    end = baseline[1].timestamp()
    baseline_seconds = covered(baseline_entries, baseline)
    start = max(control_span(baseline)[0].timestamp(), end - baseline_seconds)
    edges = cut(start, end, CONTROL_PARTS)
    parts = {}  # service -> its lines in each control part
    for entry in baseline_entries:
        service = service_of(entry.labels, service_labels, owners)
        if not service:
            continue
        services.setdefault(service, ServiceLogs(service)).baseline_lines += 1
        at = entry.timestamp_ns / 1e9
        if start <= at < end:
            part = min(bisect.bisect_right(edges, at) - 1, CONTROL_PARTS - 1)
            parts.setdefault(service, [0] * CONTROL_PARTS)[part] += 1
    for entry in incident_entries:
        service = service_of(entry.labels, service_labels, owners)
        if not service:
            continue
        row = services.setdefault(service, ServiceLogs(service))
        row.incident_lines += 1
        row.streams[tuple(sorted(entry.labels.items()))] += 1
        at = entry.timestamp_ns / 1e9
        row.onset = at if row.onset is None else min(row.onset, at)
    if not incident_entries:
        return services
    start_ns = int(incident[0].timestamp() * 1e9)
    templates, _ = mine_templates(
        [*baseline_entries, *incident_entries],
        default_redactor(),
        incident_start_ns=start_ns,
        service_of=lambda labels: service_of(labels, service_labels, owners),
    )
    for template in templates:
        if not (template.new or template.surged):
            continue
        # A new template's lines are all in the incident, so its per-service counts are
        # exact; a surged one's are the whole range's.
        for name, lines in template.services.items():
            row = services.get(name)
            if row is None:
                continue
            if template.new:
                row.new_template_lines += lines
            if len(row.templates) < MAX_EXAMPLE_TEMPLATES:
                row.templates.append(
                    {
                        "template": template.template[:300],
                        "lines": lines,
                        "new": template.new,
                        "surged": template.surged,
                    }
                )
    part_seconds = (end - start) / CONTROL_PARTS
    incident_seconds = covered(incident_entries, incident)
    for row in services.values():
        if parts:
            lines, _ = calmest([(n, part_seconds) for n in parts.get(row.service, [0])])
            row.expected_lines = (lines + 1) * incident_seconds / part_seconds
        else:  # not one line in the control span: only the whole window's rate tells
            row.expected_lines = row.baseline_lines * incident_seconds / baseline_seconds
        row.score = surge(row.incident_lines + row.new_template_lines, row.expected_lines)
    return services


def surge(observed, expected):
    """How far `observed` counts lie above `expected`, in Poisson standard deviations
    (sqrt(expected + 1), so that a few where there were none still count); 0 below it."""
    return max(0.0, (observed - expected) / math.sqrt(expected + 1))
