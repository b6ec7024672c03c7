"""Agent overhead: what the team's loop adds to the model's own latency, what asking the two
analysts at once saves, and how many input tokens the team sends next to a naive agent.

    .venv/bin/python bench/agent_overhead.py [--latency 0.5] [--runs 5] [--write-doc]

What it does and how to read the figures: DOC_INTRO below (also written to the doc).
"""

import argparse
import asyncio
import contextlib
import contextvars
import json
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rca_site.settings")
os.environ.setdefault("SECRET_KEY", "bench-secret-key-" + "x" * 40)
os.environ.setdefault("ROOTLINE_LOG_LEVEL", "WARNING")
# The team runs against the scripted server (the client is made below, per run).
os.environ["ANTHROPIC_API_KEY"] = "bench"

import django  # noqa: E402

django.setup()

import anthropic  # noqa: E402
import scripted_messages as scripted  # noqa: E402
from benchdoc import git_describe, replace_section  # noqa: E402
from case_pack import start_prometheus  # noqa: E402
from django.conf import settings  # noqa: E402
from loki_stub import LogStore, serve  # noqa: E402
from webhook_load import machine  # noqa: E402

from alerts.models import Alert  # noqa: E402
from investigations import runner, signals  # noqa: E402
from investigations import tools as toolbox  # noqa: E402
from investigations.agents import team  # noqa: E402
from investigations.agents.llm import LLM  # noqa: E402
from investigations.agents.loop import AgentSpec, Budget, ToolOutcome, ToolSpec, run_agent  # noqa: E402
from investigations.scope import derive_scope  # noqa: E402
from investigations.telemetry import (  # noqa: E402
    BackendConfig,
    LokiClient,
    PrometheusClient,
    clear_cache,
)
from investigations.tools.context import alert_dict  # noqa: E402
from tests.shared import SHARED_DIR  # noqa: E402

DOC_PATH = ROOT / "docs" / "BENCHMARKS.md"
SECTION_TITLE = "## Agent overhead\n"
PACK_DIR = SHARED_DIR / "data" / "rca-cases" / "nezha-tt-0129"
# A CPU contention of ts-contacts-service, with a full hour of recorded data before it (the
# pack's first cases have none: its series start at 08:41, their baselines before that).
CASE_ID = "nezha-tt-20230129T133154Z"
AS_OF = timedelta(minutes=5)  # as bench/rca_accuracy.py: the alert's startsAt + 5 minutes
BYTES_PER_TOKEN = 4
CONTEXT_WINDOW_TOKENS = 200_000
TARGET_OVERHEAD_RATIO = 1.15
TARGET_SPEED_UP = 1.6
TARGET_TOKEN_RATIO = 0.4
TURN = "llm_turn"
DELEGATIONS = ("investigate_logs", "investigate_metrics")
LEAD, LOGS, METRICS, NAIVE = "lead investigator", "logs analyst", "metrics analyst", "single agent"
STEP_REFERENCE = re.compile(r"\[step (\d+)\]")

DOC_INTRO = """\
`bench/agent_overhead.py` runs one scripted investigation of the agent team
(investigations/agents/team.py) through the real `anthropic` SDK against
bench/scripted_messages.py, whose every model turn takes the same fixed latency. The tools
are real: TrainTicket case `{case}` of nezha-tt-0129, its metrics backfilled into a real
Prometheus (as bench/rca_accuracy.py does), its logs served by bench/loki_stub.py, the
investigation as of the alert's startsAt + 5 minutes in the scope Rootline derives, the
lead's briefing built from a real signal scan. Turns and tool calls are recorded in memory:
the timeline's database writes are not part of these figures.

The scenario: the lead asks both analysts in one turn, then asks the metrics analyst a
follow-up, then submits its report (3 turns); the logs analyst runs log_patterns, query_logs
twice and answers (4 turns); the metrics analyst runs discover_metrics and
query_metrics_range and answers (3 turns), then on the follow-up two query_metrics_range
and answers (3 turns). The *critical path* is the longest chain of model turns that must
follow one another (the lead's turns, the longer analyst of the first question, the
follow-up) times the latency; the *overhead ratio* is wall time over it. *Asked in turn* is
the same scenario with the lead asking the analysts in two turns: the same turns plus that
one extra lead turn. *Input tokens* are the sizes of the request bodies the server received
/ 4 (system prompt, tools and history: what the API counts as input + cache write + cache
read), summed over every request of the investigation. The *naive single agent* is a
textbook tool-use loop: one agent with every tool and submit_report, the same briefing, the
team's backend tool calls one a turn, then the same report; each tool result is the
backends' raw JSON answers to that call (recorded from the team's own requests: unredacted,
uncompacted), and the whole history is sent every turn. Its calls come in the order of the
team asking in turn (the logs analyst's, then the metrics analyst's): the order matters, as
an early large result is sent again every turn after it, and the analysts asked together
interleave theirs by timing (in trials the naive total ranged from 348,000 tokens in this
order to 472,000). Cells are the
median [min-max] over the runs; a first, unmeasured run warms up and records the backend
answers.
"""


