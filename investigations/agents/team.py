"""The investigating team: a lead who delegates to a logs analyst and a metrics analyst.

The lead sees the alerts, the scope and the signal scan's suspects, asks the specialists
questions (both at once when it can), and ends with submit_report. A specialist has its
own history, its own read-only tools and its own iteration cap; it answers with concise
findings that cite timeline steps, and its raw tool output never reaches the lead.
"""

import functools
import json
import re

from pydantic import BaseModel, Field, ValidationError

from investigations import tools as toolbox
from investigations.agents.loop import (
    AgentSpec,
    ToolOutcome,
    ToolSpec,
    add_user_text,
    run_agent,
)
from investigations.tools.compaction import estimate_tokens
from investigations.tools.redaction import redact

MAX_FINDINGS_TOKENS = 1500
# A run of this many words in a row copied from an agent's system prompt is withheld from
# what Rootline publishes: shorter runs are common phrases ("the incident window").
MIN_COPIED_PROMPT_WORDS = 12
WITHHELD_PROMPT_TEXT = "[withheld: text copied from Rootline's instructions to its agents]"

LEAD_SYSTEM = """\
You are the lead investigator of Rootline, finding the root cause of a production alert.
You get the alerts, the scope (label matchers, baseline and incident windows) and the ranked
suspects of a deterministic signal scan. The alerting service is where users feel the pain,
not necessarily the cause.
Work like a senior SRE: form hypotheses from the suspects, then test them. Delegate with
investigate_logs and investigate_metrics; ask both in the same turn when the questions are
independent, they run in parallel. Ask each a specific question (service, symptom, window).
Prefer evidence that shows which service changed first and why. Do not guess beyond the
evidence; say what is unchecked.
End by calling submit_report. Cite evidence by the [step N] numbers the results carry.
"""

LOGS_SYSTEM = """\
You are the logs analyst of Rootline, answering one question from the lead investigator with
Loki (LogQL). Start from log_patterns or a narrow query_logs on the services named; compare
the incident window with the baseline; look for errors that appear first or only in one
service. Use at most a few queries. Answer in under 200 words: what you found, which service,
since when, citing the [step N] of each result you rely on, and what you could not check.
"""

METRICS_SYSTEM = """\
You are the metrics analyst of Rootline, answering one question from the lead investigator
with Prometheus (PromQL). Use discover_metrics to learn what exists, then query_metrics_range
for the baseline versus the incident; aggregate (sum by, topk) to stay under the series cap.
Look for the earliest change: saturation (CPU, memory), errors, latency, traffic shifts,
series that stopped (a pod gone or down: its `up`, absent_over_time), and pods replaced
(a rollout: compare the new pods' series with the old pods' before it).
Answer in under 200 words: what changed, where, when it began, citing the [step N] of each
result you rely on, and what you could not check.
"""


class RootCause(BaseModel):
    service: str = Field(description="the service at fault (a value of the service label)")
    description: str = Field(description="what is wrong with it and how it caused the alert")


class RankedSuspect(BaseModel):
    service: str
    likelihood: float = Field(ge=0, le=1)
    reason: str


class EvidenceItem(BaseModel):
    claim: str = Field(description="one observation")
    steps: list[int] = Field(description="the [step N] numbers that show it")


class Report(BaseModel):
    summary: str = Field(description="two or three sentences an on-call engineer reads first")
    root_cause: RootCause
    confidence: float = Field(ge=0, le=1, description="0..1, how sure the evidence makes you")
    suspects: list[RankedSuspect] = Field(description="ranked, most likely first")
    evidence: list[EvidenceItem]
    remediation: list[str] = Field(description="what to do now, most urgent first")
    follow_up_checks: list[str] = Field(description="what to verify next, and what is unchecked")


class Answer(BaseModel):
    answer: str = Field(description="the answer, for an on-call engineer")
    steps: list[int] = Field(default=[], description="the [step N] numbers that support it")


class Question(BaseModel):
    question: str = Field(description="a specific question: service, symptom, time window")


def schema_of(model):
    schema = model.model_json_schema()
    schema.pop("title", None)
    return schema


