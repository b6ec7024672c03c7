"""The agent loop: one model conversation with tools, until it answers or a budget ends it.

It knows nothing of Django. It gets an AgentSpec (system prompt, tools, iteration cap,
the tool that ends it), the shared Budget, an LLM and a Recorder, and returns an
AgentResult. Every turn and every tool call is handed to the recorder when it starts and
when it ends. Tool calls asked for in one turn run concurrently. Every stop reason the
SDK defines is handled:

- tool_use: run the tools, send their results (failures as error results), go on;
- end_turn / stop_sequence: a specialist's answer is its findings; an agent that must end
  with a tool (the lead's submit_report) is asked for it once, and forced when budgets end;
- max_tokens: a cut-off tool call is dropped and the model asked once to be briefer;
- pause_turn: the turn is sent back as is so the model can go on;
- refusal: the agent stops and says so;
- model_context_window_exceeded: older tool results are summarised and the turn retried once.
"""

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from investigations.agents.llm import LLMUnavailable

SUMMARY_CHARS = 300
KEEP_RECENT_MESSAGES = 2


class Cancelled(Exception):
    """The investigation was cancelled; the loop stops at the next step."""


@dataclass
class ToolOutcome:
    text: str
    is_error: bool = False
    data: Any = None


@dataclass
class ToolSpec:
    name: str
    description: str
    input_schema: dict
    run: Any  # async (input dict, step handle) -> ToolOutcome

    def definition(self):
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema,
        }


@dataclass
class AgentSpec:
    name: str  # "lead", "logs", "metrics"
    system: str
    tools: list[ToolSpec]
    max_iterations: int
    final_tool: str | None = None  # the tool whose call ends the conversation


@dataclass
class AgentResult:
    text: str = ""  # the last thing the model wrote
    final_input: dict | None = None  # the final tool's input, when it was called
    stop: str = ""  # why the loop ended
    error: str = ""
    messages: list = field(default_factory=list)


class Budget:
    """What one investigation may spend, shared by all its agents."""

    def __init__(self, tokens, seconds, compact_at_tokens):
        self.tokens_left = tokens
        self.deadline = time.monotonic() + seconds
        self.compact_at_tokens = compact_at_tokens
        self.usage = [0, 0, 0, 0]  # input, output, cache write, cache read
        self.turns = 0

    def charge(self, usage):
        spent = [
            usage.input_tokens or 0,
            usage.output_tokens or 0,
            getattr(usage, "cache_creation_input_tokens", 0) or 0,
            getattr(usage, "cache_read_input_tokens", 0) or 0,
        ]
        self.usage = [a + b for a, b in zip(self.usage, spent, strict=True)]
        self.tokens_left -= sum(spent)
        self.turns += 1

    def exhausted(self):
        if self.tokens_left <= 0:
            return "the token budget"
        if time.monotonic() >= self.deadline:
            return "the time budget"
        return None


def estimate_tokens(messages):
    return len(json.dumps(messages, default=str)) // 4


def summarise_old_results(messages, keep=KEEP_RECENT_MESSAGES):
    """Shorten the tool results of all but the last `keep` messages; returns how many.

    A result keeps its first SUMMARY_CHARS characters (its step reference and headline).
    """
    shortened = 0
    for message in messages[:-keep] if keep else messages:
        if message["role"] != "user" or not isinstance(message["content"], list):
            continue
        for block in message["content"]:
            content = block.get("content") if block.get("type") == "tool_result" else None
            if isinstance(content, str) and len(content) > SUMMARY_CHARS + 80:
                left_out = len(content) - SUMMARY_CHARS
                block["content"] = (
                    content[:SUMMARY_CHARS]
                    + f"\n[older result summarised: {left_out // 4} tokens left out]"
                )
                shortened += 1
    return shortened


def add_user_text(messages, text):
    """Add a user instruction, merged into the last user message if that is where we are."""
    if messages and messages[-1]["role"] == "user":
        content = messages[-1]["content"]
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        messages[-1]["content"] = [*content, {"type": "text", "text": text}]
    else:
        messages.append({"role": "user", "content": text})


