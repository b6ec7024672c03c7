"""Tool output shaped for a model: ranked, short, under a token budget, saying what was left out.

Tokens are counted one way everywhere, by `estimate_tokens` (characters / 4, rounded up),
which is close enough for English and JSON and needs no tokenizer. The promise: for any
input and any budget, `estimate_tokens(result.text) <= budget_tokens`.

Items (log templates, metric series) arrive ranked, notable ones (errors, new, surged) first.
The budget goes to the one-line summaries of notable items, then to their first example, then
to the summaries of the others, then to further examples; a last line says what was left
out. So a rare error template is squeezed out neither by frequent info templates nor by
examples. Every line is redacted before it is measured, so redaction cannot push the text
over its budget. `data` keeps every item, complete, for the timeline.
"""

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from investigations.tools.log_templates import (
    mine_templates,
    service_of,
    templates_from_loki_patterns,
)
from investigations.tools.metric_summaries import summarize_series
from investigations.tools.redaction import default_redactor

DEFAULT_BUDGET_TOKENS = 2000
CHARS_PER_TOKEN = 4
MAX_TEMPLATE_CHARS = 300
MAX_LABELS_CHARS = 200
MAX_SERVICES_PER_TEMPLATE = 3
RENDERED_EXAMPLES_PER_TEMPLATE = 2
MAX_RENDERED_EXAMPLE_CHARS = 200


def estimate_tokens(text):
    """The one token count of Rootline: ceil(characters / 4)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass
class Compacted:
    """`text` for the model; `data` (every item, as dicts) for the timeline; how many items
    the text shows and leaves out. Both are redacted; `redactions` counts the secrets found
    on the way, by kind (a caller that redacts again finds none, so it must keep these)."""

    text: str
    data: list[dict]
    shown: int
    left_out: int
    redactions: dict[str, int]


def compact_logs(
    entries,
    *,
    budget_tokens=DEFAULT_BUDGET_TOKENS,
    incident_start_ns=None,
    window_ns=None,
    redactor=None,
    service_label=None,
):
    """Log entries ((ns, line, labels), any streams) as ranked templates under the budget.
    See `log_templates.mine_templates` and `judge` for `incident_start_ns` and `window_ns`;
    lines are counted per service as `log_templates.service_of` names it by the scope's
    `service_label`."""
    redactor = redactor or default_redactor()
    templates, counts = mine_templates(
        entries,
        redactor,
        incident_start_ns=incident_start_ns,
        window_ns=window_ns,
        service_of=lambda labels: service_of(labels, service_label),
    )
    return _render_templates(templates, budget_tokens, redactor, counts)


def compact_log_patterns(
    patterns,
    *,
    budget_tokens=DEFAULT_BUDGET_TOKENS,
    incident_start_ns=None,
    window_ns=None,
    services=(),
    redactor=None,
):
    """Loki's `/patterns` answer, in the same shape as `compact_logs`."""
    redactor = redactor or default_redactor()
    templates, counts = templates_from_loki_patterns(
        patterns,
        redactor,
        incident_start_ns=incident_start_ns,
        window_ns=window_ns,
        services=services,
    )
    return _render_templates(templates, budget_tokens, redactor, counts)


def compact_metrics(
    series, *, baseline, incident, budget_tokens=DEFAULT_BUDGET_TOKENS, redactor=None
):
    """Series ((labels, [(unix seconds, value), ...]) pairs) as change summaries, the most
    changed first, under the budget. Never lists points. Windows are (start, end) seconds."""
    redactor = redactor or default_redactor()
    summaries = summarize_series(series, baseline=baseline, incident=incident)
    if summaries:
        header = (
            f"{len(summaries):,} series; baseline {_datetime(baseline[0])}..{_clock(baseline[1])}"
            f" vs incident {_datetime(incident[0])}..{_clock(incident[1])} UTC;"
            " most changed first (score: robust z of the incident mean against the baseline)"
        )
    else:
        header = "no series matched"
    blocks = [(_series_line(s), [], 0, False) for s in summaries]
    text, shown, text_counts = _pack(header, blocks, _series_left_out, budget_tokens, redactor)
    data = redactor.redact_data([s.as_dict() for s in summaries])
    # The same label is in the text and in the data: count its secret once.
    counts = {
        kind: max(text_counts.get(kind, 0), data.counts.get(kind, 0))
        for kind in text_counts | data.counts
    }
    return Compacted(text, data.value, shown, len(summaries) - shown, counts)


def _series_left_out(hidden):
    return f"+{len(hidden):,} more series not shown"


def _render_templates(templates, budget_tokens, redactor, counts):
    total = sum(t.count for t in templates)
    if templates:
        start = min(t.first_seen_ns for t in templates) / 1e9
        end = max(t.last_seen_ns for t in templates) / 1e9
        header = (
            f"{total:,} log lines in {len(templates):,} templates, {_datetime(start)}.."
            f"{_clock(end)} UTC; errors first, then new and surged, then by count"
        )
    else:
        header = "no log lines"
    blocks = [
        (
            _template_line(t),
            [
                "    e.g. " + _cut(example, MAX_RENDERED_EXAMPLE_CHARS)
                for example in t.examples[:RENDERED_EXAMPLES_PER_TEMPLATE]
            ],
            t.count,
            t.level == "error" or t.new or t.surged,
        )
        for t in templates
    ]

    def left_out(hidden):
        lines = sum(block[2] for block in hidden)
        return f"+{len(hidden):,} more templates, {lines:,} lines not shown"

    text, shown, text_counts = _pack(header, blocks, left_out, budget_tokens, redactor)
    for kind, n in text_counts.items():
        counts[kind] = counts.get(kind, 0) + n
    data = [t.as_dict() for t in templates]
    return Compacted(text, data, shown, len(templates) - shown, counts)