@dataclass(eq=False)
class Step:
    """A model turn or a tool call, as the loop reported it."""

    sequence: int
    agent: str
    name: str  # TURN or the tool's name
    parent: "Step | None"  # the delegation an analyst's step belongs to
    after: "Step | None"  # for a tool call: the turn that asked for it
    input: dict
    started: float
    ended: float | None = None
    is_error: bool = False
    text: str = ""  # a tool call's result, as the model got it
    answers: list = field(default_factory=list)  # backend JSON answers read by this call

    @property
    def seconds(self):
        return self.ended - self.started


# The tool call running in this task, so that backend answers are kept on it.
CURRENT_STEP = contextvars.ContextVar("current_step", default=None)


class StepLog:
    """A recorder for run_agent that keeps every step in a list, in order, in memory."""

    def __init__(self):
        self.steps = []
        self._last_turn = {}

    def _add(self, agent, name, parent, after, input):
        step = Step(len(self.steps) + 1, agent, name, parent, after, input, time.monotonic())
        self.steps.append(step)
        return step

    async def cancelled(self):
        return False

    async def turn_started(self, agent, parent, iteration):
        step = self._add(agent, TURN, parent, None, {"iteration": iteration})
        self._last_turn[agent, id(parent)] = step
        return step

    async def turn_ended(self, step, answer=None, text="", error=""):
        step.ended, step.is_error = time.monotonic(), bool(error)

    async def tool_started(self, agent, parent, name, input):
        step = self._add(agent, name, parent, self._last_turn[agent, id(parent)], input)
        CURRENT_STEP.set(step)
        return step

    async def tool_ended(self, step, outcome):
        step.ended, step.is_error, step.text = time.monotonic(), outcome.is_error, outcome.text


def keep_answers(client):
    """Make a telemetry client keep each JSON answer on the tool call that asked for it."""
    backend = client._backend  # the one place every request of a client goes through
    get = backend.get

    async def get_and_keep(path, params=()):
        answer = await get(path, params)
        if (step := CURRENT_STEP.get()) is not None:
            step.answers.append(answer)
        return answer

    backend.get = get_and_keep
    return client


# The scenario.

