"""Triage in Django admin (alerts/admin.py, investigations/admin.py)."""

import pytest
from django.urls import reverse

from alerts.models import WebhookDelivery
from investigations import runner
from investigations.models import Investigation
from tests.shared import alertmanager_body

pytestmark = pytest.mark.django_db


@pytest.fixture
def triage(admin_client, post_webhook):
    """Alerts of two groups delivered, the first investigation run."""
    post_webhook(alertmanager_body("firing_group_of_13"))
    post_webhook(alertmanager_body("firing_single_payment_api"))
    post_webhook(alertmanager_body("firing_single_checkout"), token="wrong")
    runner.run(Investigation.objects.order_by("pk").first().pk)
    return admin_client


def listed(response):
    return list(response.context["cl"].result_list)


def test_admin_requires_login(client):
    response = client.get(reverse("admin:alerts_alert_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("", 14),
        ("status=firing", 14),
        ("status=resolved", 0),
        ("severity=warning", 13),
        ("alertname=PaymentApiHighErrorRate", 1),
        ("service=api-gateway", 13),
        ("service=payment-api", 1),
        ("namespace=production", 14),
        ("q=reload", 1),  # free text over labels and annotations
    ],
)
def test_alerts_can_be_filtered(triage, query, count):
    response = triage.get(reverse("admin:alerts_alert_changelist") + "?" + query)

    assert response.status_code == 200
    assert len(listed(response)) == count


def test_an_alert_page_shows_its_labels_and_investigation(triage):
    alert = Investigation.objects.order_by("pk").first().alerts.first()

    response = triage.get(reverse("admin:alerts_alert_change", args=[alert.pk]))

    assert response.status_code == 200
    assert alert.labels["pod"] in response.content.decode()
    assert f"investigation {alert.investigations.get().pk}" in response.content.decode()


def test_deliveries_are_read_only_and_show_the_body(triage):
    refused = WebhookDelivery.objects.get(outcome="unauthorized")

    changelist = triage.get(
        reverse("admin:alerts_webhookdelivery_changelist") + "?outcome=unauthorized"
    )
    page = triage.get(reverse("admin:alerts_webhookdelivery_change", args=[refused.pk]))
    post = triage.post(reverse("admin:alerts_webhookdelivery_change", args=[refused.pk]), {})

    assert listed(changelist) == [refused]
    assert page.status_code == 200
    assert "CheckoutLatencyHigh" in page.content.decode()
    assert "Bearer [not stored]" in page.content.decode()
    assert post.status_code == 403


def test_an_investigation_page_shows_its_timeline(triage):
    investigation = Investigation.objects.order_by("pk").first()

    response = triage.get(
        reverse("admin:investigations_investigation_change", args=[investigation.pk])
    )

    assert response.status_code == 200
    assert "derive_scope" in response.content.decode()
    assert "api-gateway" in response.content.decode()


def test_investigate_again_queues_a_rerun(triage):
    first = Investigation.objects.order_by("pk").first()

    response = triage.post(
        reverse("admin:investigations_investigation_changelist"),
        {"action": "investigate_again", "_selected_action": [first.pk]},
        follow=True,
    )

    assert response.status_code == 200
    again = Investigation.objects.get(rerun_of=first)
    assert again.status == "queued"
    assert again.alerts.count() == first.alerts.count() == 13
    assert "Queued 1 new investigation" in response.content.decode()


def test_an_investigation_page_shows_its_suspects_and_report(triage):
    investigation = Investigation.objects.order_by("pk").first()
    investigation.suspects = [
        {
            "service": "orders-db",
            "score": 1.5,
            "evidence": [
                {"kind": "paths", "incident_diverged": 30, "missing_steps": []},
                {"kind": "logs", "incident_lines": 12, "new_template_lines": 9, "late": True},
                {"kind": "metric", "metric": "busy", "direction": "up", "score": 41.0},
            ],
        }
    ]
    investigation.save(update_fields=["suspects"])

    response = triage.get(
        reverse("admin:investigations_investigation_change", args=[investigation.pk])
    )

    page = response.content.decode()
    assert (
        "<b>orders-db</b> (1.50): 30 requests stopped here; 12 error-like lines, 9 new, "
        "after the alert fired; busy up (41.0)"
    ) in page
    assert "Not checked: metrics (ROOTLINE_PROMETHEUS_URL is not set)" in page  # the report


def test_cancel_stops_a_queued_investigation(triage):
    queued = Investigation.objects.filter(status="queued").first()

    response = triage.post(
        reverse("admin:investigations_investigation_changelist"),
        {"action": "cancel", "_selected_action": [queued.pk]},
        follow=True,
    )

    assert "1 investigation(s) cancelled." in response.content.decode()
    queued.refresh_from_db()
    assert queued.status == "cancelled"
    assert queued.error == "cancelled by admin"
