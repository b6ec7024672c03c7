"""A loopback stand-in for Anthropic's Messages API that replays scripted assistant turns,
so that tests, benchmarks and demos drive the real `anthropic` SDK without a network.

    script = Script({
        "lead investigator": [tool_use("investigate_logs", {"question": "..."}), text("Done.")],
        "logs analyst": [error(429, "rate_limit_error", "slow down", retry_after=1), text("...")],
    })
    with serve(script) as api:
        client = anthropic.AsyncAnthropic(api_key="test", base_url=api.url, max_retries=0)
        ...
        api.requests_of("logs analyst")

    .venv/bin/python bench/scripted_messages.py demo-script.json --port 8765

Only `POST /v1/messages` without streaming ("stream": true gets a 400). Answers and errors
have the API's JSON shapes and headers (`request-id`, `retry-after` on a scripted 429), so
the SDK parses them into `Message` objects and raises its own exception classes.

Turns: text(), tool_use(), tool_uses(), raw() (any content and stop reason), error() and
drop(), each with an optional `delay` in seconds, slept in the request's own thread so that
concurrent requests overlap; or a function of the request's JSON that returns a turn.
Tool_use blocks scripted without an id get a new "toolu_..." id in every answer.

Agents. Each agent (a lead and its specialists, running concurrently) has its own list of
turns, used in order. By default a request belongs to the agent whose key occurs in the
first line of its system prompt (a string, or the text of the first block of a list): the
key found earliest in that line, the longer on a tie; the key "" takes any request no other
key does. `Script(..., agent_of=f)` replaces the rule. A request of an agent whose turns
have run out, or of no agent (None), gets `Script.on_exhausted` (by default an `end_turn`
text "nothing more") and the agent is listed in `ran_out`.

Validation. As the real API would, a request is refused with a 400 invalid_request_error,
before any turn is used, when `model`, `max_tokens` or `messages` is missing, when the
messages do not alternate user/assistant starting with user, or when an assistant message
with tool_use blocks is not followed by a user message holding a tool_result for every
tool_use id and for no other id. Such refusals, bugs in the client's loop, are counted in
`protocol_errors` and explained in each record's `protocol_error`. (The real API merges
consecutive user messages; this server refuses them.)

Usage. Unless a turn overrides it, the system prompt plus tools cost len(JSON) // 4 tokens
and are reported as cache_creation_input_tokens the first time an agent sends them with
`cache_control` (on a system block, a tool, or the request) and as cache_read_input_tokens
after that; input_tokens is the rest of the request body // 4, output_tokens the answer's
content JSON // 4. The three input counts add up to the request's size, as the API's do.

Script files (for the command line) are JSON: {"agents": {AGENT: [TURN, ...]},
"on_exhausted": TURN}. A TURN is an object whose "type" names a turn function below and
whose other keys are its keyword arguments:

    {"type": "text", "text": "All clear.", "delay": 0.5}
    {"type": "tool_use", "name": "query_logs", "input": {"query": "{app=\\"api\\"}"}}
    {"type": "tool_uses", "calls": [["query_logs", {...}], ["query_metrics", {...}]]}
    {"type": "raw", "content": [{"type": "text", "text": "Tru"}], "stop_reason": "max_tokens"}
    {"type": "error", "status": 529, "error_type": "overloaded_error", "message": "Overloaded"}
    {"type": "drop"}

Standard library only, so that it runs where nothing is installed beyond Python.
"""

import argparse
import json
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from background_server import BackgroundServer
from benchdoc import nearest_rank

log = logging.getLogger(__name__)

MESSAGES_PATH = "/v1/messages"
NOTHING_MORE = "nothing more"
BYTES_PER_TOKEN = 4

# Turns.


@dataclass(frozen=True)
class Reply:
    """An assistant message. `delay` (seconds) defaults to the server's default_delay;
    `usage` replaces fields of the estimated usage."""

    content: list
    stop_reason: str
    stop_sequence: str | None = None
    delay: float | None = None
    usage: dict | None = None


