"""The request-path scan: where requests stopped going the way they used to.

Many services print the trace id of the request they serve on every line (`trace_id=...`,
`TraceID: ...`, `"traceId": "..."`). Grouped by trace id, the lines in scope give each
request's path: the kinds of lines (service, masked start of the message) in the order they
were logged. A fault that raises no error line (an exception answered as a 500 to the
caller, a wrong return value) still changes the paths through the faulty service: the
requests stop where it fails. So a request whose path the reference never showed is credited
to the service of the first step that its closest reference path (same first step, longest
common start) has and it lacks: where it stopped going as usual.

Paths diverge all the time (rare requests, retries), so a service scores by how far its
incident divergences surge above their share of the requests in the control span, the
baseline's second half, measured against the same reference, the baseline's first half
(the Poisson deviation of the log scan). Per request, not per second: load changes,
and so does how much of a window a capped read covers. The share is that of the calmest
part of the control span with enough requests to tell (control.py). Requests that began
in the last minute before "now" may still be running, and are left out.

Only a stream selector and a line filter go to Loki, paged through `query_range`.
"""

import asyncio
import itertools
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from investigations.scope import quote
from investigations.signals.control import CONTROL_PARTS, calmest, control_span, cut
from investigations.signals.logs import MAX_LINES, owned, service_of, surge
from investigations.tools.log_templates import HEX_ID, line_masker, mining_text
from investigations.tools.redaction import default_redactor

TRACE_FILTER = "(?i)trace[-_.]?id"
TRACE_ID = re.compile(r"(?i)trace[-_.]?id[\"']?\s{0,3}[:=]\s{0,3}[\"']?([0-9a-f]{16,32})\b")
# A step is a line's service and the first words of its masked message.
STEP_WORDS = 6
STEP_CHARS = 300
# Masking merges at most two words into one (a date and its time of day), so a step's
# words all come from the first HEAD_WORDS words of the line, and the masker need not
# read further. Ids that vary per line (trace and span ids) are made one id before the
# masked steps already seen are looked up: the masker makes them all <HEX> alike, and
# masking every line anew was most of a busy scan.
HEAD_WORDS = 2 * STEP_WORDS + 2
VARYING_ID = re.compile(HEX_ID)
ONE_ID = "a0a0a0a0"
MAX_PATH_LINES = 120_000
# Each span (reference, control, incident) is read as this many slices at once, each paged
# up to its share of MAX_PATH_LINES: a capped read still has every span, the incident too.
SLICES_PER_SPAN = (3, 3, 2)
MAX_CONCURRENT_QUERIES = 4
# The control span is judged by its calmest part with at least this many requests
# (measured on the case pack with logs: 10 to 50 requests score alike).
MIN_PART_REQUESTS = 20
UNFINISHED = timedelta(minutes=1)
MAX_EXAMPLE_STEPS = 3
MAX_CLOSEST_CANDIDATES = 200


@dataclass
class ServicePaths:
    service: str
    incident_diverged: int = 0
    baseline_diverged: int = 0  # in the control span's calmest part (for this service)
    incident_requests: int = 0
    baseline_requests: int = 0  # in that part
    missing: Counter = field(default_factory=Counter)  # step text -> incident requests
    score: float = 0.0
    onset: float | None = None  # unix seconds: when its first diverging request began

    def as_evidence(self):
        return {
            "kind": "paths",
            "incident_diverged": self.incident_diverged,
            "baseline_diverged": self.baseline_diverged,
            "incident_requests": self.incident_requests,
            "baseline_requests": self.baseline_requests,
            "missing_steps": [
                {"step": default_redactor().redact(step).text, "requests": n}
                for step, n in self.missing.most_common(MAX_EXAMPLE_STEPS)
            ],
            "score": round(self.score, 2),
            "onset": self.onset,
        }