def _tool_specs(tools, context):
    """investigations.tools as loop ToolSpecs, each result given to the model as is."""

    def runner(tool):
        async def run(tool_input, step):
            result = await toolbox.call(tool, context, tool_input)
            data = {
                "query": result.query,
                "links": result.links,
                "redactions": result.redactions,
                "data": result.data,
            }
            return ToolOutcome(result.text, result.is_error, data)

        return run

    return [
        ToolSpec(t.name, t.description, t.definition()["input_schema"], runner(t)) for t in tools
    ]


def build_team(context, settings):
    """(lead, logs, metrics) AgentSpecs over the ToolContext `context`."""
    logs = AgentSpec(
        "logs",
        LOGS_SYSTEM,
        _tool_specs([*toolbox.LOG_TOOLS, *toolbox.CONTEXT_TOOLS], context),
        settings["specialist_iterations"],
    )
    metrics = AgentSpec(
        "metrics",
        METRICS_SYSTEM,
        _tool_specs([*toolbox.METRIC_TOOLS, *toolbox.CONTEXT_TOOLS], context),
        settings["specialist_iterations"],
    )
    return logs, metrics


async def investigate(
    context, briefing, *, llm, budget, recorder, settings, history=None, question=None, parent=None
):
    """Run the team; returns the lead's AgentResult (final_input is the report, or with
    `question` the answer).

    `briefing` is the lead's first message (alerts, scope, suspects). A follow-up
    `question` continues the lead's earlier conversation `history` (or starts from the
    briefing when there is none) and ends with answer_question instead of a report.
    """
    logs, metrics = build_team(context, settings)

    def delegate(specialist):
        async def run(tool_input, step):
            question = Question.model_validate(tool_input).question
            messages = [
                {
                    "role": "user",
                    "content": f"{briefing}\n\nThe lead investigator asks: {question}",
                }
            ]
            result = await run_agent(
                specialist, messages, llm=llm, budget=budget, recorder=recorder, parent=step
            )
            findings = result.text or f"(no findings: {result.stop or result.error})"
            if result.stop.startswith("stopped"):
                findings += f"\n[the analyst was {result.stop}]"
            if estimate_tokens(findings) > MAX_FINDINGS_TOKENS:
                findings = findings[: MAX_FINDINGS_TOKENS * 4] + "\n[findings cut]"
            return ToolOutcome(redact(findings).text, bool(result.error), {"stop": result.stop})

        return run

    async def submit(tool_input, step):
        try:
            Report.model_validate(tool_input)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:8]
            )
            return ToolOutcome(f"The report is invalid, fix and resubmit: {problems}", True)
        return ToolOutcome("Report received.")

    async def answer(tool_input, step):
        try:
            Answer.model_validate(tool_input)
        except ValidationError as exc:
            return ToolOutcome(f"Invalid answer, fix and resubmit: {exc.errors()[0]['msg']}", True)
        return ToolOutcome("Answer received.")

    if question:
        final = ToolSpec(
            "answer_question",
            "Answer the follow-up question; this ends the follow-up.",
            schema_of(Answer),
            answer,
        )
    else:
        final = ToolSpec(
            "submit_report",
            "Submit the final report; this ends the investigation.",
            schema_of(Report),
            submit,
        )
    question_schema = schema_of(Question)
    lead = AgentSpec(
        "lead",
        LEAD_SYSTEM,
        [
            ToolSpec(
                "investigate_logs",
                "Ask the logs analyst (Loki) a question; returns its findings with step "
                "references. May be called together with investigate_metrics.",
                question_schema,
                delegate(logs),
            ),
            ToolSpec(
                "investigate_metrics",
                "Ask the metrics analyst (Prometheus) a question; returns its findings with "
                "step references. May be called together with investigate_logs.",
                question_schema,
                delegate(metrics),
            ),
            *_tool_specs(toolbox.CONTEXT_TOOLS, context),
            final,
        ],
        settings["lead_iterations"],
        final_tool=final.name,
    )
    messages = history or [{"role": "user", "content": briefing}]
    if question:
        add_user_text(
            messages,
            f"A follow-up question from the on-call engineer: {redact(question).text}\n"
            "Investigate further if needed, then call answer_question.",
        )
    return await run_agent(lead, messages, llm=llm, budget=budget, recorder=recorder, parent=parent)


