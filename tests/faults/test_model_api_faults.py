"""The Claude API failing: 429, 529, 500, a dropped connection, or no answer at all.

Whole investigations through the runner and the real anthropic SDK against the scripted
Messages-API server on loopback (bench/scripted_messages.py). Each failure is retried
ROOTLINE_LLM_RETRIES times, each request cut at ROOTLINE_LLM_TIMEOUT, and then the
investigation completes with the signals-only report and the reason. The server counts
the requests, which proves the bound. (tests/investigations/agents/test_team.py has the
retried-then-answered cases and an analyst refused with a 400.)
"""

import itertools
from datetime import timedelta

import pytest
import scripted_messages as scripted

from tests.investigations.agents.scripts import LEAD, LOGS, METRICS
from tests.investigations.agents.test_team import investigation_with, run

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

RETRIES = 3
TIMEOUT = timedelta(milliseconds=500)
HANG_SECONDS = 30  # far past TIMEOUT; the server's thread sleeps it out on its own
RETRY_AFTER_SECONDS = 0.2

FAULTS = {
    "429": (
        scripted.error(429, "rate_limit_error", "slow down", retry_after=RETRY_AFTER_SECONDS),
        "HTTP 429",
    ),
    "529": (scripted.error(529, "overloaded_error", "Overloaded"), "HTTP 529"),
    "500": (scripted.error(500, "api_error", "Internal server error"), "HTTP 500"),
    "dropped": (scripted.drop(), "could not be reached"),
    "hangs": (scripted.text("too late", delay=HANG_SECONDS), "timed out"),
}


def signals_only(investigation, cause):
    """The investigation completed with the scan's report and says why the agents did not."""
    assert investigation.status == "completed", investigation.error
    assert investigation.report["source"] == "signals"
    assert cause in investigation.report["agents_error"]
    assert cause in investigation.error
    assert "The agents did not report" in investigation.report_text
    steps = list(investigation.steps.order_by("sequence"))
    unfinished = [s for s in steps if s.finished_at is None]
    assert unfinished == [], [(s.sequence, s.agent, s.tool, s.status) for s in steps]


@pytest.mark.parametrize("fault", FAULTS)
def test_the_model_failing_every_time_is_tried_a_bounded_number_of_times(settings, fault):
    turn, cause = FAULTS[fault]
    script = scripted.Script({LEAD: [turn] * (RETRIES + 5)})
    with scripted.serve(script) as server:
        investigation = run(investigation_with(settings, server, retries=RETRIES, timeout=TIMEOUT))

    signals_only(investigation, cause)
    assert f"gave up after {RETRIES + 1} attempts" in investigation.error
    assert len(server.requests) == RETRIES + 1
    [turn_step] = investigation.steps.filter(tool="llm_turn")
    assert turn_step.status == "error"
    if fault == "429":  # its retry-after is longer than the backoff, and honoured
        received = [r.received_at for r in server.requests]
        assert min(b - a for a, b in itertools.pairwise(received)) >= RETRY_AFTER_SECONDS


def test_without_retries_the_model_is_asked_once(settings):
    script = scripted.Script({LEAD: [FAULTS["529"][0]] * 3})
    with scripted.serve(script) as server:
        investigation = run(investigation_with(settings, server, retries=0))

    signals_only(investigation, "HTTP 529")
    assert len(server.requests) == 1


def test_the_model_overloaded_after_the_lead_delegated(settings):
    # The lead's first turn goes through; then every request is refused as overloaded.
    overloaded = FAULTS["529"][0]
    script = scripted.Script(
        {
            LEAD: [
                scripted.tool_uses(
                    [
                        ("investigate_logs", {"question": "errors?"}),
                        ("investigate_metrics", {"question": "saturation?"}),
                    ]
                ),
                *[overloaded] * (RETRIES + 5),
            ],
            LOGS: [overloaded] * (RETRIES + 5),
            METRICS: [overloaded] * (RETRIES + 5),
        }
    )
    with scripted.serve(script) as server:
        investigation = run(investigation_with(settings, server, retries=RETRIES))

    signals_only(investigation, "HTTP 529")
    assert len(server.requests_of(LEAD)) == 1
    # One analyst gives up after its attempts; the other is stopped, at most as far.
    analysts = sorted(len(server.requests_of(agent)) for agent in (LOGS, METRICS))
    assert analysts[-1] == RETRIES + 1
    assert 1 <= analysts[0] <= RETRIES + 1