LOGS_QUESTION = (
    "Which train-ticket services log new errors or exceptions in the incident window, "
    "compared with the baseline hour, and which began first?"
)
METRICS_QUESTION = (
    "Which train-ticket service changed first in CPU, memory, latency or request rate "
    "around 13:30 UTC, against the baseline hour?"
)
FOLLOW_UP_QUESTION = (
    "Is ts-contacts-service's CPU saturation a cause or a symptom: did its server latency "
    "rise, and did its request rate change (a traffic surge would make it a symptom)?"
)
LOGS_FINDINGS = (
    "Error templates appear from 13:30:10 UTC, none in the baseline hour: ts-travel2-service "
    "'No instances available for ts-seat-service' (6 lines, 13:30:10-13:30:21) {0} {1}, then "
    "ts-execute-service 'Order Status Wrong' (7 lines from 13:30:27) and ts-food-service "
    "'foodStoresListResult is null' (8 lines from 13:30:38) {0}. ts-contacts-service logs "
    "only INFO lines (104, 13:30:18-13:32:59), no error {2}. Not checked: lines before "
    "13:30, which this Loki does not hold."
)
METRICS_FINDINGS = (
    "ts-contacts-service's container CPU usage ratio went from a baseline mean of 0.010 to "
    "0.18 in the incident window (x18), peaking at 1.0: saturated {1}; no other service's "
    "CPU moved more than x1.7 {1}. Per pod there are CPU, memory, network, syscall, latency "
    "and request rate metrics {0}. Not checked: memory and network."
)
FOLLOW_UP_FINDINGS = (
    "ts-contacts-service's p99 server latency rose x4.9 (0.042 s to 0.21 s mean, max 0.99 s) "
    "{0} while its request rate barely moved (x1.4) {1}: no traffic surge, so its CPU "
    "saturation is a cause, not a symptom. Its caller ts-preserve-service doubled its "
    "request rate {1}, likely retries."
)
CLAIMS = [  # one for each analyst's answer, in the order the lead got them
    "Errors in ts-travel2-service, ts-execute-service and ts-food-service from 13:30; "
    "none in ts-contacts-service",
    "ts-contacts-service's CPU usage ratio x18 (0.010 to 0.18), peaking at 1.0",
    "ts-contacts-service's p99 latency x4.9 with a flat request rate",
]
REPORT = {
    "summary": "ts-contacts-service's CPU saturated in the incident window; its p99 latency "
    "rose five-fold and ts-ui-dashboard burned its SLO. Errors in ts-travel2-service, "
    "ts-execute-service and ts-food-service followed.",
    "root_cause": {
        "service": "ts-contacts-service",
        "description": "CPU contention: its container's CPU usage ratio reached 1.0, so "
        "contact look-ups slowed and the booking flow behind ts-ui-dashboard failed.",
    },
    "confidence": 0.7,
    "suspects": [
        {"service": "ts-contacts-service", "likelihood": 0.7, "reason": "CPU saturated"},
        {"service": "ts-travel2-service", "likelihood": 0.15, "reason": "first error lines"},
        {"service": "ts-food-service", "likelihood": 0.1, "reason": "new error template"},
    ],
    "remediation": [
        "Stop what competes for CPU on ts-contacts-service's node, or move the pod",
        "Raise ts-contacts-service's CPU limit or add a replica",
    ],
    "follow_up_checks": [
        "CPU of the node that runs ts-contacts-service",
        "Why ts-travel2-service found no ts-seat-service instance at 13:30",
    ],
}


def tool_results(messages):
    """The text of every tool result in `messages`, in order."""
    return [
        str(block.get("content"))
        for message in messages
        if message["role"] == "user" and isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]


def findings(template):
    """An analyst's last turn: `template` citing the [step N] of its tool results, in order."""

    def turn(request):
        steps = [STEP_REFERENCE.search(text)[0] for text in tool_results(request["messages"])]
        return scripted.text(template.format(*steps))

    return turn


def submit_report(request):
    """The lead's last turn: REPORT, its evidence citing the steps the analysts cited."""
    evidence = [
        {"claim": claim, "steps": list(dict.fromkeys(map(int, STEP_REFERENCE.findall(text))))}
        for claim, text in zip(CLAIMS, tool_results(request["messages"]), strict=True)
    ]
    return scripted.tool_use("submit_report", {**REPORT, "evidence": evidence})


