"""Pieces of the agent loop that need no model: summarising old results, budgets."""

import asyncio
import time
from types import SimpleNamespace

import anthropic
import httpx
import pytest

from investigations.agents import llm as llm_module
from investigations.agents.loop import Budget, estimate_tokens, summarise_old_results


def result_message(n, size):
    content = f"[step {n}] " + "x" * size
    return {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": f"t{n}", "content": content}],
    }


def test_older_tool_results_are_summarised_and_recent_ones_kept():
    messages = []
    for n in range(4):
        messages.append({"role": "assistant", "content": [{"type": "text", "text": "ask"}]})
        messages.append(result_message(n, 4000))
    before = estimate_tokens(messages)

    shortened = summarise_old_results(messages)

    assert shortened == 3
    assert estimate_tokens(messages) < before / 2
    first = messages[1]["content"][0]["content"]
    assert first.startswith("[step 0] xxx")  # the step reference survives
    assert "older result summarised: 927 tokens left out" in first
    assert messages[-1]["content"][0]["content"] == "[step 3] " + "x" * 4000


def test_the_budget_counts_every_kind_of_token():
    budget = Budget(tokens=100, seconds=60, compact_at_tokens=8000)
    usage = SimpleNamespace(
        input_tokens=10,
        output_tokens=20,
        cache_creation_input_tokens=30,
        cache_read_input_tokens=39,
    )

    budget.charge(usage)
    assert budget.usage == [10, 20, 30, 39] and budget.exhausted() is None
    budget.charge(usage)
    assert budget.exhausted() == "the token budget"
    assert Budget(tokens=100, seconds=0, compact_at_tokens=1).exhausted() == "the time budget"


class HangingMessages:
    """A Messages API that never answers in time: each call waits out its timeout."""

    def __init__(self):
        self.timeouts = []

    async def create(self, *, timeout, **request):
        self.timeouts.append(timeout)
        await asyncio.sleep(timeout)
        raise anthropic.APITimeoutError(request=httpx.Request("POST", "http://model.test"))


def model_behind(api, **limits):
    return llm_module.LLM(SimpleNamespace(messages=api), "claude-test", max_tokens=100, **limits)


def test_a_hanging_api_gives_up_at_the_deadline_not_after_every_retry(monkeypatch):
    monkeypatch.setattr(llm_module, "MIN_ATTEMPT_SECONDS", 0.05)
    api = HangingMessages()
    model = model_behind(api, retries=4, backoff_seconds=0.01, timeout_seconds=120)
    deadline = time.monotonic() + 0.3

    with pytest.raises(llm_module.LLMUnavailable, match="time budget"):
        asyncio.run(model.create(system="s", tools=[], messages=[], deadline=deadline))

    assert api.timeouts[0] <= 0.3  # not the 120 s of a whole attempt
    assert all(t <= 0.3 for t in api.timeouts)
    assert len(api.timeouts) < 5  # gave up before every retry was spent


def test_without_a_deadline_every_retry_gets_the_whole_timeout(monkeypatch):
    api = HangingMessages()
    model = model_behind(api, retries=2, backoff_seconds=0.0, timeout_seconds=0.01)

    with pytest.raises(llm_module.LLMUnavailable, match="gave up after 3 attempts"):
        asyncio.run(model.create(system="s", tools=[], messages=[]))

    assert api.timeouts == [0.01, 0.01, 0.01]
