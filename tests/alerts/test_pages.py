"""The alert list (filters in the URL, polling) and one alert's page (alerts/views.py)."""

import pytest
from django.urls import reverse
from django.utils.html import escape

from alerts.models import Alert
from tests.shared import alertmanager_body

pytestmark = pytest.mark.django_db


@pytest.fixture
def alerts(post_webhook):
    post_webhook(alertmanager_body("firing_group_of_13"))
    post_webhook(alertmanager_body("firing_single_payment_api"))
    post_webhook(alertmanager_body("firing_single_checkout"))
    post_webhook(alertmanager_body("resolved_checkout"))
    return Alert.objects.all()


def listed(response):
    return list(response.context["page"].object_list)


def test_the_alert_pages_need_a_login(client, alerts):
    for url in (reverse("alerts"), reverse("alert", args=[alerts.first().pk])):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith(reverse("login"))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, lambda a: a),
        ({"status": "resolved"}, lambda a: a.filter(status="resolved")),
        (
            {"service": "checkout"},
            lambda a: [x for x in a if x.labels.get("service") == "checkout"],
        ),
        (
            {"namespace": "production"},
            lambda a: [x for x in a if x.labels.get("namespace") == "production"],
        ),
        (
            {"q": "payment"},
            lambda a: [
                x
                for x in a
                if "payment"
                in str(x.labels).lower() + str(x.annotations).lower() + x.alertname.lower()
            ],
        ),
    ],
)
def test_filters_are_kept_in_the_url(admin_client, alerts, query, expected):
    response = admin_client.get(reverse("alerts"), query)

    assert {a.pk for a in listed(response)} == {a.pk for a in expected(alerts)}
    assert listed(response)  # each filter matches something in the fixtures
    if query:
        value = next(iter(query.values()))
        assert (
            f'value="{value}"' in response.content.decode()
            or "selected" in response.content.decode()
        )


def test_the_list_refreshes_itself_with_its_filters(admin_client, alerts):
    page = admin_client.get(reverse("alerts"), {"status": "firing"}).content.decode()
    assert 'hx-get="/alerts/?status=firing" hx-trigger="every 5s"' in page


def test_an_alert_page_shows_labels_links_history_and_investigation(admin_client, alerts):
    alert = Alert.objects.filter(status="resolved").first()

    page = admin_client.get(reverse("alert", args=[alert.pk])).content.decode()

    assert alert.fingerprint in page
    for name, value in alert.labels.items():
        assert f"<th>{name}</th><td>{value}</td>" in page
    if alert.generator_url:
        assert f'<a href="{escape(alert.generator_url)}"' in page
    for investigation in alert.investigations.all():
        assert reverse("investigation", args=[investigation.pk]) in page
    assert "resolved by delivery" in page


def test_only_web_urls_become_links(admin_client, alerts):
    alert = alerts.first()
    alert.annotations = {"runbook_url": "javascript:alert(1)", "summary": "<b>x</b>"}
    alert.generator_url = "javascript:alert(2)"
    alert.save()

    page = admin_client.get(reverse("alert", args=[alert.pk])).content.decode()

    assert 'href="javascript:' not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page  # escaped, not rendered
