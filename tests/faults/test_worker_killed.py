"""A worker SIGKILLed mid-investigation, on every attempt: it ends `failed`, saying why.

A single kill is covered by tests/investigations/test_worker.py
(test_a_worker_killed_mid_investigation_leaves_it_to_the_next_worker): the next worker
takes the investigation over and completes it. Here the investigation kills its worker
each time (as one that runs it out of memory would): after the restart it must not be
run a third time, and must not stay `running`.
"""

import pytest
import scripted_messages as scripted
from django.conf import settings

from investigations.models import Investigation
from tests.investigations.agents.scripts import LEAD
from tests.processes import wait_until
from tests.shared import alertmanager_body

pytestmark = [pytest.mark.slow, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

# ROOTLINE_INVESTIGATION_TIMEOUT + ROOTLINE_TASK_RETRY_GRACE below is 7 s: django-q2 hands
# a task whose worker died to the next worker after that; this leaves room for slow CI.
DEADLINE_SECONDS = 45
ENVIRONMENT = {
    "ANTHROPIC_API_KEY": "test-key",
    "ROOTLINE_INVESTIGATION_TIMEOUT": "5s",
    "ROOTLINE_TASK_RETRY_GRACE": "2s",
    "ROOTLINE_LLM_RETRIES": "0",
}


def test_a_worker_killed_on_every_attempt_ends_the_investigation_failed(
    post_webhook, start_qcluster
):
    attempts = settings.Q_CLUSTER["max_attempts"]
    # The model hangs on every lead turn; the worker is killed while it waits.
    script = scripted.Script({LEAD: [scripted.text("...", delay=60)] * (attempts + 1)})
    with scripted.serve(script) as server:
        environment = {**ENVIRONMENT, "ANTHROPIC_BASE_URL": server.url}
        assert post_webhook(alertmanager_body("firing_single_checkout")).status_code == 202
        investigation = Investigation.objects.get()
        for attempt in range(1, attempts + 1):
            worker = start_qcluster(**environment)
            wait_until(
                lambda n=attempt: len(server.requests_of(LEAD)) == n,
                DEADLINE_SECONDS,
                lambda n=attempt, w=worker: f"attempt {n} never asked the model. {w.describe()}",
            )
            worker.kill()  # the whole cluster, mid-turn
            investigation.refresh_from_db()
            assert (investigation.status, investigation.attempts) == ("running", attempt)

        restarted = start_qcluster(**environment)
        wait_until(
            lambda: (
                Investigation.objects.filter(
                    pk=investigation.pk, status__in=Investigation.FINISHED
                ).exists()
                or len(server.requests_of(LEAD)) > attempts
            ),
            DEADLINE_SECONDS,
            lambda: "the investigation was left running. " + restarted.describe(),
        )

    investigation.refresh_from_db()
    assert len(server.requests_of(LEAD)) == attempts, "run again past its attempts"
    assert investigation.status == "failed"
    assert investigation.attempts == attempts
    assert f"attempt {attempts} of {attempts}" in investigation.error
    assert not Investigation.objects.filter(status="running").exists()