ERROR_LINES = '{namespace="train-ticket"} |~ "(?i)error|exception|fail"'
TRAVEL2_ERRORS = '{namespace="train-ticket", service="ts-travel2-service"} |= "ERROR"'
CONTACTS_LINES = '{namespace="train-ticket", service="ts-contacts-service"}'
CPU_BY_SERVICE = 'max by (service) (container_cpu_usage_ratio{namespace="train-ticket"})'
CONTACTS_P99 = (
    "max by (service) "
    '(pod_server_latency_p99_seconds{namespace="train-ticket", service="ts-contacts-service"})'
)
REQUEST_RATES = (
    'sum by (service) (pod_request_rate_ops{namespace="train-ticket", '
    'service=~"ts-contacts-service|ts-preserve-service|ts-ui-dashboard"})'
)
LOGS_TURNS = [
    scripted.tool_use("log_patterns", {"selector": ERROR_LINES}),
    scripted.tool_use("query_logs", {"query": TRAVEL2_ERRORS}),
    scripted.tool_use("query_logs", {"query": CONTACTS_LINES}),
    findings(LOGS_FINDINGS),
]
METRICS_TURNS = [
    scripted.tool_use("discover_metrics", {"selector": '{namespace="train-ticket"}'}),
    scripted.tool_use("query_metrics_range", {"query": CPU_BY_SERVICE}),
    findings(METRICS_FINDINGS),
    # the follow-up question
    scripted.tool_use("query_metrics_range", {"query": CONTACTS_P99}),
    scripted.tool_use("query_metrics_range", {"query": REQUEST_RATES}),
    findings(FOLLOW_UP_FINDINGS),
]


def team_script(concurrent):
    """The scenario, the lead asking the two analysts in one turn or in two."""
    ask_logs = ("investigate_logs", {"question": LOGS_QUESTION})
    ask_metrics = ("investigate_metrics", {"question": METRICS_QUESTION})
    if concurrent:
        first = [scripted.tool_uses([ask_logs, ask_metrics], "Two independent questions.")]
    else:
        first = [scripted.tool_use(*ask_logs), scripted.tool_use(*ask_metrics)]
    follow_up = scripted.tool_use("investigate_metrics", {"question": FOLLOW_UP_QUESTION})
    lead = [*first, follow_up, submit_report]
    return scripted.Script({LEAD: lead, LOGS: LOGS_TURNS, METRICS: METRICS_TURNS})


NAIVE_SYSTEM = """\
You are a single agent of Rootline, finding the root cause of a production alert.
You get the alerts, the scope and the ranked suspects of a signal scan. Query the logs (Loki)
and the metrics (Prometheus) with your tools, compare the incident window with the baseline,
find the service that changed first and why, and end by calling submit_report. Cite evidence
by the [step N] numbers the results carry.
"""


# The world the investigations read, and running them.


@dataclass
class World:
    loki_url: str
    prometheus_url: str
    context: toolbox.ToolContext  # without telemetry clients: each run opens its own
    briefing: str


def build_world(stack, tmp):
    """The case's alert, scope and briefing, and the backends serving its pack (Prometheus
    and the Loki stub, stopped by `stack`; `tmp` holds the TSDB)."""
    case = next(
        c
        for c in map(json.loads, (PACK_DIR / "cases.jsonl").read_text().splitlines())
        if c["id"] == CASE_ID
    )
    prometheus_url = start_prometheus(stack, PACK_DIR, tmp)
    loki_url = stack.enter_context(serve(LogStore.from_jsonl_gz(PACK_DIR / "logs.jsonl.gz"))).url
    fired = case["alert"]
    starts_at = datetime.fromisoformat(fired["startsAt"].replace("Z", "+00:00"))
    alert = Alert(
        fingerprint=fired["fingerprint"],
        status="firing",
        starts_at=starts_at,
        alertname=fired["labels"]["alertname"],
        labels=fired["labels"],
        annotations=fired["annotations"],
        first_seen=starts_at,
        last_seen=starts_at,
    )
    scope = derive_scope([alert], starts_at + AS_OF)
    context = toolbox.ToolContext(
        now=scope.incident_end,
        incident=(scope.incident_start, scope.incident_end),
        baseline=(scope.baseline_start, scope.incident_start),
        scope=scope.as_dict(),
        alerts=[alert_dict(alert)],
        budget_tokens=settings.ROOTLINE_TOOL_BUDGET_TOKENS,
    )
    suspects, summary = asyncio.run(scan(scope, starts_at, loki_url, prometheus_url))
    return World(loki_url, prometheus_url, context, team.briefing(context, suspects, summary))


