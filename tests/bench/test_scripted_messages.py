"""bench/scripted_messages.py driven by the real anthropic SDK, sync and async: answers
parsed into Messages, errors raised as the SDK's own exceptions (its retries included),
dropped and slow answers, concurrent agents, the API's validation, and the recording."""

import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import httpx
import pytest
from anthropic.types import Message, TextBlock, ToolUseBlock
from scripted_messages import (
    NOTHING_MORE,
    Script,
    drop,
    error,
    raw,
    serve,
    text,
    tool_use,
    tool_uses,
)

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "scripted_messages.py"
# Any name will do (the server echoes it); a real one warns once the SDK deprecates it.
MODEL = "claude-scripted"
LEAD = "You are the lead investigator of Rootline.\nWork like a senior SRE."
LOGS = "You are the logs analyst, answering one question from the lead investigator.\nBe brief."
METRICS = "You are the metrics analyst, answering one question from the lead investigator."
HELLO = {"role": "user", "content": "The checkout service is failing. Why?"}


def sync_client(api, **options):
    return anthropic.Anthropic(api_key="test", base_url=api.url, **{"max_retries": 0, **options})


def async_client(api, **options):
    return anthropic.AsyncAnthropic(
        api_key="test", base_url=api.url, **{"max_retries": 0, **options}
    )


def ask(client, system=LEAD, messages=(HELLO,), **options):
    """One messages.create call, awaitable when the client is async."""
    return client.messages.create(
        model=MODEL, max_tokens=1024, system=system, messages=list(messages), **options
    )


def results_for(message, output="ok"):
    """The user turn that answers every tool_use of `message`."""
    return {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": block.id, "content": output}
            for block in message.content
            if block.type == "tool_use"
        ],
    }


# Answers.


def test_a_text_turn_is_a_message_with_its_stop_reason_and_usage():
    with serve(Script({"lead investigator": [text("The database ran out of memory.")]})) as api:
        message = ask(sync_client(api))

    assert isinstance(message, Message)
    assert message.model == MODEL
    assert message.id.startswith("msg_")
    assert message.content == [TextBlock(type="text", text="The database ran out of memory.")]
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.cache_read_input_tokens == 0


def test_usage_imitates_prompt_caching_of_the_system_prompt_and_tools():
    system = [{"type": "text", "text": LEAD, "cache_control": {"type": "ephemeral"}}]
    tools = [{"name": "query_logs", "description": "LogQL", "input_schema": {"type": "object"}}]
    script = Script({"lead investigator": [text("one"), text("two", usage={"output_tokens": 7})]})
    with serve(script) as api:
        client = sync_client(api)
        first = ask(client, system, tools=tools).usage
        second = ask(client, system, tools=tools).usage

    assert first.cache_creation_input_tokens > 0 and first.cache_read_input_tokens == 0
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0
    assert second.input_tokens == first.input_tokens
    assert second.output_tokens == 7


def test_tool_use_turns_parse_into_tool_use_blocks():
    script = Script(
        {
            "lead investigator": [
                tool_use("investigate_logs", {"question": "errors in checkout?"}),
                tool_uses(
                    [("investigate_logs", {"question": "a"}), ("investigate_metrics", {})],
                    text="Asking both specialists.",
                ),
            ]
        }
    )

    async def conversation(api):
        async with async_client(api) as client:
            first = await ask(client)
            messages = [HELLO, first.to_param(), results_for(first)]
            second = await ask(client, messages=messages)
            return first, second

    with serve(script) as api:
        first, second = asyncio.run(conversation(api))

    assert first.stop_reason == "tool_use"
    [call] = first.content
    assert isinstance(call, ToolUseBlock)
    assert (call.name, call.input) == ("investigate_logs", {"question": "errors in checkout?"})
    assert call.id.startswith("toolu_")
    assert second.stop_reason == "tool_use"
    assert [b.type for b in second.content] == ["text", "tool_use", "tool_use"]
    assert second.content[0].text == "Asking both specialists."
    assert [b.name for b in second.content[1:]] == ["investigate_logs", "investigate_metrics"]
    assert len({call.id, second.content[1].id, second.content[2].id}) == 3


