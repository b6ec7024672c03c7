"""GET /metrics (rca_site/views.py, rca_site/metrics.py): series counted from rows, and
who may read them."""

import base64
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from django_q.models import OrmQ, Schedule
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from alerts.models import WebhookDelivery
from investigations.models import ToolCall
from rca_site.taskqueue import SWEEP_TASK
from tests.factories import make_alert, make_investigation

METRICS_TOKEN = "test-metrics-token"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def metrics_token(settings):
    settings.ROOTLINE_METRICS_TOKEN = METRICS_TOKEN


def scrape(client, token=METRICS_TOKEN, **headers):
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.get("/metrics", headers=headers)


def samples(response):
    """{(name, sorted label pairs): value} of a text-format exposition."""
    assert response.status_code == 200, response.content
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(found, name, **labels):
    return found.get((name, tuple(sorted(labels.items()))))


def delivery(outcome):
    return WebhookDelivery.objects.create(body=b"{}", body_bytes=2, outcome=outcome)


def finished(status, seconds, **fields):
    started = timezone.now() - timedelta(hours=1)
    return make_investigation(
        status=status,
        started_at=started,
        finished_at=started + timedelta(seconds=seconds),
        **fields,
    )


def ended_step(investigation, agent, tool, status, duration_ms):
    step = ToolCall.start(investigation, agent, tool)
    ToolCall.objects.filter(pk=step.pk).update(
        status=status, duration_ms=duration_ms, finished_at=timezone.now()
    )
    return step


def test_webhook_deliveries_alerts_and_investigations_are_counted_by_state(client):
    for outcome in ["accepted", "accepted", "accepted", "unauthorized"]:
        delivery(outcome)
    make_alert("a1", status="firing")
    make_alert("a2", status="firing")
    make_alert("a3", status="resolved")
    make_investigation(status="queued")
    make_investigation(status="running", started_at=timezone.now())
    finished("completed", 20)
    finished("completed", 400)
    finished("failed", 1000)
    make_investigation(status="cancelled", finished_at=timezone.now())  # before a worker

    found = samples(scrape(client))

    assert value(found, "rootline_webhook_deliveries_total", outcome="accepted") == 3
    assert value(found, "rootline_webhook_deliveries_total", outcome="unauthorized") == 1
    assert value(found, "rootline_alerts", status="firing") == 2
    assert value(found, "rootline_alerts", status="resolved") == 1
    for status, count in [("queued", 1), ("running", 1), ("completed", 2), ("failed", 1)]:
        assert value(found, "rootline_investigations", status=status) == count
    assert value(found, "rootline_investigations_finished_total", status="completed") == 2
    assert value(found, "rootline_investigations_finished_total", status="failed") == 1
    assert value(found, "rootline_investigations_finished_total", status="cancelled") == 1
    assert value(found, "rootline_investigations_finished_total", status="running") is None


def test_investigation_durations_are_a_histogram_of_the_ones_that_ran(client):
    finished("completed", 20)
    finished("completed", 300)  # on a bound: counted under it (le is "at most")
    finished("failed", 1000)
    make_investigation(status="cancelled", finished_at=timezone.now())  # never started

    found = samples(scrape(client))

    name = "rootline_investigation_duration_seconds"
    completed = {"status": "completed"}
    assert value(found, f"{name}_bucket", le="10.0", **completed) == 0
    assert value(found, f"{name}_bucket", le="30.0", **completed) == 1
    assert value(found, f"{name}_bucket", le="120.0", **completed) == 1
    assert value(found, f"{name}_bucket", le="300.0", **completed) == 2
    assert value(found, f"{name}_bucket", le="+Inf", **completed) == 2
    assert value(found, f"{name}_count", **completed) == 2
    assert value(found, f"{name}_sum", **completed) == pytest.approx(320)
    assert value(found, f"{name}_bucket", le="900.0", status="failed") == 0
    assert value(found, f"{name}_bucket", le="1800.0", status="failed") == 1
    assert value(found, f"{name}_count", status="cancelled") is None


def test_tool_calls_by_agent_tool_backend_and_outcome_with_their_latency(client):
    investigation = make_investigation(status="running", started_at=timezone.now())
    ended_step(investigation, "signals", "scan_logs", "ok", 1500)
    ended_step(investigation, "metrics", "query_metrics", "error", 300)
    ended_step(investigation, "metrics", "query_metrics", "ok", 200)
    ended_step(investigation, "lead", "llm_turn", "ok", 12000)
    ended_step(investigation, "lead", "investigate_logs", "ok", 40000)
    ToolCall.start(investigation, "logs", "query_logs")  # still running: not counted yet

    found = samples(scrape(client))

    name = "rootline_tool_call_duration_seconds"
    scan = {"agent": "signals", "tool": "scan_logs", "backend": "loki", "outcome": "ok"}
    assert value(found, f"{name}_count", **scan) == 1
    assert value(found, f"{name}_sum", **scan) == pytest.approx(1.5)
    assert value(found, f"{name}_bucket", le="1.0", **scan) == 0
    assert value(found, f"{name}_bucket", le="2.5", **scan) == 1
    query = {"agent": "metrics", "tool": "query_metrics", "backend": "prometheus"}
    assert value(found, f"{name}_count", outcome="error", **query) == 1
    assert value(found, f"{name}_count", outcome="ok", **query) == 1
    turn = {"agent": "lead", "tool": "llm_turn", "backend": "anthropic", "outcome": "ok"}
    assert value(found, f"{name}_bucket", le="10.0", **turn) == 0
    assert value(found, f"{name}_bucket", le="30.0", **turn) == 1
    delegation = {"agent": "lead", "tool": "investigate_logs", "backend": "none", "outcome": "ok"}
    assert value(found, f"{name}_count", **delegation) == 1
    assert not [key for key in found if ("tool", "query_logs") in key[1]]