async def scan(scope, starts_at, loki_url, prometheus_url):
    """The signal scan's suspects and summary, for the briefing, as runner.signals_step
    computes them (its windows, selector, labels and scans)."""
    baseline, incident = runner.scan_windows_from(starts_at, scope)
    results = await runner.run_scans(
        PrometheusClient(BackendConfig("Prometheus", prometheus_url)),
        LokiClient(BackendConfig("Loki", loki_url)),
        scope,
        scope.service_label,
        baseline,
        incident,
    )
    for result in results:
        if isinstance(result, Exception):
            raise result
    metric_scan, log_scan, path_scan = results
    suspects = signals.rank_suspects(
        metric_scan.scores,
        log_scan.services,
        scope.service_label,
        scope.services,
        service_paths=path_scan.services,
    )
    suspects = [s for s in suspects if s.score > 0]
    report, _ = signals.build_report(suspects, alerting_services=set(scope.services), unchecked=[])
    return [s.as_dict() for s in suspects], report["summary"]


@dataclass
class Run:
    wall_seconds: float
    steps: list
    requests: list  # scripted_messages.RecordedRequest
    usage: list  # input, output, cache write, cache read tokens, as the server reported them
    report: dict


async def run_investigation(world, script, latency, agent=None):
    """One investigation against a fresh scripted server: the team's, or with `agent` (an
    AgentSpec) that single agent's."""
    clear_cache()  # every run reads the backends, none is served the last one's answers
    recorder = StepLog()
    budget = Budget(
        settings.ROOTLINE_LLM_TOKEN_BUDGET,
        settings.ROOTLINE_LLM_TIME_BUDGET.total_seconds(),
        settings.ROOTLINE_LLM_COMPACT_AT_TOKENS,
    )
    with scripted.serve(script, default_delay=latency) as server:
        async with contextlib.AsyncExitStack() as stack:
            loki = LokiClient(BackendConfig("Loki", world.loki_url))
            prometheus = PrometheusClient(BackendConfig("Prometheus", world.prometheus_url))
            client = anthropic.AsyncAnthropic(api_key="bench", base_url=server.url, max_retries=0)
            for closing in (loki, prometheus, client):
                stack.push_async_callback(closing.close if closing is client else closing.aclose)
            context = replace(
                world.context, loki=keep_answers(loki), prometheus=keep_answers(prometheus)
            )
            llm = LLM.from_settings(client)
            limits = {
                "lead_iterations": settings.ROOTLINE_LLM_LEAD_ITERATIONS,
                "specialist_iterations": settings.ROOTLINE_LLM_SPECIALIST_ITERATIONS,
            }
            started = time.monotonic()
            if agent is None:
                result = await team.investigate(
                    context,
                    world.briefing,
                    llm=llm,
                    budget=budget,
                    recorder=recorder,
                    settings=limits,
                )
            else:
                # The textbook loop keeps its whole history and has no budget to force an end.
                budget.compact_at_tokens = budget.tokens_left = float("inf")
                messages = [{"role": "user", "content": world.briefing}]
                result = await run_agent(agent, messages, llm=llm, budget=budget, recorder=recorder)
            wall = time.monotonic() - started
        check_scenario(result, server, recorder.steps)
        return Run(wall, recorder.steps, server.requests, budget.usage, result.final_input)


def check_scenario(result, server, steps):
    """SystemExit unless every scripted turn ran, in order, and ended with a report."""
    problems = [f"step {s.sequence} {s.name} failed" for s in steps if s.is_error]
    if result.stop != "final":
        problems.append(f"the loop ended with {result.stop!r} {result.error}")
    if server.protocol_errors:
        problems.append(f"{server.protocol_errors} malformed requests")
    if server.ran_out or server.remaining_turns():
        problems.append(f"turns ran out: {server.ran_out}; unused: {server.remaining_turns()}")
    if problems:
        raise SystemExit("the scenario did not run as scripted: " + "; ".join(problems))


