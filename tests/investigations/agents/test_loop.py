"""Pieces of the agent loop that need no model: summarising old results, budgets."""

from types import SimpleNamespace

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