@dataclass(frozen=True)
class ErrorReply:
    """An HTTP error with the API's error body; `retry_after` (seconds) sets the header."""

    status: int
    error_type: str
    message: str
    retry_after: float | None = None
    delay: float | None = None


@dataclass(frozen=True)
class Drop:
    """The connection is closed without an answer."""

    delay: float | None = None


def text(text, stop_reason="end_turn", *, delay=None, usage=None):
    return Reply([{"type": "text", "text": text}], stop_reason, delay=delay, usage=usage)


def tool_use(name, input, text=None, *, id=None, delay=None, usage=None):
    """One tool call. Without an `id`, each answer of this turn gets a new "toolu_..." id,
    so that a turn object may appear several times in a script."""
    return tool_uses(
        [(name, input)], text, ids=None if id is None else [id], delay=delay, usage=usage
    )


def tool_uses(calls, text=None, *, ids=None, delay=None, usage=None):
    """Several tool calls in one turn: `calls` is [(name, input), ...]."""
    ids = ids or [None] * len(calls)
    content = [{"type": "text", "text": text}] if text else []
    content += [
        {"type": "tool_use", "id": id, "name": name, "input": input}
        for id, (name, input) in zip(ids, calls, strict=True)
    ]
    return Reply(content, "tool_use", delay=delay, usage=usage)


def raw(content, stop_reason, *, stop_sequence=None, delay=None, usage=None):
    """Any content and stop reason: max_tokens, refusal, pause_turn, stop_sequence..."""
    return Reply(list(content), stop_reason, stop_sequence, delay, usage)


def error(status, error_type, message, retry_after=None, *, delay=None):
    return ErrorReply(status, error_type, message, retry_after, delay)


def drop(*, delay=None):
    return Drop(delay)


TURN_TYPES = {f.__name__: f for f in (text, tool_use, tool_uses, raw, error, drop)}


def turn_from_json(spec):
    """A turn from its JSON form: {"type": <a name in TURN_TYPES>, **keyword arguments}."""
    fields = dict(spec)
    kind = fields.pop("type", None)
    if kind not in TURN_TYPES:
        raise ValueError(f"a turn's type must be one of {', '.join(TURN_TYPES)}: {spec!r}")
    try:
        return TURN_TYPES[kind](**fields)
    except TypeError as e:
        raise ValueError(f"bad {kind} turn {spec!r}: {e}") from e


def first_system_line(request):
    system = request.get("system") or ""
    if isinstance(system, list):
        first = system[0] if system else None
        system = first.get("text", "") if isinstance(first, dict) else ""
    return str(system).partition("\n")[0]


class Script:
    """Turns by agent, the rule that tells a request's agent, and the answer once an
    agent's turns have run out. Not consumed by serving: one script can serve many times."""

    def __init__(self, turns_by_agent, agent_of=None, *, on_exhausted=None):
        self.turns_by_agent = {agent: list(turns) for agent, turns in turns_by_agent.items()}
        self.agent_of = agent_of or self.agent_in_system_prompt
        self.on_exhausted = text(NOTHING_MORE) if on_exhausted is None else on_exhausted

    @classmethod
    def from_json(cls, data):
        turns = {
            agent: [turn_from_json(t) for t in specs] for agent, specs in data["agents"].items()
        }
        exhausted = data.get("on_exhausted")
        return cls(turns, on_exhausted=exhausted and turn_from_json(exhausted))

    def agent_in_system_prompt(self, request):
        line = first_system_line(request)
        found = [(line.find(a), -len(a), a) for a in self.turns_by_agent if a and a in line]
        if found:
            return min(found)[2]
        return "" if "" in self.turns_by_agent else None


# Validation, as the API does it.


class Refusal(Exception):
    """A request answered with an API error before any scripted turn is used."""

    def __init__(self, status, error_type, message):
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message