@pytest.mark.parametrize(
    "stop_reason", ["max_tokens", "refusal", "pause_turn", "model_context_window_exceeded"]
)
def test_any_content_with_any_stop_reason(stop_reason):
    turn = raw([{"type": "text", "text": "The cau"}], stop_reason)
    with serve(Script({"lead": [turn]})) as api:
        message = ask(sync_client(api))

    assert message.stop_reason == stop_reason
    assert message.content[0].text == "The cau"


def test_a_stop_sequence_is_named():
    turn = raw([{"type": "text", "text": "Cause:"}], "stop_sequence", stop_sequence="END")
    with serve(Script({"lead": [turn]})) as api:
        message = ask(sync_client(api), stop_sequences=["END"])

    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "END")


def test_a_callable_turn_answers_from_the_request_it_was_sent():
    def echo(request):
        [result] = request["messages"][-1]["content"]
        return text(f"got {result['tool_use_id']}: {result['content']}")

    script = Script({"lead": [tool_use("query_logs", {}, id="toolu_fixed"), echo]})
    with serve(script) as api:
        client = sync_client(api)
        first = ask(client)
        second = ask(client, messages=[HELLO, first.to_param(), results_for(first, "3 lines")])

    assert second.content[0].text == "got toolu_fixed: 3 lines"


def test_a_turn_used_twice_answers_new_tool_use_ids():
    look = tool_use("alert_context", {})
    with serve(Script({"lead": [look, look]})) as api:
        client = sync_client(api)
        first = ask(client)
        second = ask(client, messages=[HELLO, first.to_param(), results_for(first)])

    assert first.content[0].id != second.content[0].id
    assert api.protocol_errors == 0


# Errors.


def test_a_rate_limit_raises_rate_limit_error_with_retry_after():
    script = Script({"lead": [error(429, "rate_limit_error", "Slow down.", retry_after=3)]})
    with serve(script) as api, pytest.raises(anthropic.RateLimitError) as raised:
        ask(sync_client(api))

    assert raised.value.status_code == 429
    assert raised.value.type == "rate_limit_error"
    assert raised.value.api_message == "Slow down."
    assert raised.value.response.headers["retry-after"] == "3"
    assert raised.value.request_id == api.requests[0].request_id


def test_the_sdk_retries_after_retry_after_and_gets_the_next_turn():
    retry_after = 0.3
    script = Script(
        {"lead": [error(429, "rate_limit_error", "Slow down.", retry_after), text("done")]}
    )
    with serve(script) as api:
        message = ask(sync_client(api, max_retries=2))

    assert message.content[0].text == "done"
    limited, retried = api.requests
    assert (limited.status, retried.status) == (429, 200)
    assert retried.received_at - limited.answered_at >= retry_after
    assert retried.headers["x-stainless-retry-count"] == "1"


@pytest.mark.parametrize(
    ("status", "error_type", "exception"),
    [
        (529, "overloaded_error", anthropic.OverloadedError),
        (500, "api_error", anthropic.InternalServerError),
        (401, "authentication_error", anthropic.AuthenticationError),
        (400, "invalid_request_error", anthropic.BadRequestError),
    ],
)
def test_an_error_turn_raises_the_sdk_exception_for_its_status(status, error_type, exception):
    with (
        serve(Script({"lead": [error(status, error_type, "No.")]})) as api,
        pytest.raises(exception) as raised,
    ):
        asyncio.run(ask_async(api))

    assert raised.value.status_code == status
    assert raised.value.type == error_type
    assert raised.value.body["error"] == {"type": error_type, "message": "No."}


async def ask_async(api, **options):
    async with async_client(api, **options) as client:
        return await ask(client)


def test_overloaded_is_an_internal_server_error():
    assert issubclass(anthropic.OverloadedError, anthropic.InternalServerError)


def test_a_dropped_connection_raises_a_connection_error():
    with serve(Script({"lead": [drop(), text("back")]})) as api:
        client = sync_client(api)
        with pytest.raises(anthropic.APIConnectionError) as raised:
            ask(client)
        assert not isinstance(raised.value, anthropic.APITimeoutError)
        assert ask(client).content[0].text == "back"

    assert [r.status for r in api.requests] == [None, 200]


def test_a_turn_slower_than_the_client_timeout_raises_a_timeout():
    with serve(Script({"lead": [text("late", delay=0.5)]})) as api:
        started = time.monotonic()
        with pytest.raises(anthropic.APITimeoutError):
            asyncio.run(ask_async(api, timeout=0.1))

    assert time.monotonic() - started < 0.5