async def run_agent(spec, messages, *, llm, budget, recorder, parent=None):
    """Run one agent on `messages` (its history; extended in place) until it is done."""
    tools = {tool.name: tool for tool in spec.tools}
    definitions = [tool.definition() for tool in spec.tools]
    iterations = 0
    asked_for_final = cut_off = forced = context_retried = False
    last_text = ""
    while True:
        if await recorder.cancelled():
            raise Cancelled
        tool_choice = None
        limit = budget.exhausted() or (
            "its iteration cap" if iterations >= spec.max_iterations else None
        )
        if limit:
            if not spec.final_tool or forced:
                return AgentResult(last_text, stop=f"stopped by {limit}", messages=messages)
            add_user_text(
                messages,
                f"You have reached {limit}. Call {spec.final_tool} now with what you have "
                "found so far; say what remains unchecked.",
            )
            tool_choice = {"type": "tool", "name": spec.final_tool}
            forced = True
        if estimate_tokens(messages) > budget.compact_at_tokens:
            summarise_old_results(messages)
        turn = await recorder.turn_started(spec.name, parent, iterations + 1)
        try:
            # A turn ends by the budget's deadline; the turn forced after it gets one
            # timeout's worth of time, retries included.
            deadline = time.monotonic() + llm.timeout_seconds if forced else budget.deadline
            answer = await llm.create(
                system=spec.system,
                tools=definitions,
                messages=messages,
                tool_choice=tool_choice,
                deadline=deadline,
            )
        except LLMUnavailable as exc:
            await recorder.turn_ended(turn, error=str(exc))
            raise
        except asyncio.CancelledError:  # a sibling analyst failed: record, then stop
            await recorder.turn_ended(turn, error="cancelled")
            raise
        iterations += 1
        message = answer.message
        budget.charge(message.usage)
        text = "\n".join(b.text for b in message.content if b.type == "text").strip()
        last_text = text or last_text
        await recorder.turn_ended(turn, answer=answer, text=text)
        content = [b.model_dump(mode="json", exclude_none=True) for b in message.content]
        stop = message.stop_reason
        if stop == "max_tokens":
            # A tool call cut off mid-input cannot be run: drop it, ask for brevity once.
            content = [b for b in content if b["type"] == "text"] or [
                {"type": "text", "text": "(cut off)"}
            ]
            messages.append({"role": "assistant", "content": content})
            if cut_off:
                return AgentResult(last_text, stop="cut off twice at max_tokens", messages=messages)
            cut_off = True
            add_user_text(messages, "Your reply was cut off at the token limit. Be briefer.")
            continue
        messages.append({"role": "assistant", "content": content})
        uses = [b for b in message.content if b.type == "tool_use"]
        final = next((b for b in uses if b.name == spec.final_tool), None)
        if final is not None:
            problem = await _check_final(tools[final.name], final, recorder, spec, parent)
            if problem is None:
                _close_open_uses(messages, uses, "Received.")
                return AgentResult(
                    last_text, final_input=final.input, stop="final", messages=messages
                )
            _close_open_uses(messages, uses, problem, error_for=final.id)
            continue
        if stop == "tool_use" and uses:
            results = await _all_or_none(
                [_run_tool(tools, use, spec, recorder, parent) for use in uses]
            )
            messages.append({"role": "user", "content": results})
            continue
        if stop == "pause_turn":
            continue  # send the paused turn back as is; the model goes on from there
        if stop == "refusal":
            return AgentResult(
                last_text, stop="refusal", error="the model declined", messages=messages
            )
        if stop == "model_context_window_exceeded":
            if context_retried or not summarise_old_results(messages, keep=0):
                return AgentResult(last_text, stop="context window exceeded", messages=messages)
            context_retried = True
            messages.pop()
            continue
        # end_turn or stop_sequence: the answer, unless a final tool is still owed
        if not spec.final_tool:
            return AgentResult(last_text, stop="answered", messages=messages)
        if asked_for_final:
            return AgentResult(
                last_text,
                stop="no report",
                error=f"the model ended without calling {spec.final_tool}",
                messages=messages,
            )
        asked_for_final = True
        add_user_text(messages, f"Now call {spec.final_tool} with your conclusions.")


async def _all_or_none(calls):
    """Run `calls` concurrently; if one raises (the model unreachable, a cancellation),
    cancel the others, let them record that they stopped, and raise."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _run_tool(tools, use, spec, recorder, parent):
    step = await recorder.tool_started(spec.name, parent, use.name, use.input)
    tool = tools.get(use.name)
    if tool is None:
        outcome = ToolOutcome(f"Error: there is no tool {use.name!r}", is_error=True)
    else:
        try:
            outcome = await tool.run(use.input, step)
        except (Cancelled, LLMUnavailable, asyncio.CancelledError) as exc:
            why = "cancelled" if not isinstance(exc, LLMUnavailable) else str(exc)
            await recorder.tool_ended(step, ToolOutcome(f"stopped: {why}", is_error=True))
            raise
        except Exception as exc:  # a tool bug goes back to the model as an error result
            outcome = ToolOutcome(f"Error: {use.name} failed ({type(exc).__name__})", True)
    await recorder.tool_ended(step, outcome)
    return {
        "type": "tool_result",
        "tool_use_id": use.id,
        "content": f"[step {step.sequence}] {outcome.text}",
        "is_error": outcome.is_error,
    }


async def _check_final(tool, use, recorder, spec, parent):
    """Run the final tool (it validates the report); None when accepted, else the error."""
    step = await recorder.tool_started(spec.name, parent, use.name, use.input)
    outcome = await tool.run(use.input, step)
    await recorder.tool_ended(step, outcome)
    return outcome.text if outcome.is_error else None


def _close_open_uses(messages, uses, text, error_for=None):
    """Answer every tool call of the last turn, so the history stays valid."""
    messages.append(
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": use.id,
                    "content": text if use.id == error_for or error_for is None else "Not run.",
                    "is_error": use.id == error_for,
                }
                for use in uses
            ],
        }
    )
