"""The metric tools: PromQL instant and range queries and metric discovery, read-only."""

from collections import Counter

from pydantic import BaseModel, Field

from investigations.telemetry import TelemetryError
from investigations.tools.base import Tool, ToolResult, default_window, summarised_series
from investigations.tools.compaction import estimate_tokens, series_name
from investigations.tools.guardrails import (
    MAX_METRIC_RANGE,
    MAX_SERIES,
    QUERY_TIMEOUT_SECONDS,
    check_query,
    check_series_count,
    choose_step,
    parse_time,
    time_range,
)
from investigations.tools.links import explore_link

TIME_HELP = "RFC 3339 (2026-11-25T04:00:00Z) or Unix seconds"
MAX_METRICS_LISTED = 60


class InstantQueryInput(BaseModel):
    query: str = Field(
        description="A PromQL expression, e.g. "
        'sum by (service) (rate(http_requests_total{code=~"5.."}[5m]))'
    )
    time: str | None = Field(None, description=f"{TIME_HELP}; default the end of the incident")


class RangeQueryInput(BaseModel):
    query: str = Field(description="A PromQL expression; aggregate it to keep under 200 series")
    start: str | None = Field(
        None, description=f"{TIME_HELP}; default the start of the baseline window"
    )
    end: str | None = Field(None, description=f"{TIME_HELP}; default the end of the incident")
    step: int | None = Field(
        None, description="seconds between points; default 60 to 300 chosen from the range"
    )


class DiscoverInput(BaseModel):
    selector: str = Field(
        description='A series selector that scopes the search, e.g. {namespace="production"} '
        'or {service="checkout"}; a metric name alone also works'
    )
    label: str | None = Field(
        None, description="list the values of this label instead of the metric names"
    )


async def query_metrics(context, params):
    query = check_query(params.query, "PromQL")
    at = parse_time(params.time, "time") if params.time else context.incident[1]
    at = min(at, context.now)
    result = await context.prometheus.query(query, at, timeout=QUERY_TIMEOUT_SECONDS)
    samples = sorted(result.vector, key=lambda s: _sort_value(s.value), reverse=True)
    check_series_count(len(samples) + len(result.matrix), query)
    head = f"PromQL {query} at {at:%Y-%m-%d %H:%M:%S} UTC"
    if result.result_type in ("scalar", "string"):
        lines = [f"{result.result_type}: {result.scalar[1] if result.scalar else 'none'}"]
        data = {"scalar": result.scalar[1] if result.scalar else None}
    elif result.matrix:  # a range selector at one instant: summarise each series' points
        return _summarised(context, query, head, [(s.labels, s.points) for s in result.matrix])
    else:
        lines = [f"{series_name(s.labels)} {_number(s.value)}" for s in samples] or ["no series"]
        data = {"samples": [{"labels": s.labels, "value": s.value} for s in samples]}
        head += f": {len(samples)} series, highest first"
    text, left = _fit(head, lines, context)
    if left:
        text += f"\n+{left} more series not shown; aggregate or add matchers"
    link = explore_link("prometheus", query, at, at)
    return ToolResult(
        text=_with_warnings(text, result.warnings, context),
        data=data,
        query=query,
        links=[link] if link else [],
    )


async def query_metrics_range(context, params):
    query = check_query(params.query, "PromQL")
    window = time_range(
        params.start,
        params.end,
        default=default_window(context, MAX_METRIC_RANGE),
        now=context.now,
        max_range=MAX_METRIC_RANGE,
        what="a metric range query",
    )
    step = choose_step(window.seconds, params.step)
    result = await context.prometheus.query_range(
        query, window.start, window.end, step, timeout=QUERY_TIMEOUT_SECONDS
    )
    check_series_count(len(result.matrix), query)
    head = (
        f"PromQL {query} over {window.start:%Y-%m-%d %H:%M}..{window.end:%H:%M} UTC, step {step}s"
    )
    tool_result = _summarised(context, query, head, [(s.labels, s.points) for s in result.matrix])
    tool_result.text = _with_warnings(tool_result.text, result.warnings, context)
    link = explore_link("prometheus", query, window.start, window.end)
    tool_result.links = [link] if link else []
    return tool_result