def naive_agent(warm_up):
    """The single agent, and its script: the team's backend calls in order, one a turn, each
    answered with the backends' raw JSON for that call, then the team's report."""
    calls = [s for s in warm_up.steps if s.name in toolbox.TOOLS]
    answers = {(s.name, json.dumps(s.input, sort_keys=True)): s.answers for s in calls}

    def raw(name):
        async def run(tool_input, step):
            found = answers[name, json.dumps(tool_input, sort_keys=True)]
            compact = (json.dumps(a, separators=(",", ":"), ensure_ascii=False) for a in found)
            return ToolOutcome("\n".join(compact))

        return run

    async def submit(tool_input, step):
        team.Report.model_validate(tool_input)
        return ToolOutcome("Report received.")

    tools = [
        ToolSpec(t.name, t.description, t.definition()["input_schema"], raw(t.name))
        for t in toolbox.TOOLS.values()
    ]
    tools.append(
        ToolSpec("submit_report", "Submit the final report.", team.schema_of(team.Report), submit)
    )
    turns = [scripted.tool_use(s.name, s.input) for s in calls]
    turns.append(scripted.tool_use("submit_report", warm_up.report))
    agent = AgentSpec("naive", NAIVE_SYSTEM, tools, len(turns), final_tool="submit_report")
    return agent, scripted.Script({NAIVE: turns})


# Figures.


def critical_path(steps, parent=None):
    """(model turns, their seconds, tool seconds) along the longest chain under `parent`:
    each of its turns, then the longest of the calls that turn asked for (they run at once);
    a delegation's length is its analyst's own chain."""
    turns, turn_seconds, tool_seconds = 0, 0.0, 0.0
    for turn in [s for s in steps if s.parent is parent and s.name == TURN]:
        chains = [
            critical_path(steps, call) if call.name in DELEGATIONS else (0, 0.0, call.seconds)
            for call in steps
            if call.after is turn
        ]
        longest = max(chains, key=lambda c: (c[0], c[1] + c[2]), default=(0, 0.0, 0.0))
        turns += 1 + longest[0]
        turn_seconds += turn.seconds + longest[1]
        tool_seconds += longest[2]
    return turns, turn_seconds, tool_seconds


def first_questions(run):
    """The first investigate_logs and investigate_metrics steps."""
    return [next(s for s in run.steps if s.name == name) for name in DELEGATIONS]


def analysts_seconds(run):
    """Wall time while the analysts answered their first questions: the union of the two
    delegations' spans (overlapping when asked together, back to back when not)."""
    (a0, a1), (b0, b1) = sorted((s.started, s.ended) for s in first_questions(run))
    return (a1 - a0) + (b1 - b0) - max(0.0, min(a1, b1) - b0)


def request_tokens(run, agent=None):
    return (
        sum(
            int(r.headers.get("content-length", 0))
            for r in run.requests
            if agent is None or r.agent == agent
        )
        // BYTES_PER_TOKEN
    )


def turns_of(run):
    return sum(1 for s in run.steps if s.name == TURN)


def spread(values, fmt):
    return f"{statistics.median(values):{fmt}} [{min(values):{fmt}}-{max(values):{fmt}}]"


def verdict(ok):
    return "**pass**" if ok else "**miss**"


