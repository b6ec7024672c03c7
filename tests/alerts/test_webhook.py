"""POST /webhooks/alertmanager (alerts/api.py, alerts/ingest.py)."""

import base64
import json
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django_q.models import OrmQ

from alerts.models import Alert, WebhookDelivery
from investigations.models import Investigation
from tests.factories import make_alert
from tests.shared import alertmanager_body, alertmanager_fixture_names

pytestmark = pytest.mark.django_db


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def assert_refused(response, status, error):
    """A refusal answers the one error shape, keeps the delivery and writes no alert."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == error
    assert body["message"]
    delivery = WebhookDelivery.objects.get()
    assert delivery.status_code == status
    assert delivery.error == body["message"]
    assert Alert.objects.count() == 0
    assert Investigation.objects.count() == 0
    return delivery


@pytest.mark.parametrize("name", alertmanager_fixture_names())
def test_every_recorded_delivery_is_accepted(post_webhook, name):
    body = alertmanager_body(name)

    response = post_webhook(body)

    assert response.status_code == 202, response.content
    answer = response.json()
    assert set(answer) == {
        "status", "alerts_received", "alerts_new", "alerts_resolved", "investigations_queued",
    }  # fmt: skip
    assert answer["status"] == "accepted"
    assert answer["alerts_received"] == len(body["alerts"])
    assert Alert.objects.count() == len({a["fingerprint"] for a in body["alerts"]})
    delivery = WebhookDelivery.objects.get()
    assert delivery.outcome == WebhookDelivery.Outcome.ACCEPTED
    assert json.loads(bytes(delivery.body)) == body


def test_a_new_firing_episode_is_stored_with_its_labels(post_webhook):
    body = alertmanager_body("firing_single_payment_api")
    sent = body["alerts"][0]

    answer = post_webhook(body).json()

    assert answer["alerts_new"] == 1
    assert answer["investigations_queued"] == 1
    alert = Alert.objects.get()
    assert alert.fingerprint == sent["fingerprint"]
    assert alert.starts_at.isoformat().startswith(sent["startsAt"][:19])
    assert alert.ends_at is None  # Go's zero time means "no end yet"
    assert alert.status == "firing"
    assert alert.labels == sent["labels"]
    assert alert.annotations == sent["annotations"]
    assert alert.alertname == sent["labels"]["alertname"]
    assert alert.generator_url == sent["generatorURL"]
    assert alert.group_key == body["groupKey"]
    assert alert.receive_count == 1


def test_the_same_delivery_twice_creates_nothing_new(post_webhook):
    body = alertmanager_body("firing_group_of_13")

    first = post_webhook(body).json()
    second = post_webhook(body).json()

    assert first["alerts_new"] == 13
    assert second == {
        "status": "accepted",
        "alerts_received": 13,
        "alerts_new": 0,
        "alerts_resolved": 0,
        "investigations_queued": 0,
    }
    assert Alert.objects.count() == 13
    assert set(Alert.objects.values_list("receive_count", flat=True)) == {2}
    assert Investigation.objects.count() == 1


def test_a_group_update_joins_the_investigation_of_its_group(post_webhook):
    first = post_webhook(alertmanager_body("firing_group_first")).json()
    update = post_webhook(alertmanager_body("firing_group_of_13")).json()

    assert first["investigations_queued"] == 1
    assert update["alerts_new"] == 12  # the first alert is among the 13 again
    assert update["investigations_queued"] == 0
    investigation = Investigation.objects.get()
    assert investigation.alerts.count() == 13
    assert Alert.objects.get(fingerprint="4d646127779dd05b").receive_count == 2


def test_a_group_seen_again_after_the_window_starts_a_new_investigation(post_webhook, settings):
    post_webhook(alertmanager_body("firing_group_first"))
    Investigation.objects.update(
        created_at=Investigation.objects.get().created_at
        - settings.ROOTLINE_GROUP_WINDOW
        - timedelta(seconds=1)
    )

    answer = post_webhook(alertmanager_body("firing_group_of_13")).json()

    assert answer["investigations_queued"] == 1
    assert Investigation.objects.count() == 2
    assert Investigation.objects.order_by("-created_at").first().alerts.count() == 12


@pytest.mark.parametrize("service", ["checkout", "payment_api"])
def test_the_resolution_updates_the_firing_episode(post_webhook, service):
    post_webhook(alertmanager_body(f"firing_single_{service}"))
    resolved = alertmanager_body(f"resolved_{service}")

    answer = post_webhook(resolved).json()
    again = post_webhook(resolved).json()

    assert answer["alerts_new"] == 0
    assert answer["alerts_resolved"] == 1
    assert again["alerts_resolved"] == 0  # already resolved: no transition
    alert = Alert.objects.get()
    assert alert.status == "resolved"
    assert alert.ends_at.isoformat().startswith(resolved["alerts"][0]["endsAt"][:19])
    assert alert.receive_count == 3
    assert alert.resolved_delivery == WebhookDelivery.objects.order_by("pk")[1]


def test_a_resolution_whose_firing_was_never_seen_is_stored_resolved(post_webhook):
    answer = post_webhook(alertmanager_body("resolved_checkout")).json()

    assert answer["alerts_new"] == 1
    assert answer["alerts_resolved"] == 1
    assert answer["investigations_queued"] == 0
    assert Alert.objects.get().status == "resolved"
    assert Investigation.objects.count() == 0


def test_an_episode_firing_again_after_its_resolution_is_firing(post_webhook):
    post_webhook(alertmanager_body("resolved_checkout"))

    post_webhook(alertmanager_body("firing_single_checkout"))

    alert = Alert.objects.get()
    assert alert.status == "firing"
    assert alert.ends_at is None
    assert alert.resolved_delivery is None


def test_only_listed_severities_start_investigations(post_webhook, settings):
    settings.ROOTLINE_INVESTIGATE_SEVERITIES = ["critical"]
    body = alertmanager_body("firing_single_checkout")
    body["alerts"][0]["labels"]["severity"] = "warning"

    answer = post_webhook(body).json()

    assert answer["alerts_new"] == 1
    assert answer["investigations_queued"] == 0
    assert Investigation.objects.count() == 0


def test_a_listed_severity_starts_one(post_webhook, settings):
    settings.ROOTLINE_INVESTIGATE_SEVERITIES = ["critical", "page"]
    body = alertmanager_body("firing_single_checkout")
    body["alerts"][0]["labels"]["severity"] = "Critical"

    assert post_webhook(body).json()["investigations_queued"] == 1


def test_the_investigation_is_queued_for_a_worker(post_webhook):
    post_webhook(alertmanager_body("firing_single_checkout"))

    investigation = Investigation.objects.get()
    assert investigation.status == "queued"
    [queued] = OrmQ.objects.all()
    assert queued.func() == "investigations.tasks.run_investigation"
    assert queued.task["args"] == (investigation.pk,)


def test_repeated_alerts_within_one_payload_count_once(post_webhook):
    body = alertmanager_body("firing_single_checkout")
    body["alerts"] = body["alerts"] * 3

    answer = post_webhook(body).json()

    assert answer["alerts_received"] == 3
    assert answer["alerts_new"] == 1
    assert Alert.objects.get().receive_count == 1


# --- authentication ------------------------------------------------------------------


def test_no_token_is_refused(post_webhook):
    delivery = assert_refused(
        post_webhook(alertmanager_body("firing_single_checkout"), token=None), 401, "unauthorized"
    )
    assert delivery.outcome == WebhookDelivery.Outcome.UNAUTHORIZED
    assert json.loads(bytes(delivery.body))["groupKey"]  # kept as received


def test_a_wrong_token_is_refused(post_webhook):
    response = post_webhook(alertmanager_body("firing_single_checkout"), token="not-it")
    delivery = assert_refused(response, 401, "unauthorized")
    assert delivery.headers["Authorization"] == "Bearer [not stored]"


def test_basic_auth_with_the_token_as_password_is_accepted(post_webhook, webhook_token):
    response = post_webhook(
        alertmanager_body("firing_single_checkout"),
        token=None,
        Authorization=basic("alertmanager", webhook_token),
    )

    assert response.status_code == 202
    assert Alert.objects.count() == 1


@pytest.mark.parametrize(
    "authorization",
    [basic("alertmanager", "wrong"), "Basic !!not-base64!!", "Token test-webhook-token", "Bearer"],
)
def test_other_credentials_are_refused(post_webhook, authorization):
    response = post_webhook(
        alertmanager_body("firing_single_checkout"), token=None, Authorization=authorization
    )
    assert_refused(response, 401, "unauthorized")


def test_without_a_configured_token_the_webhook_refuses_and_says_why(post_webhook, settings):
    settings.ROOTLINE_WEBHOOK_TOKEN = ""

    response = post_webhook(alertmanager_body("firing_single_checkout"), token="")

    delivery = assert_refused(response, 503, "webhook_not_configured")
    assert "ROOTLINE_WEBHOOK_TOKEN" in response.json()["message"]
    assert delivery.outcome == WebhookDelivery.Outcome.NOT_CONFIGURED


# --- bad bodies ------------------------------------------------------------------------


def test_a_body_over_the_limit_is_refused_with_413(post_webhook, settings):
    settings.ROOTLINE_WEBHOOK_MAX_BYTES = 4096
    settings.ROOTLINE_REFUSED_BODY_KEEP_BYTES = 1024
    body = alertmanager_body("firing_group_of_13")
    size = len(json.dumps(body))
    assert size > 4096

    response = post_webhook(body)

    delivery = assert_refused(response, 413, "payload_too_large")
    assert "ROOTLINE_WEBHOOK_MAX_BYTES" in response.json()["message"]
    assert delivery.body_bytes == size
    assert delivery.body_truncated
    assert len(bytes(delivery.body)) == 1024


def test_a_body_exactly_at_the_limit_is_accepted(post_webhook, settings):
    body = json.dumps(alertmanager_body("firing_single_checkout"))
    settings.ROOTLINE_WEBHOOK_MAX_BYTES = len(body)

    assert post_webhook(body).status_code == 202


def test_a_body_that_is_not_json_is_refused_with_400(post_webhook):
    delivery = assert_refused(post_webhook('{"version": "4", "alerts": ['), 400, "not_json")
    assert bytes(delivery.body) == b'{"version": "4", "alerts": ['
    assert delivery.outcome == WebhookDelivery.Outcome.NOT_JSON


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b.pop("alerts"), "alerts"),
        (lambda b: b.update(version="3"), "version"),
        (lambda b: b["alerts"][0].pop("startsAt"), "alerts.0.startsAt"),
        (lambda b: b["alerts"][0].update(startsAt="yesterday"), "alerts.0.startsAt"),
        (lambda b: b["alerts"][0].update(startsAt="2026-11-25T04:00:00"), "alerts.0.startsAt"),
        (lambda b: b["alerts"][0].update(status="pending"), "alerts.0.status"),
        (lambda b: b["alerts"][0].pop("fingerprint"), "alerts.0.fingerprint"),
        (lambda b: b["alerts"][0].update(fingerprint="../etc"), "alerts.0.fingerprint"),
        (lambda b: b["alerts"][0]["labels"].update(service=7), "alerts.0.labels.service"),
        (lambda b: b["alerts"][0]["labels"].update(service="a\x00b"), "alerts.0.labels.service"),
        (lambda b: b.update(groupKey=None), "groupKey"),
    ],
)
def test_a_payload_that_is_not_alertmanager_v4_is_refused_with_422_naming_the_field(
    post_webhook, change, field
):
    body = alertmanager_body("firing_single_checkout")
    change(body)

    response = post_webhook(body)

    delivery = assert_refused(response, 422, "payload_invalid")
    assert delivery.outcome == WebhookDelivery.Outcome.INVALID
    assert any(f.startswith(field + ":") for f in response.json()["fields"]), response.json()
    assert field in response.json()["message"]


def test_a_json_array_is_refused_with_422(post_webhook):
    assert_refused(post_webhook([1, 2]), 422, "payload_invalid")


def test_a_lone_surrogate_is_refused_as_not_json(post_webhook):
    body = json.dumps(alertmanager_body("firing_single_checkout")).replace(
        '"checkout"', '"\\ud800"', 1
    )
    response = post_webhook(body)
    assert_refused(response, 400, "not_json")
    assert response.json()["message"].startswith("The body is not valid JSON: ")
    assert "line 1" in response.json()["message"]  # the parser says where


def test_one_bad_alert_refuses_the_whole_delivery(post_webhook):
    body = alertmanager_body("firing_group_of_13")
    body["alerts"][12]["startsAt"] = "not a time"

    assert_refused(post_webhook(body), 422, "payload_invalid")


# --- the database ----------------------------------------------------------------------


def fail_every_query(execute, sql, params, many, context):
    raise OperationalError("could not connect to server: Connection refused")


@pytest.mark.django_db(transaction=True)
def test_when_the_database_is_unavailable_the_answer_is_503(post_webhook):
    with connection.execute_wrapper(fail_every_query):
        response = post_webhook(alertmanager_body("firing_single_checkout"))

    assert response.status_code == 503
    assert response.json()["error"] == "database_unavailable"
    assert WebhookDelivery.objects.count() == 0
    assert Alert.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_failure_after_the_delivery_is_stored_leaves_it_for_replay(post_webhook):
    def fail_alert_writes(execute, sql, params, many, context):
        if "alerts_alert" in sql and sql.lstrip().upper().startswith("INSERT"):
            raise OperationalError("disk I/O error")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(fail_alert_writes):
        response = post_webhook(alertmanager_body("firing_single_checkout"))

    assert response.status_code == 503
    assert response.json()["error"] == "database_unavailable"
    delivery = WebhookDelivery.objects.get()
    assert delivery.outcome == WebhookDelivery.Outcome.FAILED
    assert delivery.status_code == 503
    assert f"id {delivery.pk}" in response.json()["message"]
    assert Alert.objects.count() == 0
    assert not Investigation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_bug_in_ingest_keeps_the_delivery_and_answers_500(post_webhook, monkeypatch):
    def broken(batch, delivery):
        make_alert("half-written")
        raise KeyError("oops")

    monkeypatch.setattr("alerts.api.ingest", broken)
    body = json.dumps(alertmanager_body("firing_single_checkout")).encode()

    response = post_webhook(body)

    assert response.status_code == 500
    assert response.json()["error"] == "ingest_failed"
    delivery = WebhookDelivery.objects.get()
    assert delivery.outcome == WebhookDelivery.Outcome.FAILED
    assert bytes(delivery.body) == body
    assert Alert.objects.count() == 0  # the half-written work was rolled back