@dataclass
class PathScan:
    services: dict[str, ServicePaths] = field(default_factory=dict)
    query: str = ""
    lines: int = 0
    requests: tuple[int, int, int] = (0, 0, 0)  # reference, control, incident
    truncated: bool = False


def path_query(selector):
    """The LogQL query of the scan: lines under `selector` that carry a trace id."""
    return f"{selector} |~ {quote(TRACE_FILTER)}"


async def scan_paths(loki, selector, service_labels, baseline, incident, *, now, owners=None):
    """Requests under `selector` from the baseline's start to `now`, scored per service
    (named as logs.scan_logs names them)."""
    scan = PathScan(query=path_query(selector))
    control_start = control_span(baseline)[0]
    edges = [baseline[0]]
    for end, parts in zip((control_start, incident[0], now), SLICES_PER_SPAN, strict=True):
        edges += cut(edges[-1], end, parts)[1:]
    entries, scan.truncated = await read_all(loki, scan.query, edges)
    scan.lines = len(entries)
    parts = itertools.pairwise(cut(control_start, incident[0], CONTROL_PARTS))
    spans = [(baseline[0], control_start), *parts, (incident[0], now - UNFINISHED)]
    (reference, *control, inside), began = paths_by_span(
        entries, service_labels, spans, await owned(owners)
    )
    scan.requests = (len(reference), sum(map(len, control)), len(inside))
    scan.services = score_paths(reference, control, inside, began=began[-1])
    return scan


async def read_all(loki, query, edges):
    """Every line of `query` from edges[0] to edges[-1] (datetimes) as (ts_ns, line,
    labels), each slice between two edges read at once, paged forward MAX_LINES at a time,
    up to its share of MAX_PATH_LINES (from its start); (entries, truncated) where
    truncated means a slice was not read to its end."""
    limit = asyncio.Semaphore(MAX_CONCURRENT_QUERIES)
    budget = MAX_PATH_LINES // (len(edges) - 1)

    async def read_slice(slice_start, slice_end):
        entries, cursor, seen_at_cursor = [], slice_start, set()
        if slice_end <= slice_start:  # an empty span (an incident window that ends at once)
            return entries, False
        while len(entries) < budget:
            async with limit:
                result = await loki.query_range(
                    query, cursor, slice_end, limit=MAX_LINES, direction="forward"
                )
            answer = [(int(ts), line, s.labels) for s in result.streams for ts, line in s.entries]
            page = [e for e in answer if (e[0], e[1]) not in seen_at_cursor]
            entries += page
            if len(answer) < MAX_LINES:
                return entries, False
            if not page:  # a whole page of lines at one nanosecond: cannot page past it
                return entries, True
            # A full page: read on from its last nanosecond (lines at that very time may
            # be split across pages, so remember those already read).
            last = max(ts for ts, _, _ in page)
            seen_at_cursor = {(ts, line) for ts, line, _ in page if ts == last} | {
                key for key in seen_at_cursor if key[0] == last
            }
            cursor = Decimal(last) / 10**9
        return entries, True

    try:  # the first failure stops the other slices (Loki down: one error, not eight)
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(read_slice(a, b)) for a, b in itertools.pairwise(edges)]
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    slices = [task.result() for task in tasks]
    return [e for entries, _ in slices for e in entries], any(cut for _, cut in slices)