class ProtocolError(Refusal):
    """A request the real API would refuse: a bug in the client's conversation loop."""

    def __init__(self, message):
        super().__init__(400, "invalid_request_error", message)


def _block_ids(message, block_type, key):
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [b.get(key) for b in content if isinstance(b, dict) and b.get("type") == block_type]


def check_conversation(request):
    """Raise ProtocolError for a request the Messages API would refuse as malformed."""
    for name in ("model", "max_tokens", "messages"):
        if name not in request:
            raise ProtocolError(f"{name}: Field required")
    messages = request["messages"]
    if not isinstance(messages, list) or not messages:
        raise ProtocolError("messages: at least one message is required")
    for i, message in enumerate(messages):
        expected = "assistant" if i % 2 else "user"
        role = message.get("role") if isinstance(message, dict) else None
        if role != expected:
            raise ProtocolError(
                f"messages.{i}.role: expected {expected!r}, got {role!r}: messages must "
                "alternate between 'user' and 'assistant', starting with 'user'"
            )
    last = messages[-1]
    if last["role"] == "assistant" and (uses := _block_ids(last, "tool_use", "id")):
        raise ProtocolError(
            f"messages.{len(messages) - 1}: `tool_use` ids were found without `tool_result` "
            f"blocks immediately after: {', '.join(uses)}. Each `tool_use` block must have a "
            "corresponding `tool_result` block in the next message."
        )
    for index in range(0, len(messages), 2):
        message = messages[index]
        uses = _block_ids(messages[index - 1], "tool_use", "id") if index else []
        results = _block_ids(message, "tool_result", "tool_use_id")
        if missing := [u for u in uses if u not in results]:
            raise ProtocolError(
                f"messages.{index}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )
        if unexpected := [r for r in results if r not in uses]:
            raise ProtocolError(
                f"messages.{index}.content: unexpected `tool_use_id` found in `tool_result` "
                f"blocks: {', '.join(map(str, unexpected))}. Each `tool_result` block must "
                "have a corresponding `tool_use` block in the previous message."
            )


def _asks_for_cache(request):
    system = request.get("system")
    blocks = [*(system if isinstance(system, list) else ()), *(request.get("tools") or ())]
    return "cache_control" in request or any(
        isinstance(b, dict) and "cache_control" in b for b in blocks
    )


# The server.


@dataclass
class RecordedRequest:
    """One request as received and answered; times are time.monotonic() seconds.
    `status` is None for a dropped connection (or while the answer is pending); `turn`
    is the index of the agent's scripted turn used, None if none was."""

    body: Any
    headers: dict
    received_at: float
    request_id: str
    agent: str | None = None
    turn: int | None = None
    ran_out: bool = False
    protocol_error: str | None = None
    status: int | None = None
    answered_at: float | None = None


class Answer(NamedTuple):
    status: int | None  # None: drop the connection
    body: dict | None
    headers: dict
    delay_seconds: float


class Latency(NamedTuple):
    """Seconds from receiving a request to answering it, over the answered requests."""

    count: int
    mean_seconds: float
    p50_seconds: float
    p95_seconds: float
    max_seconds: float


@dataclass
class _Progress:
    turns_used: defaultdict = field(default_factory=lambda: defaultdict(int))
    cached_prefixes: defaultdict = field(default_factory=lambda: defaultdict(set))
    ran_out: list = field(default_factory=list)
    requests_seen: int = 0
    tool_uses_answered: int = 0


class MessagesApi(BaseHTTPRequestHandler):
    """The requests of one connection; a scripted delay sleeps in this thread, so that
    concurrent requests overlap."""

    protocol_version = "HTTP/1.1"
    server_version = "ScriptedMessages"
    # Headers and body leave in two writes: without this a kept-alive connection waits
    # for the client's delayed ACK (about 40 ms) on every request.
    disable_nagle_algorithm = True

    def do_POST(self):
        received_at = time.monotonic()
        payload = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        record, answer = self.server.answer(urlsplit(self.path).path, headers, payload, received_at)
        if answer.delay_seconds > 0:
            time.sleep(answer.delay_seconds)
        # Recorded before the answer leaves, so that a client reading the recording as soon
        # as it has its answer finds it complete.
        record.status, record.answered_at = answer.status, time.monotonic()
        if answer.status is None:
            self.close_connection = True
        else:
            self._send(record, answer)
        log.info(
            "%s turn %s: %s after %.3f s",
            record.agent,
            record.turn,
            answer.status or "dropped",
            record.answered_at - received_at,
        )

    def _send(self, record, answer):
        body = json.dumps(answer.body).encode()
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("request-id", record.request_id)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError as e:
            log.info("The client of %s left before its answer: %r", record.request_id, e)
            self.close_connection = True

    def log_request(self, code="-", size="-"):
        """Quiet: a benchmark sends thousands of requests (errors are still logged)."""


class ScriptedMessages(BackgroundServer):
    """A listening server; `url` is its base URL. `close()` (or leaving `with`) stops it.
    Its recording (`requests`, `protocol_errors`, `ran_out`, `latency()`) is safe to read
    while it serves."""

    thread_name = "scripted-messages"

    def __init__(self, script, address, *, default_delay=0.0):
        super().__init__(address, MessagesApi)
        self.script = script
        self.default_delay = default_delay
        self._lock = threading.Lock()
        self._requests = []
        self._progress = _Progress()

    @property
    def requests(self):
        with self._lock:
            return list(self._requests)

    def requests_of(self, agent):
        return [r for r in self.requests if r.agent == agent]

    @property
    def protocol_errors(self):
        """How many requests were refused as malformed conversations (each record's
        `protocol_error` says why)."""
        return sum(1 for r in self.requests if r.protocol_error)

    @property
    def ran_out(self):
        """The agents that asked for more turns than they had, in the order they did."""
        with self._lock:
            return list(self._progress.ran_out)

    def remaining_turns(self):
        """{agent: turns not used yet}, for the agents that have some left."""
        with self._lock:
            used = self._progress.turns_used
            left = {a: len(t) - used[a] for a, t in self.script.turns_by_agent.items()}
        return {agent: n for agent, n in left.items() if n > 0}

    def latency(self):
        seconds = sorted(
            r.answered_at - r.received_at for r in self.requests if r.answered_at is not None
        )
        if not seconds:
            return Latency(0, 0.0, 0.0, 0.0, 0.0)

        mean = sum(seconds) / len(seconds)
        return Latency(
            len(seconds), mean, nearest_rank(seconds, 0.5), nearest_rank(seconds, 0.95), seconds[-1]
        )

    def answer(self, path, headers, payload, received_at):
        """(the request's record, what to answer); the record is already in `requests`."""
        try:
            body = json.loads(payload)
        except ValueError:
            body = None
        with self._lock:
            self._progress.requests_seen += 1
            number = self._progress.requests_seen
            record = RecordedRequest(body, headers, received_at, f"req_{number:024d}")
            self._requests.append(record)
        try:
            answer = self._answer(path, record, number, len(payload))
        except ProtocolError as e:
            record.protocol_error = e.message
            answer = _error_answer(record, e.status, e.error_type, e.message)
        except Refusal as e:
            answer = _error_answer(record, e.status, e.error_type, e.message)
        except Exception as e:
            log.exception("The scripted server failed to answer %s", record.request_id)
            answer = _error_answer(record, 500, "api_error", f"the scripted server failed: {e!r}")
        return record, answer

    def _answer(self, path, record, number, size):
        request = record.body
        if path != MESSAGES_PATH:
            raise Refusal(404, "not_found_error", f"Not found: {path}")
        if not isinstance(request, dict):
            raise Refusal(400, "invalid_request_error", "the body is not a JSON object")
        record.agent = self.script.agent_of(request)
        if request.get("stream"):
            raise Refusal(
                400,
                "invalid_request_error",
                "stream: the scripted Messages API does not stream; call without stream=True",
            )
        check_conversation(request)
        turn = self._next_turn(record)
        if callable(turn):
            turn = turn(request)
        delay = self.default_delay if turn.delay is None else turn.delay
        if isinstance(turn, Drop):
            return Answer(None, None, {}, delay)
        if isinstance(turn, ErrorReply):
            answer = _error_answer(record, turn.status, turn.error_type, turn.message)
            if turn.retry_after is not None:
                answer.headers["retry-after"] = f"{turn.retry_after:g}"
            return answer._replace(delay_seconds=delay)
        if not isinstance(turn, Reply):
            raise TypeError(f"a scripted turn must be a Reply, ErrorReply or Drop: {turn!r}")
        content = [self._with_id(block) for block in turn.content]
        message = {
            "id": f"msg_{number:024d}",
            "type": "message",
            "role": "assistant",
            "model": request["model"],
            "content": content,
            "stop_reason": turn.stop_reason,
            "stop_sequence": turn.stop_sequence,
            "usage": {**self._usage(record, size, content), **(turn.usage or {})},
        }
        return Answer(200, message, {}, delay)

    def _with_id(self, block):
        if block.get("type") != "tool_use" or block.get("id"):
            return block
        with self._lock:
            self._progress.tool_uses_answered += 1
            number = self._progress.tool_uses_answered
        return {**block, "id": f"toolu_{number:024d}"}

    def _next_turn(self, record):
        turns = self.script.turns_by_agent.get(record.agent, ())
        with self._lock:
            used = self._progress.turns_used[record.agent]
            if used < len(turns):
                self._progress.turns_used[record.agent] += 1
                record.turn = used
                return turns[used]
            if record.agent not in self._progress.ran_out:
                self._progress.ran_out.append(record.agent)
        record.ran_out = True
        return self.script.on_exhausted

    def _usage(self, record, size, content):
        request, prefix_tokens, cached = record.body, 0, False
        if _asks_for_cache(request):
            prefix = json.dumps([request.get("tools"), request.get("system")], sort_keys=True)
            prefix_tokens = len(prefix) // BYTES_PER_TOKEN
            with self._lock:
                seen = self._progress.cached_prefixes[record.agent]
                cached = prefix in seen
                seen.add(prefix)
        return {
            "input_tokens": max(size // BYTES_PER_TOKEN - prefix_tokens, 0),
            "output_tokens": max(len(json.dumps(content)) // BYTES_PER_TOKEN, 1),
            "cache_creation_input_tokens": 0 if cached else prefix_tokens,
            "cache_read_input_tokens": prefix_tokens if cached else 0,
        }


def _error_answer(record, status, error_type, message):
    body = {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": record.request_id,
    }
    return Answer(status, body, {}, 0.0)


def serve(script, host="127.0.0.1", port=0, *, default_delay=0.0):
    """A ScriptedMessages server replaying `script` in a background thread (port 0: any
    free port); `default_delay` seconds before every answer whose turn sets none."""
    return ScriptedMessages(script, (host, port), default_delay=default_delay).start()


def main(argv=None):
    parser = argparse.ArgumentParser(description="Serve scripted Claude turns on /v1/messages.")
    parser.add_argument("script", help="a JSON script (see the module's docstring)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 (the default): any free port")
    parser.add_argument("--default-delay", type=float, default=0.0, help="seconds per answer")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with open(args.script, encoding="utf-8") as f:
        script = Script.from_json(json.load(f))
    server = ScriptedMessages(script, (args.host, args.port), default_delay=args.default_delay)
    agents = ", ".join(repr(a) for a in script.turns_by_agent)
    print(f"Scripted Messages API for {agents} at {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        print(
            f"{len(server.requests)} requests, {server.protocol_errors} protocol errors, "
            f"ran out: {server.ran_out}, unused: {server.remaining_turns()}, {server.latency()}",
            flush=True,
        )


if __name__ == "__main__":
    main()