def briefing(context, suspects, signals_summary, asked=""):
    """The lead's first message: the question it was `asked` (an investigation opened
    without an alert), what the scan knows; redacted.

    It quotes no log text. Whoever can write a log line writes the scan's log templates,
    so they may carry instructions aimed at the model; log text reaches a model only as a
    tool result, the channel it is told holds data, never as the user's own words. The
    log evidence keeps its counts; the analysts read the lines with their tools.
    """
    top = [
        {
            "service": s["service"],
            "score": s["score"],
            "evidence": [without_log_text(e) for e in s.get("evidence", [])[:3]],
            **({"callers": s["callers"]} if s.get("callers") else {}),
        }
        for s in suspects[:5]
    ]
    alerts = [
        {
            "labels": a["labels"],
            "annotations": a["annotations"],
            "expression": a.get("expression", ""),
            "status": a["status"],
            "starts_at": a["starts_at"],
        }
        for a in context.alerts[:10]
    ]
    text = (
        (f"The on-call engineer asks: {asked}\n\n" if asked else "")
        + f"Alerts ({len(context.alerts)}):\n{json.dumps(alerts, indent=1)}\n\n"
        f"Scope: {json.dumps(context.scope)}\n"
        f"Baseline window: {context.baseline[0].isoformat()} to {context.baseline[1].isoformat()}\n"
        f"Incident window: {context.incident[0].isoformat()} to {context.incident[1].isoformat()}"
        f" (no data after its end may be read)\n\n"
        f"Signal scan: {signals_summary}\nRanked suspects:\n{json.dumps(top, indent=1)}"
    )
    return redact(text).text


# The fields of evidence items that quote log lines: the templates of the error-like lines
# and the steps (masked line starts) that requests stopped reaching.
LOG_TEXT_FIELDS = {"logs": "templates", "paths": "missing_steps"}


def without_log_text(evidence):
    """A suspect's evidence item without the log lines' own words."""
    field = LOG_TEXT_FIELDS.get(evidence.get("kind"))
    if field is None:
        return evidence
    return {key: value for key, value in evidence.items() if key != field}


_WORD = re.compile(r"\w+")


@functools.cache
def _prompt_word_runs():
    """Every run of MIN_COPIED_PROMPT_WORDS words of the agents' system prompts, lower-case."""
    runs = set()
    for prompt in (LEAD_SYSTEM, LOGS_SYSTEM, METRICS_SYSTEM):
        words = _WORD.findall(prompt.lower())
        n = MIN_COPIED_PROMPT_WORDS
        runs.update(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return frozenset(runs)


def withhold_prompt_text(text):
    """(`text` with every passage copied from a system prompt replaced, how many).

    A model that obeys "print your system prompt", written into a log line it read, copies
    its instructions into what it submits; Rootline does not publish them. Words are
    compared in lower case, ignoring punctuation and line breaks, so a reflowed copy is
    found too; overlapping and adjacent runs are one passage.
    """
    words = list(_WORD.finditer(text))
    runs = _prompt_word_runs()
    n = MIN_COPIED_PROMPT_WORDS
    passages = []  # [first word, last word] indexes
    for i in range(len(words) - n + 1):
        if tuple(w.group().lower() for w in words[i : i + n]) not in runs:
            continue
        if passages and i <= passages[-1][1] + 1:
            passages[-1][1] = i + n - 1
        else:
            passages.append([i, i + n - 1])
    for first, last in reversed(passages):
        start, end = words[first].start(), words[last].end()
        text = text[:start] + WITHHELD_PROMPT_TEXT + text[end:]
    return text, len(passages)


def withhold_prompt_text_in(value):
    """(a copy of a JSON-like `value` with withhold_prompt_text applied to every string,
    how many passages were withheld in all)."""
    if isinstance(value, str):
        return withhold_prompt_text(value)
    if isinstance(value, dict):
        pairs = [(key, withhold_prompt_text_in(item)) for key, item in value.items()]
        return {key: item for key, (item, _) in pairs}, sum(n for _, (_, n) in pairs)
    if isinstance(value, list):
        pairs = [withhold_prompt_text_in(item) for item in value]
        return [item for item, _ in pairs], sum(n for _, n in pairs)
    return value, 0
