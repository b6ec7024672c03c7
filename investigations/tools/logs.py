"""The log tools: LogQL queries, log templates and label discovery, all read-only on Loki."""

from typing import Literal

from pydantic import BaseModel, Field

from investigations.tools.base import (
    Tool,
    ToolResult,
    default_window,
    incident_split,
    room_for,
    summarised_series,
)
from investigations.tools.compaction import compact_log_patterns, compact_logs
from investigations.tools.guardrails import (
    MAX_LOG_LINES,
    MAX_LOG_RANGE,
    check_query,
    check_series_count,
    choose_step,
    line_limit,
    time_range,
)
from investigations.tools.links import explore_link
from investigations.tools.log_templates import LogEntry, service_of

TIME_HELP = (
    "RFC 3339 (2026-11-25T04:00:00Z) or Unix seconds; by default the range runs from the "
    "baseline (normal time before the incident) to the end of the incident window"
)
MAX_LABEL_VALUES_SHOWN = 100


class LogQueryInput(BaseModel):
    query: str = Field(
        description="A LogQL query with a stream selector, e.g. "
        '{namespace="production", service="checkout"} |= "error", or a metric query '
        'such as sum by (service) (count_over_time({namespace="production"} |= "error" [1m]))'
    )
    start: str | None = Field(None, description=TIME_HELP)
    end: str | None = Field(None, description=TIME_HELP)
    limit: int | None = Field(
        None, description=f"most log lines to read, 1..{MAX_LOG_LINES} (default 500)"
    )
    direction: Literal["backward", "forward"] = Field(
        "backward", description="backward reads the newest lines first"
    )


class LogPatternsInput(BaseModel):
    selector: str = Field(
        description='A LogQL stream selector, optionally with filters: {service="payment-api"}'
    )
    start: str | None = Field(None, description=TIME_HELP)
    end: str | None = Field(None, description=TIME_HELP)


class LogLabelsInput(BaseModel):
    label: str | None = Field(
        None, description="a label name to list the values of; leave out to list label names"
    )
    selector: str | None = Field(
        None, description='only streams matching this selector, e.g. {namespace="production"}'
    )
    start: str | None = Field(None, description=TIME_HELP)
    end: str | None = Field(None, description=TIME_HELP)


def _log_range(context, params):
    return time_range(
        params.start,
        params.end,
        default=default_window(context, MAX_LOG_RANGE),
        now=context.now,
        max_range=MAX_LOG_RANGE,
        what="a log query",
    )


async def query_logs(context, params):
    query = check_query(params.query, "LogQL")
    window = _log_range(context, params)
    limit = line_limit(params.limit)
    step = choose_step(window.seconds)
    result = await context.loki.query_range(
        query, window.start, window.end, limit=limit, direction=params.direction, step=step
    )
    link = explore_link("loki", query, window.start, window.end)
    head = f"LogQL {query} over {window.start:%Y-%m-%d %H:%M}..{window.end:%H:%M} UTC"
    if result.result_type == "streams":
        entries = [LogEntry(ts, line, s.labels) for s in result.streams for ts, line in s.entries]
        complete = len(entries) < limit
        if not complete:
            head += (
                f"\nThe line limit ({limit}) was reached: older lines were not read. "
                "Narrow the query, or use log_patterns for counts over every line."
            )
        compacted = compact_logs(
            entries,
            budget_tokens=room_for(head, context),
            service_label=context.scope.get("service_label"),
            **incident_split(context, window, complete),
        )
        compacted.text = f"{head}\n{compacted.text}"
    else:  # a metric query
        check_series_count(len(result.matrix) + len(result.vector), query)
        series = [(s.labels, s.points) for s in result.matrix]
        series += [(s.labels, [(s.timestamp, s.value)]) for s in result.vector]
        compacted = summarised_series(context, head, series)
    return ToolResult(
        text=compacted.text,
        data={"templates" if result.result_type == "streams" else "series": compacted.data},
        query=query,
        links=[link] if link else [],
        redactions=compacted.redactions,
    )


