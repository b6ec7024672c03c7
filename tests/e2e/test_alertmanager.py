"""A real Alertmanager notifies Rootline: the alert is stored, investigated, then resolved.

Prometheus' part is played by posting to Alertmanager's /api/v2/alerts; everything after
that (grouping, the webhook's JSON, its headers and token) is Alertmanager's own.
"""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from alerts.models import Alert, WebhookDelivery
from investigations.models import TASK, Investigation
from tests.processes import wait_until

DEADLINE_SECONDS = 20

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LABELS = {
    "alertname": "CheckoutLatencyHigh",
    "service": "checkout",
    "namespace": "production",
    "severity": "critical",
}


def rfc3339(moment: datetime):
    """A time as Alertmanager's API takes it: UTC, to the millisecond."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stored_state(alertmanager):
    """What Rootline holds, and what Alertmanager said, for a failure message."""
    deliveries = list(
        WebhookDelivery.objects.order_by("pk").values("outcome", "status_code", "error", "headers")
    )
    alerts = list(Alert.objects.values("fingerprint", "status", "starts_at", "ends_at", "labels"))
    investigations = list(Investigation.objects.values("pk", "status", "error"))
    return (
        f"\ndeliveries: {deliveries}\nalerts: {alerts}\ninvestigations: {investigations}"
        f"\nqueued tasks: {OrmQ.objects.count()}\n{alertmanager.describe()}"
    )


def test_an_alert_from_alertmanager_is_stored_queued_for_investigation_and_resolved(
    alertmanager,
):
    starts_at = (timezone.now() - timedelta(minutes=1)).replace(microsecond=0)
    alert = {
        "labels": LABELS,
        "annotations": {"summary": "checkout p95 latency above 1s"},
        "startsAt": rfc3339(starts_at),
        "generatorURL": "http://prometheus.example/graph?g0.expr=checkout_latency",
    }

    alertmanager.post_alerts([alert])

    # The webhook enqueues the investigation once its transaction commits: last of all.
    wait_until(
        lambda: OrmQ.objects.exists(),
        DEADLINE_SECONDS,
        lambda: "no investigation was queued." + stored_state(alertmanager),
    )
    stored = Alert.objects.get()
    assert stored.labels == LABELS
    assert stored.alertname == "CheckoutLatencyHigh"
    assert stored.severity == "critical"
    assert stored.status == "firing"
    assert stored.starts_at == starts_at
    assert stored.ends_at is None
    assert stored.annotations == alert["annotations"]
    assert stored.generator_url == alert["generatorURL"]
    assert stored.group_key == '{}:{alertname="CheckoutLatencyHigh", namespace="production"}'
    delivery = stored.first_delivery
    assert delivery.outcome == WebhookDelivery.Outcome.ACCEPTED, stored_state(alertmanager)
    assert delivery.headers["User-Agent"].startswith("Alertmanager/")
    assert delivery.headers["Authorization"] == "Bearer [not stored]"
    investigation = Investigation.objects.get()
    assert investigation.status == "queued"
    assert list(investigation.alerts.all()) == [stored]
    [queued] = OrmQ.objects.all()
    assert queued.func() == TASK
    assert queued.args() == (investigation.pk,)

    ends_at = (timezone.now() - timedelta(seconds=1)).replace(microsecond=0)
    alertmanager.post_alerts([{**alert, "endsAt": rfc3339(ends_at)}])

    resolved = wait_until(
        lambda: Alert.objects.filter(status="resolved").first(),
        DEADLINE_SECONDS,
        lambda: "the alert was not resolved." + stored_state(alertmanager),
    )
    assert resolved.pk == stored.pk
    assert resolved.starts_at == starts_at
    assert resolved.ends_at == ends_at
    assert resolved.resolved_delivery.headers["User-Agent"].startswith("Alertmanager/")
    assert Alert.objects.count() == 1, stored_state(alertmanager)
    assert Investigation.objects.count() == 1
    assert OrmQ.objects.count() == 1
    refused = WebhookDelivery.objects.exclude(outcome=WebhookDelivery.Outcome.ACCEPTED)
    assert not refused.exists(), stored_state(alertmanager)
    assert "Notify for alerts failed" not in alertmanager.process.log(tail=10**6)
