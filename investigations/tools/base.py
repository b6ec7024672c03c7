"""What a tool is, and the one way every tool is called.

A tool is data plus one function: a name, a description written for a model, a pydantic
model of its input (whose JSON schema is what the model sees), and an async function that
returns a ToolResult. `call` is the only entry point: it validates the input, runs the
function, turns every failure into an error result the model can act on, redacts secrets
from both the text and the structured data, and holds the text to the token budget. A
tool therefore never raises into an agent loop and never hands a secret to a model.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from investigations.telemetry import TelemetryError
from investigations.tools.compaction import (
    DEFAULT_BUDGET_TOKENS,
    compact_metrics,
    estimate_tokens,
)
from investigations.tools.guardrails import GuardrailError
from investigations.tools.redaction import redact, redact_data

log = logging.getLogger(__name__)


@dataclass
class ToolContext:
    """What a tool may know about the investigation it serves."""

    now: datetime
    incident: tuple[datetime, datetime]
    baseline: tuple[datetime, datetime]
    scope: dict = field(default_factory=dict)
    alerts: list[dict] = field(default_factory=list)
    related_alerts: list[dict] = field(default_factory=list)
    loki: Any = None
    prometheus: Any = None
    budget_tokens: int = DEFAULT_BUDGET_TOKENS


@dataclass
class ToolResult:
    """`text` goes to the model; `data` (structured, complete) goes to the timeline."""

    text: str
    data: Any = None
    is_error: bool = False
    query: str = ""
    links: list[str] = field(default_factory=list)
    redactions: dict[str, int] = field(default_factory=dict)

    @property
    def redacted_count(self):
        return sum(self.redactions.values())


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    input_model: type[BaseModel]
    run: Any  # async (ToolContext, input_model instance) -> ToolResult
    backend: str | None = None  # "loki", "prometheus" or None

    def definition(self):
        """The tool as the Messages API takes it."""
        schema = self.input_model.model_json_schema()
        schema.pop("title", None)
        return {"name": self.name, "description": self.description, "input_schema": schema}


def default_window(context, max_range):
    """Baseline start to incident end, shortened from the start to at most `max_range`."""
    end = context.incident[1]
    return (max(context.baseline[0], end - max_range), end)


def incident_split(context, window, complete):
    """Arguments for the log compactors: where the incident starts, and the range the
    lines cover when the answer was complete (so templates can be judged new)."""
    span = (_ns(window.start), _ns(window.end)) if complete else None
    return {"incident_start_ns": _ns(context.incident[0]), "window_ns": span}


def summarised_series(context, head, series):
    """`series` ((labels, points) pairs) summarised baseline vs incident under `head`:
    a Compacted whose text starts with `head`."""
    compacted = compact_metrics(
        series,
        baseline=tuple(t.timestamp() for t in context.baseline),
        incident=tuple(t.timestamp() for t in context.incident),
        budget_tokens=room_for(head, context),
    )
    compacted.text = f"{head}\n{compacted.text}"
    return compacted


def room_for(head, context):
    """The tokens left for a compacted body under `head` (and the newline after it)."""
    return max(context.budget_tokens - estimate_tokens(head + "\n"), 0)


def _ns(moment):
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def error(message, query=""):
    return ToolResult(text=f"Error: {message}", is_error=True, query=query)


async def call(tool, context, raw_input):
    """Run `tool` on `raw_input` (a dict from the model); always returns a ToolResult."""
    try:
        params = tool.input_model.model_validate(raw_input or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors()
        )
        result = error(f"invalid input for {tool.name}: {problems}")
    else:
        if tool.backend and getattr(context, tool.backend) is None:
            result = error(
                f"{tool.backend.capitalize()} is not configured for this Rootline "
                f"(set ROOTLINE_{tool.backend.upper()}_URL); this evidence cannot be checked"
            )
        else:
            try:
                result = await tool.run(context, params)
            except GuardrailError as exc:
                result = error(f"query refused: {exc}")
            except TelemetryError as exc:
                result = error(str(exc))
            except Exception as exc:
                log.exception("tool %s failed", tool.name)
                result = error(f"{tool.name} failed unexpectedly ({type(exc).__name__}: {exc})")
    return finish(result, context.budget_tokens)


def finish(result, budget_tokens):
    """Redact text and data, then hold the text to the budget (a last resort: tools
    compact their own output to the budget first)."""
    text = redact(result.text)
    data = redact_data(result.data)
    query = redact(result.query)
    # What the tool's compaction already redacted, plus what is found now (the same
    # secret is often in the text and in the data: count it once).
    counts = dict(result.redactions)
    for kind in text.counts.keys() | data.counts.keys():
        found = max(text.counts.get(kind, 0), data.counts.get(kind, 0))
        counts[kind] = counts.get(kind, 0) + found
    result.text, result.data, result.query, result.redactions = (
        text.text,
        data.value,
        query.text,
        counts,
    )
    if estimate_tokens(result.text) > budget_tokens:
        cut = "\n[output cut to the token budget]"
        result.text = result.text[: budget_tokens * 4 - len(cut)] + cut
    return result
