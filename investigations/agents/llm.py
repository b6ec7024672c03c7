"""The one way Rootline calls Claude: the Messages API with caching, retries and a price.

The SDK's own retries are off: retries happen here, so that each wait is bounded, has
jitter, honours `retry-after`, and is counted on the timeline. Rate limits (429), overload
(529), server errors (5xx), timeouts and dropped connections are retried up to `retries`
times; then, and on any other refusal (a bad key, a malformed request), LLMUnavailable is
raised and the investigation falls back to the signals-only report.
"""

import asyncio
import contextlib
import random
import time
import typing
from dataclasses import dataclass

import anthropic
from anthropic.types import Model

CACHE = {"type": "ephemeral"}
MAX_BACKOFF_SECONDS = 30.0
# The least time an attempt gets, however close the deadline.
MIN_ATTEMPT_SECONDS = 5.0
RETRIED = (
    anthropic.RateLimitError,
    anthropic.InternalServerError,  # 500, 502, 503, 504 and 529 (overloaded)
    anthropic.APIConnectionError,  # timeouts included
)


class LLMUnavailable(Exception):
    """The model could not be reached or refused the request; the message says why."""


def newest_sonnet():
    """The newest Sonnet model the installed SDK knows of (its `Model` type lists them)."""
    names = []

    def walk(kind):
        for arg in typing.get_args(kind):
            if isinstance(arg, str):
                names.append(arg)
            else:
                walk(arg)

    walk(Model)
    sonnets = [n for n in names if n.startswith("claude-sonnet-") and not n[-8:].isdigit()]

    def version(name):
        return tuple(int(p) for p in name.removeprefix("claude-sonnet-").split("-") if p.isdigit())

    return max(sonnets, key=version) if sonnets else "claude-sonnet-4-5"


@dataclass
class Answer:
    message: anthropic.types.Message
    attempts: int
    latency_ms: int
    waited_ms: int


class LLM:
    """A model behind the Messages API, as the agents use it."""

    def __init__(self, client, model, *, max_tokens, retries, backoff_seconds, timeout_seconds):
        self.client = client
        self.model = model
        self.max_tokens = max_tokens
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.timeout_seconds = timeout_seconds

    @classmethod
    def from_settings(cls, client=None):
        """The configured model, or None without ANTHROPIC_API_KEY (signals-only).
        `client` replaces the AsyncAnthropic client the settings would make."""
        from django.conf import settings

        if not settings.ANTHROPIC_API_KEY:
            return None
        client = client or anthropic.AsyncAnthropic(
            api_key=settings.ANTHROPIC_API_KEY,
            base_url=settings.ANTHROPIC_BASE_URL or None,
            max_retries=0,
        )
        return cls(
            client,
            settings.ROOTLINE_LLM_MODEL,
            max_tokens=settings.ROOTLINE_LLM_MAX_TOKENS,
            retries=settings.ROOTLINE_LLM_RETRIES,
            backoff_seconds=settings.ROOTLINE_LLM_BACKOFF.total_seconds(),
            timeout_seconds=settings.ROOTLINE_LLM_TIMEOUT.total_seconds(),
        )

    async def create(self, *, system, tools, messages, tool_choice=None, deadline=None):
        """One assistant turn; the system prompt and the tool definitions are cached.

        With a `deadline` (time.monotonic()), no attempt waits, nor a retry starts, past it
        (an attempt still gets MIN_ATTEMPT_SECONDS): a hanging API cannot hold a turn for
        (retries + 1) x the timeout beyond the investigation's time budget.
        """
        request = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": [{"type": "text", "text": system, "cache_control": CACHE}],
            "messages": messages,
        }
        if tools:
            request["tools"] = [*tools[:-1], {**tools[-1], "cache_control": CACHE}]
        if tool_choice:
            request["tool_choice"] = tool_choice
        waited = 0.0
        for attempt in range(self.retries + 1):
            started = time.monotonic()
            timeout = self.timeout_seconds
            if deadline is not None:
                timeout = min(timeout, max(deadline - started, MIN_ATTEMPT_SECONDS))
            try:
                message = await self.client.messages.create(**request, timeout=timeout)
            except RETRIED as exc:
                if attempt == self.retries:
                    raise LLMUnavailable(
                        f"{describe(exc)}; gave up after {attempt + 1} attempts"
                    ) from exc
                pause = self._pause(attempt, exc)
                if deadline is not None and time.monotonic() + pause >= deadline:
                    raise LLMUnavailable(
                        f"{describe(exc)}; gave up after {attempt + 1} attempts: "
                        "the investigation's time budget (ROOTLINE_LLM_TIME_BUDGET) ran out"
                    ) from exc
                waited += pause
                await asyncio.sleep(pause)
            except anthropic.APIStatusError as exc:
                raise LLMUnavailable(f"the API refused the request: {describe(exc)}") from exc
            else:
                latency = int((time.monotonic() - started) * 1000)
                return Answer(message, attempt + 1, latency, int(waited * 1000))
        raise AssertionError("unreachable")

    def _pause(self, attempt, exc):
        """Exponential backoff with full jitter; `retry-after` is honoured when longer."""
        pause = random.uniform(0.5, 1.0) * self.backoff_seconds * 2**attempt
        response = getattr(exc, "response", None)
        if response is not None:
            with contextlib.suppress(ValueError):
                pause = max(pause, float(response.headers.get("retry-after", 0)))
        return min(pause, MAX_BACKOFF_SECONDS)


def describe(exc):
    if isinstance(exc, anthropic.APITimeoutError):
        return "the model API timed out"
    if isinstance(exc, anthropic.APIConnectionError):
        return f"the model API could not be reached ({exc})"
    if isinstance(exc, anthropic.APIStatusError):
        return f"HTTP {exc.status_code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def cost_usd(model, usage, prices):
    """What `usage` (input, output, cache write, cache read tokens) costs, from `prices`:
    {model prefix: (input, output, cache write, cache read) USD per million tokens}."""
    table = next((p for prefix, p in prices.items() if model.startswith(prefix)), None)
    if table is None:
        return 0.0
    return sum(n * price for n, price in zip(usage, table, strict=True)) / 1_000_000
