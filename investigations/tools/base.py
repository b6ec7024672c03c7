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
from investigations.tools.compaction import DEFAULT_BUDGET_TOKENS, estimate_tokens
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
    counts = dict(text.counts)
    for kind, n in data.counts.items():
        counts[kind] = max(counts.get(kind, 0), n)
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