async def log_patterns(context, params):
    selector = check_query(params.selector, "LogQL")
    window = _log_range(context, params)
    patterns = await context.loki.patterns(selector, window.start, window.end)
    if patterns:
        head = f"Loki's detected patterns for {selector}"
        compacted = compact_log_patterns(
            [p._asdict() for p in patterns],
            budget_tokens=room_for(head, context),
            services=_services_in(selector, context.scope.get("service_label")),
            **incident_split(context, window, complete=True),
        )
    else:
        # No pattern ingester (or nothing detected yet): mine the lines ourselves.
        result = await context.loki.query_range(
            selector, window.start, window.end, limit=MAX_LOG_LINES, direction="backward"
        )
        entries = [LogEntry(ts, line, s.labels) for s in result.streams for ts, line in s.entries]
        complete = len(entries) < MAX_LOG_LINES
        head = f"Templates mined from the newest {len(entries):,} lines of {selector}"
        if not complete:
            head += " (the line cap; counts cover those lines only)"
        compacted = compact_logs(
            entries,
            budget_tokens=room_for(head, context),
            service_label=context.scope.get("service_label"),
            **incident_split(context, window, complete),
        )
    link = explore_link("loki", selector, window.start, window.end)
    return ToolResult(
        text=f"{head}\n{compacted.text}",
        data={"templates": compacted.data},
        query=selector,
        links=[link] if link else [],
        redactions=compacted.redactions,
    )


async def log_labels(context, params):
    window = _log_range(context, params)
    selector = check_query(params.selector, "LogQL") if params.selector else None
    if params.label:
        values = await context.loki.label_values(
            params.label, window.start, window.end, query=selector
        )
        what = f"values of label {params.label!r}"
    else:
        values = await context.loki.labels(window.start, window.end, query=selector)
        what = "label names"
    where = f" in streams matching {selector}" if selector else ""
    shown = values[:MAX_LABEL_VALUES_SHOWN]
    text = f"{len(values)} {what}{where}:\n" + "\n".join(shown)
    if len(values) > len(shown):
        text += f"\n+{len(values) - len(shown)} more not shown; narrow with a selector"
    return ToolResult(text=text, data={"values": values}, query=selector or "")


def _services_in(selector, service_label=None):
    """The service a selector names, if any, to attribute pattern counts to."""
    labels = {}
    for part in selector.strip().lstrip("{").split("}")[0].split(","):
        name, eq, value = part.partition("=")
        if eq and not name.endswith(("!", "=~")) and not value.startswith("~"):
            labels[name.strip()] = value.strip().strip('"')
    service = service_of(labels, service_label)
    return (service,) if service else ()


TOOLS = [
    Tool(
        name="query_logs",
        description=(
            "Run a LogQL query on Loki over a time range (default: the incident window). "
            "Log queries come back as log templates (similar lines grouped, with counts, "
            "first/last seen, examples; errors and new or surged templates first); metric "
            "queries (count_over_time, rate, ...) come back as per-series summaries of the "
            "baseline versus the incident. Always give a stream selector with at least one "
            "label matcher. Ranges are capped at 6 hours and 1000 lines."
        ),
        input_model=LogQueryInput,
        run=query_logs,
        backend="loki",
    ),
    Tool(
        name="log_patterns",
        description=(
            "Every log template of the streams matching a selector, with counts over the "
            "whole range rather than a line sample: Loki's own pattern detection where it "
            "has it, else templates mined from the newest 1000 lines. Use it first to see "
            "what a service logs and which error templates appeared or surged."
        ),
        input_model=LogPatternsInput,
        run=log_patterns,
        backend="loki",
    ),
    Tool(
        name="log_labels",
        description=(
            "List Loki's label names, or the values of one label (e.g. service, namespace, "
            "pod), optionally only for streams matching a selector. Use it to find the "
            "right selector before querying."
        ),
        input_model=LogLabelsInput,
        run=log_labels,
        backend="loki",
    ),
]
