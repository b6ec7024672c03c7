"""The log scan: per service, error-like lines in both windows, and which templates are new.

Only a stream selector and a line filter go to Loki (`{...} |~ "..."` through
`query_range`), so the scan works on any Loki version. Lines are mined into templates
(drain3, as in the tools); a service whose error-like lines are many, or come in
templates the baseline never showed, is a suspect.
"""

import asyncio
import math
from dataclasses import dataclass, field

from investigations.scope import quote
from investigations.tools.log_templates import LogEntry, mine_templates
from investigations.tools.redaction import default_redactor

ERROR_FILTER = (
    "(?i)(error|exception|fail|fatal|panic|refused|timed? ?out|denied|unavailable|traceback"
    "|unreachable|reset by peer|broken pipe|oom|out of memory|killed)"
)
MAX_LINES = 5000  # Loki's default max_entries_limit_per_query
MAX_EXAMPLE_TEMPLATES = 3


@dataclass
class ServiceLogs:
    service: str
    incident_lines: int = 0
    baseline_lines: int = 0
    new_template_lines: int = 0
    templates: list[dict] = field(default_factory=list)  # the service's notable templates
    score: float = 0.0

    def as_evidence(self):
        return {
            "kind": "logs",
            "incident_lines": self.incident_lines,
            "baseline_lines": self.baseline_lines,
            "new_template_lines": self.new_template_lines,
            "templates": self.templates,
            "score": round(self.score, 2),
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


async def scan_logs(loki, selector, service_labels, baseline, incident, *, now):
    """Error-like lines under `selector` in both windows, scored per service."""
    query = error_query(selector)
    scan = LogScan(query=query)

    async def fetch(start, end):
        result = await loki.query_range(query, start, end, limit=MAX_LINES, direction="backward")
        return [LogEntry(ts, line, s.labels) for s in result.streams for ts, line in s.entries]

    base, inside = await asyncio.gather(fetch(*baseline), fetch(incident[0], now))
    scan.lines = (len(base), len(inside))
    scan.truncated = max(scan.lines) >= MAX_LINES
    scan.services = score_logs(base, inside, service_labels, incident[0])
    return scan


def service_of(labels, service_labels):
    return next((labels[name] for name in service_labels if labels.get(name)), None)


def score_logs(baseline_entries, incident_entries, service_labels, incident_start):
    """ServiceLogs by service. The score grows with the incident's error-like lines, twice
    as fast for lines of templates the baseline never showed."""
    services = {}
    for entries, attribute in (
        (baseline_entries, "baseline_lines"),
        (incident_entries, "incident_lines"),
    ):
        for entry in entries:
            service = service_of(entry.labels, service_labels)
            if service:
                row = services.setdefault(service, ServiceLogs(service))
                setattr(row, attribute, getattr(row, attribute) + 1)
    if not incident_entries:
        return services
    start_ns = int(incident_start.timestamp() * 1e9)
    templates, _ = mine_templates(
        [*baseline_entries, *incident_entries], default_redactor(), incident_start_ns=start_ns
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
    for row in services.values():
        row.score = math.log1p(row.incident_lines + row.new_template_lines)
    return services