def _pack(header, blocks, left_out, budget_tokens, redactor):
    """(text, items shown, redaction counts) for ranked `blocks` of (summary line, detail
    lines, weight, notable); notable blocks (errors, new, surged) come first.

    Order of spending: summaries of notable blocks, their first details, the other
    summaries, then the remaining details round by round. `left_out(hidden blocks)` words
    the last line; it is longest when all blocks are hidden, which is what is reserved.
    """
    limit = max(int(budget_tokens), 0) * CHARS_PER_TOKEN
    counts = {}
    header = _clean(header, redactor, counts)
    used = len(header)
    reserve = 1 + len(left_out(blocks)) if blocks else 0
    shown = []  # the lines of each shown block
    next_detail = [0] * len(blocks)

    def add_summaries(upto):
        nonlocal used
        while len(shown) < upto:
            line = _clean(blocks[len(shown)][0], redactor, counts)
            room = limit - (0 if len(shown) == len(blocks) - 1 else reserve)
            if used + 1 + len(line) > room:
                return
            shown.append([line])
            used += 1 + len(line)

    def add_details(rounds, room):
        nonlocal used
        for _ in range(rounds):
            for i, lines in enumerate(shown):
                details = blocks[i][1]
                if next_detail[i] < len(details):
                    line = _clean(details[next_detail[i]], redactor, counts)
                    next_detail[i] += 1
                    if used + 1 + len(line) <= room:
                        lines.append(line)
                        used += 1 + len(line)

    notable = next((i for i, block in enumerate(blocks) if not block[3]), len(blocks))
    add_summaries(notable)
    add_details(1, limit - (reserve if notable < len(blocks) else 0))
    add_summaries(len(blocks))
    footer = left_out(blocks[len(shown) :]) if len(shown) < len(blocks) else ""
    most_details = max((len(block[1]) for block in blocks[: len(shown)]), default=0)
    add_details(most_details, limit - (1 + len(footer) if footer else 0))
    lines = [header, *(line for block_lines in shown for line in block_lines)]
    text = "\n".join([*lines, footer] if footer else lines)
    return _cut(text, limit), len(shown), counts


def _clean(line, redactor, counts):
    """One line, redacted: what is measured is what is sent."""
    result = redactor.redact(line.replace("\n", " ⏎ "))
    for kind, n in result.counts.items():
        counts[kind] = counts.get(kind, 0) + n
    return result.text


def _template_line(template):
    flags = [template.level.upper()]
    if template.new:
        flags.append("NEW")
    if template.surged:
        flags.append(f"SURGED x{template.surge_ratio:g}")
    services = sorted(template.services, key=template.services.get, reverse=True)
    where = ",".join(services[:MAX_SERVICES_PER_TEMPLATE])
    if len(services) > MAX_SERVICES_PER_TEMPLATE:
        where += f"+{len(services) - MAX_SERVICES_PER_TEMPLATE}"
    when = f"{_clock(template.first_seen_ns / 1e9)}..{_clock(template.last_seen_ns / 1e9)}"
    return (
        f"[{' '.join(flags)}] {template.count:,} line{'s' * (template.count != 1)} {when} {where}: "
        f"{_cut(template.template, MAX_TEMPLATE_CHARS)}"
    )


def _series_line(s):
    labels = _cut(series_name(s.labels), MAX_LABELS_CHARS)
    if s.state == "present":
        if s.baseline_mean == 0:
            change = f"mean from 0 to {_num(s.incident_mean)}"
        else:
            change = (
                f"mean {_num(s.baseline_mean)} → {_num(s.incident_mean)} "
                f"(x{_num(s.change_ratio)}, {s.absolute_change:+.4g})"
            )
        line = (
            f"{labels}: score {s.score:.1f}; {change}; "
            f"max {_num(s.incident_max)}, last {_num(s.last)}"
        )
        if s.change_started_at is not None:
            line += f"; changed from {_clock(s.change_started_at)}"
    elif s.state == "appeared":
        line = (
            f"{labels}: score {s.score:.1f}; appeared at {_clock(s.change_started_at)} (no baseline"
            f" data); mean {_num(s.incident_mean)}, max {_num(s.incident_max)}, last {_num(s.last)}"
        )
    elif s.state == "disappeared":
        line = (
            f"{labels}: score {s.score:.1f}; no data in the incident window "
            f"(baseline mean {_num(s.baseline_mean)})"
        )
    else:
        line = f"{labels}: no data in either window"
    if s.dropped_points:
        line += f"; {s.dropped_points} NaN/Inf points dropped"
    return line


def series_name(labels):
    """A series as PromQL writes it: name{label="value",...}."""
    name = labels.get("__name__", "")
    rest = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{rest}}}"


def _num(value):
    return "-" if value is None else f"{value:.4g}"


def _clock(seconds):
    return _strftime(seconds, "%H:%M:%S")


def _datetime(seconds):
    return _strftime(seconds, "%Y-%m-%d %H:%M:%S")


def _strftime(seconds, format):
    """A time as text; one beyond what datetime can hold is shown as its number."""
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime(format)
    except (OverflowError, OSError, ValueError):
        return f"{seconds:g}s"


def _cut(text, limit):
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…" if limit > 0 else ""