def _summarised(context, query, head, series):
    compacted = summarised_series(context, head, series)
    return ToolResult(
        text=compacted.text,
        data={"series": compacted.data},
        query=query,
        redactions=compacted.redactions,
    )


async def discover_metrics(context, params):
    selector = check_query(params.selector, "PromQL")
    start, end = default_window(context, MAX_METRIC_RANGE)
    if params.label:
        values = await context.prometheus.label_values(params.label, start, end, match=selector)
        head = f"{len(values)} values of label {params.label!r} on series matching {selector}"
        text, left = _fit(head, values, context)
        if left:
            text += f"\n+{left} more values not shown"
        return ToolResult(text=text, data={"values": values}, query=selector)
    series = await context.prometheus.series(selector, start, end, limit=MAX_SERIES * 50)
    names = Counter(labels.get("__name__", "") for labels in series)
    label_names = {}
    for labels in series:
        label_names.setdefault(labels.get("__name__", ""), set()).update(labels)
    metadata = {}
    if names:
        try:
            metadata = await context.prometheus.metadata()
        except TelemetryError:  # a nicety; some stores (Thanos, remote write) have none
            metadata = {}
    lines = []
    for name, count in names.most_common():
        about = metadata.get(name, [{}])[0]
        kind = about.get("type", "")
        description = about.get("help", "")
        labels = ", ".join(sorted(label_names[name] - {"__name__"}))
        line = f"{name} ({count} series{', ' + kind if kind else ''}) labels: {labels}"
        if description:
            line += f" -- {description[:120]}"
        lines.append(line)
    head = (
        f"{len(names)} metrics with {len(series)} series matching {selector} in "
        f"{start:%Y-%m-%d %H:%M}..{end:%H:%M} UTC, most series first"
    )
    text, left = _fit(head, lines[:MAX_METRICS_LISTED], context)
    left += max(len(lines) - MAX_METRICS_LISTED, 0)
    if left:
        text += f"\n+{left} more metrics not shown; narrow the selector"
    data = {
        "metrics": [
            {"name": name, "series": count, "labels": sorted(label_names[name] - {"__name__"})}
            for name, count in names.most_common()
        ]
    }
    return ToolResult(text=text, data=data, query=selector)


def _fit(head, lines, context):
    """`head` and as many of `lines` as fit the budget (keeping room for a last line);
    returns (text, how many lines were left out)."""
    budget = context.budget_tokens - 20  # the "+N more" line
    text = head
    for shown, line in enumerate(lines):
        candidate = f"{text}\n{line}"
        if estimate_tokens(candidate) > budget:
            return text, len(lines) - shown
        text = candidate
    return text, 0


def _with_warnings(text, warnings, context):
    if not warnings:
        return text
    note = "\nServer warnings: " + "; ".join(str(w)[:200] for w in warnings[:3])
    if estimate_tokens(text + note) <= context.budget_tokens:
        return text + note
    return text


def _number(value):
    return f"{value:.4g}"


def _sort_value(value):
    return value if value == value else float("-inf")  # NaN last


TOOLS = [
    Tool(
        name="query_metrics",
        description=(
            "Run an instant PromQL query (default: at the end of the incident window) and "
            "get each series' value, highest first. Aggregate (sum by, topk) to keep under "
            "200 series."
        ),
        input_model=InstantQueryInput,
        run=query_metrics,
        backend="prometheus",
    ),
    Tool(
        name="query_metrics_range",
        description=(
            "Run a PromQL range query (default: from the baseline window through the "
            "incident) and get each series summarised, never raw points: baseline mean vs "
            "incident mean, max, last value, change ratio and when the change began, the "
            "most changed series first. Ranges are capped at 24 hours and 200 series; the "
            "step (60 to 300 s) is chosen from the range."
        ),
        input_model=RangeQueryInput,
        run=query_metrics_range,
        backend="prometheus",
    ),
    Tool(
        name="discover_metrics",
        description=(
            "Find which metrics exist for a scope: the metric names with series counts, "
            "types, help text and label names of the series matching a selector; or, given "
            "`label`, that label's values. Use it before writing PromQL for an unfamiliar "
            "service."
        ),
        input_model=DiscoverInput,
        run=discover_metrics,
        backend="prometheus",
    ),
]
