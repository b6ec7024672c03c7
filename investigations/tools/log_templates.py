"""Log lines grouped into templates: what kinds of lines there were, how many, when, where.

Templates are mined with drain3 (a maintained implementation of the Drain algorithm) in
memory, after masking the parts that vary (timestamps, UUIDs, IPs, long hex ids, numbers) so
that one kind of line makes one template. JSON and logfmt lines are mined on their message
field, tracebacks on their last line: that is where the kind of a line is said. Loki's own
pattern detection gives the same shape (`templates_from_loki_patterns`), so callers can use
either.

A template is split by level, so a rare error never hides inside a frequent info template,
and `rank` puts errors first, then templates that are new or surged in the incident window.
Examples and template texts are redacted here, before they are cut to length: a cut could
split a secret past recognition.
"""

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from django.conf import settings
from drain3.drain import Drain
from drain3.masking import LogMasker, MaskingInstruction

from investigations.scope import held_names, label_value

MAX_EXAMPLES_PER_TEMPLATE = 3
# Examples are taken from a template's first lines only, so that a template of a million
# identical lines costs no more than one of ten.
MAX_EXAMPLE_CANDIDATES_PER_TEMPLATE = 10
MAX_EXAMPLE_CHARS = 240
# Redaction of an example looks this far past its cut, so a secret that starts before the
# cut is still recognised whole.
EXAMPLE_REDACTION_LOOKAHEAD_CHARS = 4096
MAX_MINED_CHARS = 1000
# Surged: at least this many times the baseline rate, with at least this many lines.
SURGE_RATIO = 3.0
MIN_SURGE_LINES = 3