def paths_by_span(entries, service_labels, spans, owners=None):
    """(paths, began): the paths (tuples of (service, step text)) of the requests that
    began in each span ((start, end) datetimes), one list per span, and when each began
    (unix seconds), lists alike; lines without a trace id are skipped."""
    masker = line_masker()
    steps = {}
    by_trace = defaultdict(list)
    for ts, line, labels in entries:
        match = TRACE_ID.search(line)
        service = service_of(labels, service_labels, owners)
        if not match or not service:
            continue
        message = mining_text(line)[0]
        words = message[:STEP_CHARS].split()
        if len(message) > STEP_CHARS:
            words = words[:-1]  # perhaps cut in two: only whole words redact reliably
        head = VARYING_ID.sub(ONE_ID, " ".join(words[:HEAD_WORDS]))
        text = steps.get(head)
        if text is None:
            text = steps[head] = " ".join(masker.mask(head).split()[:STEP_WORDS])
        by_trace[match.group(1).lower()].append((ts, service, text))
    bounds = [(int(a.timestamp() * 1e9), int(b.timestamp() * 1e9)) for a, b in spans]
    paths = [[] for _ in spans]
    began = [[] for _ in spans]
    for lines in by_trace.values():
        lines.sort()
        first = lines[0][0]
        for n, (start, end) in enumerate(bounds):
            if start <= first < end:
                paths[n].append(tuple((service, text) for _, service, text in lines))
                began[n].append(first / 1e9)
                break
    return paths, began


def tally(missing, sample):
    """{service: Counter of missing step texts} of the paths of `sample`, by `missing`
    (from missing_steps): each path that no reference path with the same first step
    matches, credited to the service of the first step its closest reference path has and
    it lacks."""
    found = defaultdict(Counter)
    for path in sample:
        step = missing(path)
        if step is not None:
            found[step[0]][step[1]] += 1
    return found


def missing_steps(reference):
    """For the paths of `reference`, a function of a path: None if a reference path matches
    it, else the first step its closest reference path (same first step, longest common
    start) has and it lacks. A path that only ends early is credited there too; one that
    only goes further, or whose first step the reference never began with, is not (None).
    Built once per reference and remembering each path, for every span compared with it."""
    known = defaultdict(Counter)
    for path in reference:
        known[path[0]][path] += 1
    # The closest is sought among the most common paths of each first step only: a log
    # whose first words vary (a user name, an unmasked id) makes thousands of rare paths,
    # and comparing each new path with all of them would outrun the scan's budget.
    common = {
        first: [p for p, _ in counts.most_common(MAX_CLOSEST_CANDIDATES)]
        for first, counts in known.items()
    }
    memo = {}

    def missing(path):
        candidates = known.get(path[0])
        if not candidates or path in candidates:
            return None
        if path not in memo:
            closest = max(common[path[0]], key=lambda p: (_common_start(path, p), candidates[p]))
            n = _common_start(path, closest)
            memo[path] = closest[n] if n < len(closest) else None
        return memo[path]

    return missing


def score_paths(reference, control, incident, began=None):
    """ServicePaths by service, from the paths of the reference span, of the parts of the
    control span (a list of lists) and of the incident: how far the incident's divergences
    surge above what the calmest control part's rate per request predicts for as many
    requests, in Poisson standard deviations (logs.surge, as the log scan). Parts with
    fewer than MIN_PART_REQUESTS requests are too few to tell a rate by, unless all are.
    A part's rate counts one divergence more than it saw (control.calmest).
    With no request in the control span there is no rate to compare with: none scores.
    `began` (when each incident request began, unix seconds) gives each service's onset."""
    if not any(control):
        return {}
    missing = missing_steps(reference)
    now = tally(missing, incident)
    onset = {}
    for path, at in zip(incident, began, strict=True) if began is not None else ():
        step = missing(path)  # remembered by now: not sought again
        if step is not None:
            onset[step[0]] = min(onset.get(step[0], at), at)
    parts = [p for p in control if len(p) >= MIN_PART_REQUESTS] or [
        [path for p in control for path in p]
    ]
    before = [(tally(missing, p), len(p)) for p in parts]
    services = {}
    for service in now:
        found, requests = calmest([(sum(d[service].values()), n) for d, n in before])
        row = services[service] = ServicePaths(
            service,
            incident_diverged=sum(now[service].values()),
            baseline_diverged=found,
            incident_requests=len(incident),
            baseline_requests=requests,
            missing=now[service],
            onset=onset.get(service),
        )
        expected = (found + 1) * len(incident) / requests
        row.score = surge(row.incident_diverged, expected)
    return services


def _common_start(a, b):
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