# Agents.


def test_concurrent_agents_each_get_their_own_turns():
    delay = 0.3
    script = Script(
        {
            "logs analyst": [
                tool_use("query_logs", {"query": '{service="checkout"}'}, delay=delay),
                text("Checkout logs: connection refused to payment-api.", delay=delay),
            ],
            "metrics analyst": [
                tool_use("query_metrics_range", {"query": "up"}, delay=delay),
                text("payment-api went down at 03:31.", delay=delay),
            ],
        }
    )

    async def specialist(client, system):
        first = await ask(client, system)
        second = await ask(client, system, messages=[HELLO, first.to_param(), results_for(first)])
        return second.content[0].text

    async def both(api):
        async with async_client(api) as client:
            return await asyncio.gather(specialist(client, LOGS), specialist(client, METRICS))

    with serve(script) as api:
        started = time.monotonic()
        answers = asyncio.run(both(api))
        elapsed = time.monotonic() - started

    assert answers == [
        "Checkout logs: connection refused to payment-api.",
        "payment-api went down at 03:31.",
    ]
    assert elapsed < 4 * delay  # the two conversations overlapped
    assert [r.turn for r in api.requests_of("logs analyst")] == [0, 1]
    assert [r.turn for r in api.requests_of("metrics analyst")] == [0, 1]
    assert api.remaining_turns() == {}
    assert api.ran_out == []


def test_the_key_found_first_in_the_system_prompts_first_line_names_the_agent():
    script = Script({"lead investigator": [], "logs analyst": [], "Be brief": []})

    assert script.agent_of({"system": LOGS}) == "logs analyst"
    assert script.agent_of({"system": [{"type": "text", "text": LEAD}]}) == "lead investigator"
    assert script.agent_of({"system": "someone else"}) is None
    assert script.agent_of({}) is None
    assert Script({"": [], "lead": []}).agent_of({"system": "someone else"}) == ""


def test_a_custom_rule_attributes_requests():
    def by_user(request):
        return request["metadata"]["user_id"]

    script = Script({"a": [text("for a")], "b": [text("for b")]}, agent_of=by_user)
    with serve(script) as api:
        client = sync_client(api)
        assert ask(client, metadata={"user_id": "b"}).content[0].text == "for b"
        assert ask(client, metadata={"user_id": "a"}).content[0].text == "for a"


def test_an_agent_past_its_last_turn_gets_the_default_and_is_recorded():
    with serve(Script({"lead": [text("only")]})) as api:
        client = sync_client(api)
        ask(client)
        assert ask(client).content[0].text == NOTHING_MORE
        assert ask(client, "nobody").content[0].text == NOTHING_MORE

    assert api.ran_out == ["lead", None]
    assert [(r.agent, r.turn, r.ran_out) for r in api.requests] == [
        ("lead", 0, False),
        ("lead", None, True),
        (None, None, True),
    ]


def test_the_default_after_the_last_turn_can_be_an_error():
    exhausted = error(500, "api_error", "the script ran out")
    with (
        serve(Script({"lead": []}, on_exhausted=exhausted)) as api,
        pytest.raises(anthropic.InternalServerError, match="the script ran out"),
    ):
        ask(sync_client(api))


# Validation.


def test_a_missing_tool_result_is_refused_without_using_a_turn():
    script = Script({"lead": [tool_uses([("a", {}), ("b", {})]), text("done")]})
    with serve(script) as api:
        client = sync_client(api)
        first = ask(client)
        partial = results_for(first)
        partial["content"].pop()
        with pytest.raises(anthropic.BadRequestError, match="without `tool_result`") as raised:
            ask(client, messages=[HELLO, first.to_param(), partial])
        done = ask(client, messages=[HELLO, first.to_param(), results_for(first)])

    assert raised.value.type == "invalid_request_error"
    assert first.content[1].id in raised.value.api_message
    assert done.content[0].text == "done"
    assert [r.status for r in api.requests] == [200, 400, 200]
    assert api.protocol_errors == 1