DRAIN_SIM_TH = 0.5
DRAIN_DEPTH = 5
DRAIN_MAX_CHILDREN = 100
_TIMESTAMP = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?"
# A time of day alone (logback's default HH:mm:ss.SSS, syslog's clock): without a mask it
# would make one template per minute.
_TIME_OF_DAY = r"(?<![\w:.])(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:[.,]\d{1,9})?(?![\w:])"
# An id in hex (a trace or span id, an address): at least one digit and one letter, so
# that neither a word nor a number is taken for one.
HEX_ID = r"(?<![\w-])(?:0x[0-9a-fA-F]+|(?=[a-f]{0,64}\d)(?=\d{0,64}[a-f])[0-9a-f]{8,})(?![\w-])"
MASKS = (
    (_TIMESTAMP, "TS"),
    (_TIME_OF_DAY, "TS"),
    (r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b", "UUID"),
    (r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?(?![\w.])", "IP"),
    (HEX_ID, "HEX"),
    (r"(?<![\w.-])[+-]?(?:\d{4,}(?:\.\d+)?|\d+\.\d+)(?![\w.])", "NUM"),
)

LEVEL_LABELS = ("detected_level", "level", "severity", "lvl", "loglevel")
MESSAGE_FIELDS = ("msg", "message", "error", "err", "event", "log")
LEVEL_WORDS = {
    "error": "error", "err": "error", "eror": "error", "fatal": "error", "critical": "error",
    "crit": "error", "panic": "error", "emerg": "error", "alert": "error", "severe": "error",
    "warn": "warn", "warning": "warn", "wrn": "warn",
    "info": "info", "inf": "info", "notice": "info", "information": "info",
    "debug": "debug", "dbg": "debug", "trace": "debug",
}  # fmt: skip
LEVEL_ORDER = {"error": 0, "warn": 1, "info": 2, "unknown": 3, "debug": 4}

_LEVEL_FIELD = re.compile(
    r"(?i)\b(?:level|lvl|severity)[\"']?\s{0,3}[=:]\s{0,3}[\"']?([a-z]{3,11})"
)
_ERROR_WORDS = re.compile(
    r"(?i)\b(?:error|exception|fatal|panic|refused|timed out|timeout|oom|out of memory|killed"
    r"|crash(?:ed|loopbackoff)?|traceback|failed|failure|unavailable|unreachable|denied"
    r"|exceeded|no space left|could not|cannot|unable to)\b"
)
_WARN_WORDS = re.compile(r"(?i)\b(?:warn(?:ing)?|deprecated|retry(?:ing)?|throttled|backoff)\b")
# A plain line's timestamp, level and [thread] prefix: the same on every line, so it would
# make Drain merge lines that differ only after it.
_PLAIN_PREFIX = re.compile(
    rf"^\s{{0,8}}(?:\[?(?:{_TIMESTAMP}|{_TIME_OF_DAY})\]?\s{{1,8}})?"
    r"(?:\[?(?i:trace|debug|info|notice|warn|warning|error|fatal|critical)\]?:?\s{1,8})?"
    r"(?:\[[^\]\s]{1,40}\]\s{1,8})?"
)
_LOGFMT_MESSAGE = re.compile(r'(?:^|\s)(?:msg|message)=(?:"((?:[^"\\]|\\.){0,2000})"|(\S+))')


class LogEntry(NamedTuple):
    timestamp_ns: int
    line: str
    labels: dict


@dataclass
class LogTemplate:
    template: str
    level: str
    source: str  # "drain3" or "loki_patterns"
    count: int = 0
    first_seen_ns: int | None = None
    last_seen_ns: int | None = None
    services: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    baseline_count: int = 0
    incident_count: int = 0
    new: bool = False
    surged: bool = False
    surge_ratio: float | None = None

    def seen(self, timestamp_ns, count=1):
        self.count += count
        if self.first_seen_ns is None or timestamp_ns < self.first_seen_ns:
            self.first_seen_ns = timestamp_ns
        if self.last_seen_ns is None or timestamp_ns > self.last_seen_ns:
            self.last_seen_ns = timestamp_ns

    def as_dict(self):
        """JSON-ready, for the timeline; times as RFC 3339."""
        return {
            "template": self.template,
            "level": self.level,
            "source": self.source,
            "count": self.count,
            "first_seen": iso_time(self.first_seen_ns),
            "last_seen": iso_time(self.last_seen_ns),
            "services": sorted(self.services, key=self.services.get, reverse=True),
            "examples": self.examples,
            "baseline_count": self.baseline_count,
            "incident_count": self.incident_count,
            "new": self.new,
            "surged": self.surged,
            "surge_ratio": self.surge_ratio,
        }


def iso_time(timestamp_ns):
    """RFC 3339; a time beyond what datetime can hold stays the number it was."""
    if timestamp_ns is None:
        return None
    try:
        moment = datetime.fromtimestamp(timestamp_ns / 1e9, UTC)
    except (OverflowError, OSError, ValueError):
        return timestamp_ns
    return moment.isoformat().replace("+00:00", "Z")


def entries_from_loki_streams(streams):
    """Loki `query_range` streams (`[{"stream": labels, "values": [[ns, line], ...]}]`)
    as LogEntry tuples, nanosecond strings made ints."""
    return [
        LogEntry(int(ts), line, stream.get("stream", {}))
        for stream in streams
        for ts, line, *_ in stream.get("values", [])
    ]


def detect_level(line, labels, parsed=None):
    """error, warn, info, debug or unknown: the labels' level (Loki's `detected_level`
    unless it gave up), then the line's own level field, then words that mean trouble."""
    for name in LEVEL_LABELS:
        level = LEVEL_WORDS.get(str(labels.get(name, "")).lower())
        if level:
            return level
    if isinstance(parsed, dict):
        for name in LEVEL_LABELS:
            level = LEVEL_WORDS.get(str(parsed.get(name, "")).lower())
            if level:
                return level
    head = line[:MAX_MINED_CHARS]
    match = _LEVEL_FIELD.search(head)
    if match and match.group(1).lower() in LEVEL_WORDS:
        return LEVEL_WORDS[match.group(1).lower()]
    if _ERROR_WORDS.search(line[:MAX_MINED_CHARS] + line[-MAX_MINED_CHARS:]):
        return "error"
    if _WARN_WORDS.search(head):
        return "warn"
    return "unknown"


def mining_text(line):
    """The part of a line that says what kind of line it is, and the parsed JSON if any."""
    parsed = None
    if line.lstrip().startswith("{"):
        try:
            parsed = json.loads(line)
        except ValueError:
            parsed = None
    if isinstance(parsed, dict):
        for name in MESSAGE_FIELDS:
            if isinstance(parsed.get(name), str) and parsed[name].strip():
                return parsed[name][:MAX_MINED_CHARS], parsed
        return " ".join(f"{k}={v}" for k, v in parsed.items())[:MAX_MINED_CHARS], parsed
    match = _LOGFMT_MESSAGE.search(line[: MAX_MINED_CHARS * 2])
    if match:
        message = match.group(1) if match.group(1) is not None else match.group(2)
        return message[:MAX_MINED_CHARS], None
    rows = [row for row in line[: MAX_MINED_CHARS * 4].splitlines() if row.strip()]
    if len(rows) > 1 and rows[0].startswith("Traceback"):
        return rows[-1][:MAX_MINED_CHARS], None
    first = rows[0] if rows else ""
    return first[_PLAIN_PREFIX.match(first).end() :][:MAX_MINED_CHARS] or first, None


def service_of(labels, service_label=None):
    """The service a stream's `labels` name: by the scope's `service_label` where they
    have it (or, for `job`, OpenTelemetry's service_namespace/service_name: see
    scope.label_value), else by the first label of ROOTLINE_SERVICE_LABELS they hold, each
    also under its OpenTelemetry name (Loki's `service_name`), as the signal scan reads
    them; else all of the labels."""
    if service_label and (value := label_value(labels, service_label)):
        return str(value)
    for name in held_names(settings.ROOTLINE_SERVICE_LABELS, labels):
        if labels.get(name):
            return str(labels[name])
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"


def line_masker():
    """drain3's masker with MASKS: a line with the parts that vary made placeholders."""
    return LogMasker([MaskingInstruction(p, name) for p, name in MASKS], "<", ">")


def _miner():
    """A Drain tree and its masker, in memory (drain3's TemplateMiner adds persistence and
    logging, neither wanted for one tool call)."""
    drain = Drain(depth=DRAIN_DEPTH, sim_th=DRAIN_SIM_TH, max_children=DRAIN_MAX_CHILDREN)
    return line_masker(), drain


def mine_templates(
    entries, redactor, *, incident_start_ns=None, window_ns=None, service_of=service_of
):
    """Templates of `entries` (LogEntry or (ns, line, labels) tuples, any order, any number
    of streams), ranked; each example and template redacted by `redactor`, its lines
    counted by the service `service_of` their labels name.

    Returns (templates, redaction counts). With `incident_start_ns`, lines before it are
    the baseline, and templates are judged new or surged against it (see `judge`).
    """
    masker, drain = _miner()
    cluster_of_masked = {}
    by_key = {}
    counts = {}
    start_ns = end_ns = None
    for timestamp_ns, line, labels in entries:
        line = line if isinstance(line, str) else str(line)
        timestamp_ns = int(timestamp_ns)
        start_ns = timestamp_ns if start_ns is None else min(start_ns, timestamp_ns)
        end_ns = timestamp_ns if end_ns is None else max(end_ns, timestamp_ns)
        text, parsed = mining_text(line)
        masked = masker.mask(text)
        cluster_id = cluster_of_masked.get(masked)
        if cluster_id is None:
            cluster_id = drain.add_log_message(masked)[0].cluster_id
            cluster_of_masked[masked] = cluster_id
        level = detect_level(line, labels or {}, parsed)
        template = by_key.get((cluster_id, level))
        if template is None:
            template = by_key[cluster_id, level] = LogTemplate("", level, "drain3")
        template.seen(timestamp_ns)
        service = service_of(labels or {})
        template.services[service] = template.services.get(service, 0) + 1
        if incident_start_ns is not None:
            if timestamp_ns < incident_start_ns:
                template.baseline_count += 1
            else:
                template.incident_count += 1
        if (
            len(template.examples) < MAX_EXAMPLES_PER_TEMPLATE
            and template.count <= MAX_EXAMPLE_CANDIDATES_PER_TEMPLATE
        ):
            _add_example(template, line, redactor, counts)
    for (cluster_id, _), template in by_key.items():
        template.template = _redacted(
            drain.id_to_cluster[cluster_id].get_template(), redactor, counts
        )
    templates = list(by_key.values())
    if incident_start_ns is not None and templates:
        judge(templates, incident_start_ns, window_ns or (start_ns, end_ns))
    return rank(templates), counts


def templates_from_loki_patterns(
    patterns, redactor, *, incident_start_ns=None, window_ns=None, services=()
):
    """Loki `/patterns` answers (`[{"pattern", "level", "samples": [[s, count], ...]}]`) in
    the same shape as mined templates. Patterns keep Loki's `<_>` so that the model can use
    them in a `|>` filter; they carry no examples."""
    counts = {}
    templates = []
    for pattern in patterns:
        text = _redacted(str(pattern.get("pattern", "")), redactor, counts)
        level = LEVEL_WORDS.get(str(pattern.get("level", "")).lower()) or detect_level(text, {})
        template = LogTemplate(text, level, "loki_patterns")
        template.services = dict.fromkeys(services, 0)
        for seconds, count in pattern.get("samples", []):
            timestamp_ns, count = int(float(seconds) * 1e9), int(float(count))
            template.seen(timestamp_ns, count)
            for service in services:
                template.services[service] += count
            if incident_start_ns is not None:
                if timestamp_ns < incident_start_ns:
                    template.baseline_count += count
                else:
                    template.incident_count += count
        if template.count:
            templates.append(template)
    if incident_start_ns is not None and templates:
        seen = [t.first_seen_ns for t in templates] + [t.last_seen_ns for t in templates]
        judge(templates, incident_start_ns, window_ns or (min(seen), max(seen)))
    return rank(templates), counts


def judge(templates, incident_start_ns, window_ns):
    """Mark templates new (no line in the baseline part of the window) and surged (incident
    rate at least SURGE_RATIO times the baseline rate).

    `window_ns` is the (start, end) the entries cover; pass the query's range only when the
    answer was complete (not cut by a line limit), or "new" may be claimed wrongly.
    """
    start_ns, end_ns = window_ns
    baseline_ns = incident_start_ns - start_ns
    incident_ns = end_ns - incident_start_ns
    for template in templates:
        template.new = (
            baseline_ns > 0 and not template.baseline_count and template.incident_count > 0
        )
        if template.baseline_count and incident_ns > 0 and baseline_ns > 0:
            ratio = (template.incident_count / incident_ns) / (
                template.baseline_count / baseline_ns
            )
            template.surge_ratio = round(ratio, 2)
            template.surged = ratio >= SURGE_RATIO and template.incident_count >= MIN_SURGE_LINES


def rank(templates):
    """Errors first, then new, then surged, then warnings before the rest, then by count."""
    return sorted(
        templates,
        key=lambda t: (
            t.level != "error",
            not t.new,
            not t.surged,
            LEVEL_ORDER.get(t.level, 3),
            -t.count,
            t.first_seen_ns or 0,
        ),
    )


def _add_example(template, line, redactor, counts):
    redacted = redactor.redact(line[: MAX_EXAMPLE_CHARS + EXAMPLE_REDACTION_LOOKAHEAD_CHARS])
    example = " ⏎ ".join(part.strip() for part in redacted.text.splitlines() if part.strip())
    if len(example) > MAX_EXAMPLE_CHARS:
        example = example[: MAX_EXAMPLE_CHARS - 1] + "…"
    if example not in template.examples:
        template.examples.append(example)
        for kind, n in redacted.counts.items():
            counts[kind] = counts.get(kind, 0) + n


def _redacted(text, redactor, counts):
    result = redactor.redact(text)
    for kind, n in result.counts.items():
        counts[kind] = counts.get(kind, 0) + n
    return result.text
