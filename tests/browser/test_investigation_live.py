"""In real Chromium: log in, watch an investigation's timeline grow without a reload while a
real worker runs it against the scripted model, then read the report."""

import os
from pathlib import Path

import pytest
import scripted_messages as scripted
from django.conf import settings
from django.contrib.auth import get_user_model

from investigations.models import Investigation
from tests.factories import REPORT
from tests.investigations.agents.scripts import LEAD, LOGS, METRICS
from tests.processes import wait_until
from tests.shared import alertmanager_body

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"
PASSWORD = "browser-test-password"
ANSWER = "orders-db was OOM-killed at 03:48:57."


def slow_script():
    """The team's turns, each taking 0.8 s, so that the page shows the run unfold."""
    return scripted.Script(
        {
            LEAD: [
                scripted.tool_uses(
                    [
                        ("investigate_logs", {"question": "Which service errors first?"}),
                        ("investigate_metrics", {"question": "What saturated?"}),
                    ]
                ),
                scripted.tool_use("submit_report", REPORT),
                # the follow-up question
                scripted.tool_use("alert_context", {}),
                scripted.tool_use("answer_question", {"answer": ANSWER, "steps": [5]}),
            ],
            LOGS: [
                scripted.tool_use("alert_context", {}),
                scripted.text("payment-api refuses connections to orders-db."),
            ],
            METRICS: [scripted.text("No metrics store is configured.")],
        }
    )


def test_the_timeline_grows_live_and_the_report_appears(
    page, live_server, post_webhook, start_qcluster, tmp_path, settings
):
    settings.ANTHROPIC_API_KEY = "test-key"  # the pages offer follow-up questions
    get_user_model().objects.create_superuser("sre", "sre@example.com", PASSWORD)
    with scripted.serve(slow_script(), default_delay=0.8) as model:
        worker = start_qcluster(ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=model.url)
        post_webhook(alertmanager_body("firing_single_payment_api"))
        investigation = Investigation.objects.get()

        page.goto(f"{live_server.url}/accounts/login/?next=/investigations/{investigation.pk}/")
        page.fill("input[name=username]", "sre")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"**/investigations/{investigation.pk}/")
        page.evaluate("window.notReloaded = true")

        # The delegations and the analysts' nested steps appear while it runs.
        page.wait_for_selector(".children .step-group.nested details.step", timeout=30_000)
        assert page.evaluate("window.notReloaded")
        wait_until(
            lambda: Investigation.objects.filter(pk=investigation.pk, status="completed").exists(),
            60,
            lambda: "the worker did not complete it. " + worker.describe(),
        )
        page.wait_for_selector("text=Root cause: orders-db", timeout=15_000)

        assert page.evaluate("window.notReloaded")  # all of it arrived without a reload
        tools = page.locator("details.step .tool").all_inner_texts()
        assert tools[0] == "derive_scope" and tools[-1] == "submit_report"
        assert {"investigate_logs", "investigate_metrics", "llm_turn"} <= set(tools)
        # each analyst's steps sit under the lead's delegation that started them
        delegation = page.locator(".step-group:has(> details .tool:text-is('investigate_logs'))")
        assert set(delegation.locator(".children details .agent").all_inner_texts()) == {"logs"}
        assert page.locator("#timeline-tail").count() == 0  # polling stopped
        assert "Completed" in page.inner_text("#outcome")

        # A follow-up question: its steps append to the timeline and the answer arrives live.
        steps_before = page.locator("details.step").count()
        page.fill("input[name=question]", "When exactly did orders-db die?")
        page.click("section.followup button[type=submit]")
        page.wait_for_selector("text=Question queued")
        page.evaluate("window.notReloaded = true")
        page.wait_for_selector(f"text={ANSWER}", timeout=30_000)
        assert page.evaluate("window.notReloaded")
        assert page.locator("details.step").count() > steps_before
        assert "follow_up_question" in page.locator("details.step .tool").all_inner_texts()

    # Feedback is saved.
    page.check("input[name=feedback][value=correct]")
    page.click("section.feedback button[type=submit]")
    page.wait_for_selector("text=Thank you: feedback saved.")
    investigation.refresh_from_db()
    assert investigation.feedback == "correct"
    # The README's screenshots: refreshed with ROOTLINE_UPDATE_SCREENSHOTS=1, else kept apart.
    shots = SCREENSHOTS if os.getenv("ROOTLINE_UPDATE_SCREENSHOTS") else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=shots / "investigation.png", full_page=True)
    page.goto(f"{live_server.url}/")
    page.screenshot(path=shots / "overview.png", full_page=True)
    page.click("nav >> text=Alerts")
    page.click("table.list a")  # the alert
    page.wait_for_selector("text=Labels")
    assert "PaymentApiHighErrorRate" in page.inner_text("h1")
    page.screenshot(path=shots / "alert.png", full_page=True)
    assert (shots / "overview.png").stat().st_size > 0