def test_llm_tokens_and_cost_by_model(client):
    model = "claude-sonnet-4-5"
    finished(
        "completed",
        60,
        model=model,
        input_tokens=1000,
        cached_tokens=600,
        output_tokens=200,
        cost_usd=Decimal("0.0123"),
    )
    finished("completed", 60, model=model, input_tokens=500, output_tokens=100, cost_usd=0.01)
    finished("completed", 30)  # signals only: no model, no tokens

    found = samples(scrape(client))

    assert value(found, "rootline_llm_tokens_total", model=model, kind="input") == 900
    assert value(found, "rootline_llm_tokens_total", model=model, kind="cache_read") == 600
    assert value(found, "rootline_llm_tokens_total", model=model, kind="output") == 300
    assert value(found, "rootline_llm_cost_usd_total", model=model) == pytest.approx(0.0223)
    assert not [key for key in found if ("model", "") in key[1]]


def test_the_queue_depth_the_oldest_wait_and_the_scheduler_lag(client):
    now = timezone.now()
    OrmQ.objects.create(key="rootline", payload="waiting", lock=now - timedelta(seconds=120))
    OrmQ.objects.create(key="rootline", payload="waiting", lock=now - timedelta(seconds=5))
    OrmQ.objects.create(key="rootline", payload="claimed", lock=now + timedelta(minutes=16))
    Schedule.objects.filter(func=SWEEP_TASK).update(next_run=now - timedelta(seconds=30))

    found = samples(scrape(client))

    assert value(found, "rootline_queue_tasks", state="waiting") == 2
    assert value(found, "rootline_queue_tasks", state="claimed") == 1
    assert 120 <= value(found, "rootline_queue_oldest_task_age_seconds") < 150
    assert 30 <= value(found, "rootline_scheduler_lag_seconds") < 60


def test_before_any_row_every_known_state_is_zero(client):
    """So that the first refused delivery is an increase, not a new series."""
    found = samples(scrape(client))

    for outcome in WebhookDelivery.Outcome.values:
        assert value(found, "rootline_webhook_deliveries_total", outcome=outcome) == 0
    assert value(found, "rootline_alerts", status="firing") == 0
    assert value(found, "rootline_investigations", status="queued") == 0
    assert value(found, "rootline_investigations_finished_total", status="failed") == 0
    assert value(found, "rootline_queue_tasks", state="waiting") == 0
    assert value(found, "rootline_queue_oldest_task_age_seconds") == 0


def test_a_scrape_is_a_few_queries_however_many_rows(client, django_assert_max_num_queries):
    investigation = make_investigation(status="running", started_at=timezone.now())
    for n in range(30):
        delivery("accepted")
        ended_step(investigation, "logs", "query_logs", "ok", n * 100)
        finished("completed", n, model=f"model-{n % 3}")

    with django_assert_max_num_queries(10):
        scrape(client)


def test_openmetrics_when_prometheus_asks_for_it(client):
    make_alert("a1", status="firing")

    response = scrape(client, Accept="application/openmetrics-text; version=1.0.0")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    families = {f.name: f for f in openmetrics_families(response.content.decode())}
    assert families["rootline_alerts"].samples[0].value == 1
    assert families["rootline_webhook_deliveries"].type == "counter"


def test_the_token_is_required(client):
    for token in [None, "wrong-token", ""]:
        response = scrape(client, token=token)

        assert response.status_code == 401, token
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert "ROOTLINE_METRICS_TOKEN" in response.content.decode()


def test_the_token_opens_it_as_bearer_or_as_a_basic_auth_password(client):
    assert scrape(client).status_code == 200
    assert scrape(client)["Content-Type"].startswith("text/plain; version=0.0.4")
    basic = base64.b64encode(f"prometheus:{METRICS_TOKEN}".encode()).decode()
    assert scrape(client, token=None, Authorization=f"Basic {basic}").status_code == 200


def test_without_a_token_set_only_logged_in_staff_may_read_it(client, settings):
    settings.ROOTLINE_METRICS_TOKEN = ""

    refused = scrape(client, token="")
    assert refused.status_code == 403
    assert "ROOTLINE_METRICS_TOKEN is not set" in refused.content.decode()

    client.force_login(User.objects.create_user("viewer"))
    assert scrape(client, token=None).status_code == 403

    client.force_login(User.objects.create_user("sre", is_staff=True))
    assert scrape(client, token=None).status_code == 200
