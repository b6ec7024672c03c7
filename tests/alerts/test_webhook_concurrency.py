"""The same delivery from several threads at once: one alert per episode (PostgreSQL).

Alertmanager in HA runs sends every notification from each replica, at the same moment.
SQLite serialises writers, so the race only exists on a server database.
"""

import threading

import pytest
from django.db import connection
from django.test import Client

from alerts.models import Alert
from investigations.models import Investigation
from tests.shared import alertmanager_body

THREADS = 8

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL"),
]


def post_at_once(body, token, rounds=1):
    """Each of THREADS threads posts `body` (or its own body, given a list) `rounds` times."""
    bodies = body if isinstance(body, list) else [body] * THREADS
    barrier = threading.Barrier(THREADS)
    answers = []

    def send(body):
        client = Client()
        try:
            for _ in range(rounds):
                barrier.wait()
                answers.append(
                    client.post(
                        "/webhooks/alertmanager",
                        body,
                        content_type="application/json",
                        headers={"Authorization": f"Bearer {token}"},
                    )
                )
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(b,)) for b in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


def test_concurrent_deliveries_of_the_same_alerts_create_each_episode_once(webhook_token):
    body = alertmanager_body("firing_group_of_13")

    answers = post_at_once(body, webhook_token, rounds=3)

    assert [a.status_code for a in answers] == [202] * THREADS * 3
    assert sum(a.json()["alerts_new"] for a in answers) == 13
    assert sum(a.json()["investigations_queued"] for a in answers) == 1
    assert Alert.objects.count() == 13
    assert set(Alert.objects.values_list("receive_count", flat=True)) == {THREADS * 3}
    assert Investigation.objects.get().alerts.count() == 13


def test_concurrent_resolutions_count_one_transition(webhook_token):
    Client().post(
        "/webhooks/alertmanager",
        alertmanager_body("firing_single_checkout"),
        content_type="application/json",
        headers={"Authorization": f"Bearer {webhook_token}"},
    )

    answers = post_at_once(alertmanager_body("resolved_checkout"), webhook_token)

    assert sum(a.json()["alerts_resolved"] for a in answers) == 1
    assert Alert.objects.get().status == "resolved"


def test_concurrent_deliveries_of_one_new_group_start_one_investigation(webhook_token):
    # Different alerts of the same group, e.g. after Alertmanager's group_interval.
    bodies = []
    for n in range(THREADS):
        body = alertmanager_body("firing_single_checkout")
        body["alerts"][0]["fingerprint"] = f"{n:016x}"
        bodies.append(body)

    answers = post_at_once(bodies, webhook_token)

    assert [a.status_code for a in answers] == [202] * THREADS
    assert sum(a.json()["investigations_queued"] for a in answers) == 1
    assert Investigation.objects.get().alerts.count() == THREADS
