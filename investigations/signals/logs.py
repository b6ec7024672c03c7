"""The log scan: per service, error-like lines in both windows, which templates are new,
and which kinds of line changed their share of the service's lines.

Only a stream selector and a line filter go to Loki (`{...} |~ "..."` through
`query_range`), so the scan works on any Loki version. Lines are mined into templates
(drain3, as in the tools); a service whose error-like lines are many, or come in
templates the baseline never showed, is a suspect.

Not every fault writes an error: code that throws or returns early often just stops
writing the lines it wrote before, or writes others more often. So each service's lines
of both windows (all of them, sampled evenly over each window, so the scan stays within
its budget) are mined into that service's templates, and a template whose share of the
service's lines changed (new, vanished, surged, dropped) scores by a two-proportion z.
Shares, not counts: how much a service logs moves with its load, which every service
shares. A drop in an error template is a recovery, not a symptom: it does not count.
"""

import asyncio
import math
from dataclasses import dataclass, field

from investigations.scope import quote
from investigations.tools.log_templates import (
    LogEntry,
    detect_level,
    mine_templates,
    mining_text,
    template_miner,
)
from investigations.tools.redaction import default_redactor

ERROR_FILTER = (
    "(?i)(error|exception|fail|fatal|panic|refused|timed? ?out|denied|unavailable|traceback"
    "|unreachable|reset by peer|broken pipe|oom|out of memory|killed)"
)
MAX_LINES = 5000  # Loki's default max_entries_limit_per_query
MAX_EXAMPLE_TEMPLATES = 3
# The rate scan reads at most this many lines per service and window, in this many equal
# slices of the window (Loki answers the newest lines of a range first: slices spread the
# sample over the window, at one query each), mined on their first RATE_MINED_CHARS
# characters.
RATE_LINES_PER_WINDOW = 240
RATE_SLICES = 1
RATE_MINED_CHARS = 240
RATE_MAX_SERVICES = 60
# A service needs this many lines in each window for its shares to mean anything.
RATE_MIN_LINES = 20


@dataclass
class ServiceLogs:
    service: str
    incident_lines: int = 0
    baseline_lines: int = 0
    new_template_lines: int = 0
    templates: list[dict] = field(default_factory=list)  # the service's notable templates
    score: float = 0.0
    rate_score: float = 0.0  # the largest z of a template's share (see rate_shifts)
    shifts: list[dict] = field(default_factory=list)  # the templates that moved most

    def as_evidence(self):
        return {
            "kind": "logs",
            "incident_lines": self.incident_lines,
            "baseline_lines": self.baseline_lines,
            "new_template_lines": self.new_template_lines,
            "templates": self.templates,
            "score": round(self.score, 2),
            "rate_score": round(self.rate_score, 2),
            "shifts": self.shifts,
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
    """Error-like lines under `selector` in both windows, scored per service, and each
    service's template shares compared between the windows."""
    query = error_query(selector)
    scan = LogScan(query=query)

    async def fetch(start, end):
        result = await loki.query_range(query, start, end, limit=MAX_LINES, direction="backward")
        return [LogEntry(ts, line, s.labels) for s in result.streams for ts, line in s.entries]

    (base, inside), shifts = await asyncio.gather(
        asyncio.gather(fetch(*baseline), fetch(incident[0], now)),
        scan_rates(loki, selector, service_labels, baseline, (incident[0], now)),
    )
    scan.lines = (len(base), len(inside))
    scan.truncated = max(scan.lines) >= MAX_LINES
    scan.services = score_logs(base, inside, service_labels, incident[0])
    for service, (score, moved) in shifts.items():
        row = scan.services.setdefault(service, ServiceLogs(service))
        row.rate_score, row.shifts = score, moved
    return scan


async def scan_rates(loki, selector, service_labels, baseline, incident):
    """{service: (rate score, the templates that moved most)} for every service that logs
    under `selector`, from a sample of its lines in each window (see rate_shifts)."""
    label, services = None, []
    for name in dict.fromkeys(service_labels):
        services = await loki.label_values(name, baseline[0], incident[1], query=selector)
        if services:
            label = name
            break
    services = sorted(services)[:RATE_MAX_SERVICES]

    async def sample(service, start, end):
        query = selector[:-1].rstrip() + f", {label}={quote(service)}}}"
        if selector.strip() == "{}":
            query = f"{{{label}={quote(service)}}}"
        step = (end - start) / RATE_SLICES
        limit = max(1, RATE_LINES_PER_WINDOW // RATE_SLICES)
        answers = await asyncio.gather(
            *(
                loki.query_range(query, start + n * step, start + (n + 1) * step, limit=limit)
                for n in range(RATE_SLICES)
            )
        )
        return [line for answer in answers for s in answer.streams for _, line in s.entries]

    async def one(service):
        before, during = await asyncio.gather(
            sample(service, *baseline), sample(service, *incident)
        )
        return service, rate_shifts(before, during)

    return dict(await asyncio.gather(*(one(service) for service in services)))


def rate_shifts(baseline_lines, incident_lines):
    """(score, top templates) of one service's lines: each template's share of the
    service's lines in the incident against the baseline, as a two-proportion z; the score
    is the largest |z|, a dropped error template aside. Too few lines in either window:
    (0, [])."""
    if min(len(baseline_lines), len(incident_lines)) < RATE_MIN_LINES:
        return 0.0, []
    masker, drain = template_miner()
    cluster_of_masked = {}
    counts = {}  # (cluster id, level) -> [baseline, incident]
    for window, lines in enumerate((baseline_lines, incident_lines)):
        for line in lines:
            head = line[: RATE_MINED_CHARS * 2]
            text, parsed = mining_text(head)
            masked = masker.mask(text[:RATE_MINED_CHARS])
            cluster_id = cluster_of_masked.get(masked)
            if cluster_id is None:
                cluster_id = drain.add_log_message(masked)[0].cluster_id
                cluster_of_masked[masked] = cluster_id
            key = (cluster_id, detect_level(head, {}, parsed) == "error")
            counts.setdefault(key, [0, 0])[window] += 1
    n_base, n_incident = len(baseline_lines), len(incident_lines)
    scored = []
    for (cluster_id, error), (before, during) in counts.items():
        z = share_z(before, n_base, during, n_incident)
        if z < 0 and error:
            continue
        scored.append((abs(z), z, cluster_id, error, before, during))
    scored.sort(key=lambda item: item[0], reverse=True)
    redactor = default_redactor()
    top = [
        {
            "template": redactor.redact(drain.id_to_cluster[cluster_id].get_template()).text[:300],
            "error": error,
            "baseline_share": round(before / n_base, 4),
            "incident_share": round(during / n_incident, 4),
            "z": round(z, 2),
        }
        for _, z, cluster_id, error, before, during in scored[:MAX_EXAMPLE_TEMPLATES]
    ]
    return (scored[0][0] if scored else 0.0), top


def share_z(before, n_before, during, n_during):
    """Two-proportion z of a share that was before/n_before and is during/n_during."""
    pooled = (before + during) / (n_before + n_during)
    spread = math.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / n_before + 1 / n_during))
    return (during / n_during - before / n_before) / spread


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