def figures(latency, concurrent, sequential, naive):
    """What the doc reports, from the runs: lists are one value per run."""
    path = [critical_path(r.steps) for r in concurrent]
    pairs = list(zip(concurrent, sequential, strict=True))
    analyst_turns = [
        sum(1 for s in concurrent[0].steps if s.parent is q and s.name == TURN)
        for q in first_questions(concurrent[0])
    ]
    calls = [s for s in concurrent[0].steps if s.name in toolbox.TOOLS]
    raw = (
        json.dumps(a, separators=(",", ":"), ensure_ascii=False) for s in calls for a in s.answers
    )
    naive_tokens = request_tokens(naive)
    return {
        "turns": path[0][0],
        "sequential_turns": critical_path(sequential[0].steps)[0],
        "analyst_turns": analyst_turns,
        "wall": [r.wall_seconds for r in concurrent],
        "sequential_wall": [r.wall_seconds for r in sequential],
        "ratio": [r.wall_seconds / (p[0] * latency) for r, p in zip(concurrent, path, strict=True)],
        "speed_up": [s.wall_seconds / c.wall_seconds for c, s in pairs],
        "analysts_speed_up": [analysts_seconds(s) / analysts_seconds(c) for c, s in pairs],
        "around_turn_ms": [(p[1] - p[0] * latency) / p[0] * 1000 for p in path],
        "tools_ms": [p[2] * 1000 for p in path],
        "rest_ms": [
            (r.wall_seconds - p[1] - p[2]) * 1000 for r, p in zip(concurrent, path, strict=True)
        ],
        "tokens": [request_tokens(r) for r in concurrent],
        "tokens_by_agent": {
            agent: statistics.median(request_tokens(r, agent) for r in concurrent)
            for agent in (LEAD, LOGS, METRICS)
        },
        "usage_tokens": [r.usage[0] + r.usage[2] + r.usage[3] for r in concurrent],
        "cached_share": [
            (r.usage[2] + r.usage[3]) / sum(r.usage[i] for i in (0, 2, 3)) for r in concurrent
        ],
        "largest_request": largest_request(concurrent[0]),
        "calls": len(calls),
        "result_tokens": sum(len(s.text) for s in calls) // BYTES_PER_TOKEN,
        "raw_tokens": sum(len(text) for text in raw) // BYTES_PER_TOKEN,
        "naive_tokens": naive_tokens,
        "naive_requests": len(naive.requests),
        "naive_largest_request": largest_request(naive),
        "token_ratio": [t / naive_tokens for t in (request_tokens(r) for r in concurrent)],
        "model_turns": [turns_of(r) for r in (concurrent[0], sequential[0], naive)],
    }


def largest_request(run):
    return max(int(r.headers["content-length"]) for r in run.requests) // BYTES_PER_TOKEN


def describe(args, f, started):
    """The doc's section: the command, the machine, the table and what it means."""
    latency = args.latency
    turns, seq_turns = f["turns"], f["sequential_turns"]
    bound = seq_turns / turns
    overhead_ok = statistics.median(f["ratio"]) <= TARGET_OVERHEAD_RATIO
    speed_up_ok = statistics.median(f["speed_up"]) >= TARGET_SPEED_UP
    tokens_ok = statistics.median(f["token_ratio"]) <= TARGET_TOKEN_RATIO
    command = " ".join([".venv/bin/python bench/agent_overhead.py", *sys.argv[1:]])
    concurrent_turns, sequential_turns, naive_turns = f["model_turns"]
    by_agent = ", ".join(f"{a.split()[0]} {n:,.0f}" for a, n in f["tokens_by_agent"].items())
    lines = [
        SECTION_TITLE,
        DOC_INTRO.format(case=CASE_ID),
        f"`{command}`\n",
        f"- {started:%Y-%m-%d %H:%M} UTC; commit {commit()}; {machine()}; "
        f"anthropic {anthropic.__version__}",
        f"- model latency {latency:g} s a turn; {args.runs} run(s) of each variant, "
        f"interleaved; model turns: {concurrent_turns} with the analysts asked together, "
        f"{sequential_turns} asked in turn (the one extra lead turn), {naive_turns} naive",
        "",
        "| measure | median [min-max] | bound | target | result |",
        "|---|---:|---:|---:|---|",
        f"| wall time, analysts asked together | {spread(f['wall'], '.2f')} s "
        f"| {turns * latency:.2f} s ({turns} turns) | | |",
        f"| overhead ratio: wall / critical path | {spread(f['ratio'], '.3f')}x | 1x "
        f"| <= {TARGET_OVERHEAD_RATIO}x | {verdict(overhead_ok)} |",
        f"| wall time, analysts asked in turn | {spread(f['sequential_wall'], '.2f')} s "
        f"| {seq_turns * latency:.2f} s ({seq_turns} turns) | | |",
        f"| speed-up, whole investigation | {spread(f['speed_up'], '.2f')}x | {bound:.2f}x "
        f"| >= {TARGET_SPEED_UP}x | {verdict(speed_up_ok)} |",
        f"| speed-up, the analysts' first answers | {spread(f['analysts_speed_up'], '.2f')}x "
        f"| {sum(f['analyst_turns']) / max(f['analyst_turns']):.2f}x | | |",
        f"| input tokens, team | {spread(f['tokens'], ',.0f')} | | | |",
        f"| input tokens, naive single agent | {f['naive_tokens']:,} (one run) | | | |",
        f"| team / naive input tokens | {spread(f['token_ratio'], '.3f')}x | "
        f"| <= {TARGET_TOKEN_RATIO}x | {verdict(tokens_ok)} |",
        "",
        "- Where the time beyond the model's goes, per investigation, on the critical path: "
        f"{statistics.median(f['around_turn_ms']):.1f} ms a turn around the model's latency "
        f"(SDK, HTTP, the server), {statistics.median(f['tools_ms']):.0f} ms in tools "
        f"(backends, compaction), {statistics.median(f['rest_ms']):.0f} ms elsewhere (the "
        "loop, delegation, scheduling). The production recorder's database writes are not "
        "included.",
        f"- Team input tokens by agent: {by_agent}; its largest request "
        f"{f['largest_request']:,} tokens; {spread(f['cached_share'], '.0%')} of its input "
        "is the cached prefix (system prompt and tools). As the server reports usage "
        f"(input + cache write + cache read): {spread(f['usage_tokens'], ',.0f')}.",
        f"- The same {f['calls']} backend calls: {f['result_tokens']:,} tokens of tool results "
        f"for the team (compacted), {f['raw_tokens']:,} raw for the naive agent, which sends "
        f"them again every turn: {f['naive_requests']} requests, the largest "
        f"{f['naive_largest_request']:,} tokens"
        + (
            f", over a {CONTEXT_WINDOW_TOKENS:,}-token context window: the real API would refuse it"
            if f["naive_largest_request"] > CONTEXT_WINDOW_TOKENS
            else ""
        )
        + ".",
    ]
    if not speed_up_ok:
        lines.append(
            f"- The whole-investigation speed-up target cannot be met in this scenario: the "
            f"lead's turns and the follow-up run in turn either way, so asking the analysts "
            f"together saves at most {seq_turns} - {turns} turns, {bound:.2f}x. The analysts' "
            "own phase, the part concurrency changes, is the row below it."
        )
    if not overhead_ok:
        lines.append("- The overhead ratio misses its target: see where the time goes, above.")
    if not tokens_ok:
        lines.append(f"- The team sends more than {TARGET_TOKEN_RATIO}x the naive agent's tokens.")
    return "\n".join(lines) + "\n"