@pytest.mark.parametrize(
    ("messages", "complaint"),
    [
        ([{"role": "assistant", "content": "Hi"}], "starting with 'user'"),
        ([HELLO, HELLO], "must alternate"),
        (
            [
                HELLO,
                {"role": "assistant", "content": "Let me look."},
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": ""}],
                },
            ],
            "unexpected `tool_use_id` found in `tool_result` blocks: toolu_x",
        ),
        (
            [
                HELLO,
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "toolu_y", "name": "a", "input": {}}],
                },
            ],
            "without `tool_result` blocks immediately after: toolu_y",
        ),
    ],
)
def test_malformed_conversations_are_protocol_errors(messages, complaint):
    with (
        serve(Script({"lead": [text("unused")]})) as api,
        pytest.raises(anthropic.BadRequestError, match=re.escape(complaint)),
    ):
        ask(sync_client(api), messages=messages)

    assert api.protocol_errors == 1
    assert complaint in api.requests[0].protocol_error
    assert api.remaining_turns() == {"lead": 1}


@pytest.mark.parametrize("missing", ["model", "max_tokens"])
def test_a_request_without_model_or_max_tokens_is_refused(missing):
    body = {"model": MODEL, "max_tokens": 10, "system": "lead", "messages": [HELLO]}
    del body[missing]
    with serve(Script({"lead": [text("unused")]})) as api:
        response = httpx.post(f"{api.url}/v1/messages", json=body)

    assert response.status_code == 400
    assert response.headers["request-id"].startswith("req_")
    assert response.json()["error"] == {
        "type": "invalid_request_error",
        "message": f"{missing}: Field required",
    }
    assert api.requests[0].protocol_error == f"{missing}: Field required"


def test_streaming_is_refused_in_the_api_error_shape():
    with (
        serve(Script({"lead": [text("unused")]})) as api,
        pytest.raises(anthropic.BadRequestError, match="does not stream"),
    ):
        ask(sync_client(api), stream=True)

    assert api.protocol_errors == 0


# The recording.


def test_every_request_is_recorded_as_received_and_answered():
    script = Script({"lead": [error(529, "overloaded_error", "Overloaded"), text("ok")]})
    with serve(script, default_delay=0.05) as api:
        client = sync_client(api)
        with pytest.raises(anthropic.OverloadedError):
            ask(client)
        ask(client, "lead\nsecond")

    overloaded, answered = api.requests
    assert overloaded.body["system"] == LEAD and answered.body["system"] == "lead\nsecond"
    assert overloaded.body["messages"] == [HELLO]
    assert "anthropic-version" in answered.headers
    assert answered.headers["x-stainless-retry-count"] == "0"
    assert [(r.agent, r.status) for r in api.requests] == [("lead", 529), ("lead", 200)]
    assert overloaded.received_at + 0.05 <= overloaded.answered_at <= answered.received_at
    latency = api.latency()
    assert latency.count == 2
    assert 0.05 <= latency.p50_seconds <= latency.max_seconds < 1


def test_the_script_file_is_served_from_the_command_line(tmp_path):
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            {
                "agents": {
                    "lead investigator": [
                        {"type": "tool_use", "name": "query_logs", "input": {"q": "x"}},
                        {
                            "type": "error",
                            "status": 529,
                            "error_type": "overloaded_error",
                            "message": "Overloaded",
                        },
                        {"type": "text", "text": "Root cause: OOM.", "delay": 0.01},
                    ]
                },
                "on_exhausted": {"type": "drop"},
            }
        )
    )
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(script), "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        url = re.search(r"http://\S+", process.stdout.readline())[0]
        client = anthropic.Anthropic(api_key="test", base_url=url, max_retries=0)
        first = ask(client)
        with pytest.raises(anthropic.OverloadedError):
            ask(client, messages=[HELLO, first.to_param(), results_for(first)])
        last = ask(client, messages=[HELLO, first.to_param(), results_for(first)])
        with pytest.raises(anthropic.APIConnectionError):
            ask(client)
    finally:
        process.terminate()
        process.wait(timeout=10)

    assert first.content[0].input == {"q": "x"}
    assert last.content[0].text == "Root cause: OOM."


def test_a_script_file_with_an_unknown_turn_type_is_refused():
    with pytest.raises(ValueError, match="a turn's type must be one of"):
        Script.from_json({"agents": {"lead": [{"type": "sleep"}]}})
