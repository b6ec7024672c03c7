"""A real django-q2 cluster (`manage.py qcluster`) runs the investigation the webhook queued."""

import pytest
import scripted_messages as scripted
from django.conf import settings
from django_q.models import OrmQ, Success

from investigations.models import TASK, Investigation
from tests.factories import REPORT
from tests.investigations.agents.scripts import full_script
from tests.processes import wait_until
from tests.shared import alertmanager_body

PROJECT_ROOT = settings.BASE_DIR
DEADLINE_SECONDS = 30

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_real_worker_runs_the_queued_investigation_and_records_its_scope(
    post_webhook, start_qcluster
):
    body = alertmanager_body("firing_single_checkout")
    sent = body["alerts"][0]
    assert post_webhook(body).json()["investigations_queued"] == 1
    investigation = Investigation.objects.get()
    assert investigation.status == "queued"
    assert OrmQ.objects.count() == 1

    worker = start_qcluster()

    def report():
        investigation.refresh_from_db()
        steps = list(investigation.steps.values("agent", "tool", "status", "error"))
        return (
            f"{investigation} error={investigation.error!r} steps={steps} "
            f"queued tasks={OrmQ.objects.count()}\n{worker.describe()}"
        )

    wait_until(
        lambda: Investigation.objects.filter(
            pk=investigation.pk, status__in=Investigation.FINISHED
        ).exists(),
        DEADLINE_SECONDS,
        lambda: "the worker did not finish the investigation. " + report(),
    )
    investigation.refresh_from_db()
    assert investigation.status == "completed", report()
    assert investigation.attempts == 1
    assert investigation.created_at <= investigation.started_at <= investigation.finished_at
    step = investigation.steps.order_by("sequence").first()
    assert (step.agent, step.tool, step.status) == ("scope", "derive_scope", "ok"), report()
    assert investigation.report["source"] == "signals", report()
    assert step.input == {"alerts": [sent["fingerprint"]]}
    assert step.output["matchers"] == {"namespace": "production"}
    assert step.output["services"] == [sent["labels"]["service"]]
    assert step.output["alertnames"] == [sent["labels"]["alertname"]]
    assert investigation.scope == step.output

    # django-q2 acknowledges the task after the worker returns: off the queue, a success.
    success = wait_until(
        lambda: not OrmQ.objects.exists() and Success.objects.first(),
        DEADLINE_SECONDS,
        lambda: "the task was not acknowledged. " + report(),
    )
    assert success.func == TASK
    assert success.args == (investigation.pk,)
    assert worker.running, worker.describe()


def test_a_worker_killed_mid_investigation_leaves_it_to_the_next_worker(
    post_webhook, start_qcluster
):
    # The model hangs on the lead's first turn; the worker is killed while it waits.
    # django-q2 hands the task on once its retry time (timeout + grace) has passed, and
    # the next worker takes the stale investigation over and completes it.
    lead = "lead investigator"
    script = scripted.Script(
        {lead: [scripted.text("...", delay=60), scripted.tool_use("submit_report", REPORT)]}
    )
    environment = {
        "ANTHROPIC_API_KEY": "test-key",
        "ROOTLINE_INVESTIGATION_TIMEOUT": "5s",
        "ROOTLINE_TASK_RETRY_GRACE": "2s",
        "ROOTLINE_LLM_RETRIES": "0",
    }
    with scripted.serve(script) as server:
        environment["ANTHROPIC_BASE_URL"] = server.url
        assert post_webhook(alertmanager_body("firing_single_checkout")).status_code == 202
        investigation = Investigation.objects.get()
        first = start_qcluster(**environment)
        wait_until(
            lambda: server.requests_of(lead),
            DEADLINE_SECONDS,
            lambda: "the lead never asked the model. " + first.describe(),
        )
        first.kill()  # the whole cluster, mid-turn
        investigation.refresh_from_db()
        assert (investigation.status, investigation.attempts) == ("running", 1)

        second = start_qcluster(**environment)
        wait_until(
            lambda: Investigation.objects.filter(
                pk=investigation.pk, status__in=Investigation.FINISHED
            ).exists(),
            DEADLINE_SECONDS,
            lambda: "nobody took the investigation over. " + second.describe(),
        )

    investigation.refresh_from_db()
    assert investigation.status == "completed", investigation.error
    assert investigation.attempts == 2
    assert investigation.report["source"] == "agents"
    assert len(server.requests_of(lead)) == 2


def test_an_alert_ends_in_the_agents_report_through_a_real_worker(post_webhook, start_qcluster):
    with scripted.serve(full_script()) as server:
        post_webhook(alertmanager_body("firing_single_payment_api"))
        investigation = Investigation.objects.get()
        worker = start_qcluster(ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=server.url)
        wait_until(
            lambda: Investigation.objects.filter(
                pk=investigation.pk, status__in=Investigation.FINISHED
            ).exists(),
            DEADLINE_SECONDS,
            lambda: "the worker did not finish. " + worker.describe(),
        )

    investigation.refresh_from_db()
    assert investigation.status == "completed", investigation.error
    assert investigation.report["source"] == "agents"
    steps = list(investigation.steps.order_by("sequence"))
    delegations = {s.tool: s for s in steps if s.tool.startswith("investigate_")}
    assert set(delegations) == {"investigate_logs", "investigate_metrics"}
    for tool, agent in (("investigate_logs", "logs"), ("investigate_metrics", "metrics")):
        nested = [s for s in steps if s.parent_id == delegations[tool].pk]
        assert nested and {s.agent for s in nested} == {agent}
    assert steps[-1].tool == "submit_report"
    assert server.protocol_errors == 0