def commit():
    """git describe, and when the tree is dirty, which tracked files differ from it."""
    described = git_describe()
    if described.endswith("-dirty"):
        changed = subprocess.run(
            ["git", "diff", "--name-only", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.split()
        described += f" (changed: {', '.join(changed)})"
    return described


def write_doc(section):
    """Replace the "Agent overhead" section of the doc, or add it at the end."""
    replace_section(DOC_PATH, SECTION_TITLE, section)


def log(message):
    print(message, file=sys.stderr, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.5, help="seconds per model turn")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--write-doc", action="store_true", help=f"update {DOC_PATH.name}")
    args = parser.parse_args()
    if args.latency <= 0 or args.runs < 1:
        parser.error("--latency must be above 0 and --runs at least 1")
    logging.disable(logging.INFO)
    started = datetime.now(UTC)
    tmp = Path(tempfile.mkdtemp(prefix="agent-overhead-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        log("setting up Prometheus, the Loki stub and the signal scan ...")
        world = build_world(stack, tmp)
        # Asked in turn, the analysts' calls come in one order; together, in any.
        warm_up = asyncio.run(run_investigation(world, team_script(concurrent=False), 0.0))
        concurrent, sequential = [], []
        for n in range(1, args.runs + 1):
            for runs, together in ((concurrent, True), (sequential, False)):
                run = asyncio.run(run_investigation(world, team_script(together), args.latency))
                runs.append(run)
                variant = "together" if together else "in turn"
                log(f"  run {n}, analysts asked {variant}: {run.wall_seconds:.2f} s")
        agent, script = naive_agent(warm_up)
        naive = asyncio.run(run_investigation(world, script, 0.0, agent=agent))
    section = describe(args, figures(args.latency, concurrent, sequential, naive), started)
    print(section)
    if args.write_doc:
        write_doc(section)
        print(f"updated {DOC_PATH}")


if __name__ == "__main__":
    main()
