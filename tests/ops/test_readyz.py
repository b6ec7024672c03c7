"""GET /readyz (rca_site/readiness.py): the database, the queue and its workers, the
configured backends; 200 when all pass, 503 naming what failed, never a URL or secret."""

import json
import socket
import time
from datetime import timedelta

import pytest
import respx
from django.db import OperationalError, connection
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from rca_site import readiness
from rca_site.taskqueue import SWEEP_TASK
from tests.processes import free_port

LOKI = "http://loki.internal:3100"
PROMETHEUS = "http://prometheus.internal:9090"
PASSWORD = "s3cret-loki-password"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def worker_alive():
    """A qcluster has just run the scheduler: the sweep is next due in a minute."""
    Schedule.objects.filter(func=SWEEP_TASK).update(next_run=timezone.now() + timedelta(minutes=1))


@pytest.fixture
def backends(settings):
    """Loki (basic auth) and Prometheus configured, answered by respx."""
    settings.ROOTLINE_LOKI_URL = LOKI
    settings.ROOTLINE_LOKI_USERNAME = "rootline"
    settings.ROOTLINE_LOKI_PASSWORD = PASSWORD
    settings.ROOTLINE_PROMETHEUS_URL = PROMETHEUS
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{LOKI}/loki/api/v1/labels", name="loki").respond(
            json={"status": "success", "data": ["namespace", "service"]}
        )
        router.get(f"{PROMETHEUS}/api/v1/query", name="prometheus").respond(
            json={"status": "success", "data": {"resultType": "scalar", "result": [0, "1"]}}
        )
        yield router


def ready(client):
    response = client.get("/readyz")
    body = response.content.decode()
    for secret in (PASSWORD, "loki.internal", "prometheus.internal", "127.0.0.1"):
        assert secret not in body
    return response.status_code, json.loads(body)


def test_ready_when_the_database_the_workers_and_the_backends_answer(client, backends):
    status, body = ready(client)

    assert status == 200
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "queue", "loki", "prometheus"}
    assert all(check["ok"] for check in body["checks"].values()), body
    assert body["checks"]["queue"]["waiting"] == 0
    loki_request = backends["loki"].calls.last.request
    assert loki_request.headers["Authorization"].startswith("Basic ")
    assert backends["prometheus"].calls.last.request.url.params["query"] == "1"


def test_backends_that_are_not_configured_pass(client):
    status, body = ready(client)

    assert status == 200
    assert body["checks"]["loki"] == {"ok": True, "configured": False}
    assert body["checks"]["prometheus"] == {"ok": True, "configured": False}


def test_a_backend_that_is_down_makes_it_unavailable(client, settings):
    settings.ROOTLINE_LOKI_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens
    settings.ROOTLINE_LOKI_USERNAME = "rootline"
    settings.ROOTLINE_LOKI_PASSWORD = PASSWORD

    status, body = ready(client)

    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["loki"]["ok"] is False
    assert body["checks"]["loki"]["error"].startswith("no answer: ConnectError")
    assert body["checks"]["database"]["ok"] is True


def test_a_backend_refusing_the_credentials_makes_it_unavailable(client, backends):
    backends["prometheus"].respond(401, text="invalid bearer token")

    status, body = ready(client)

    assert status == 503
    assert body["checks"]["prometheus"] == {
        "ok": False,
        "error": "refused the check with HTTP 401: invalid bearer token",
    }
    assert body["checks"]["loki"]["ok"] is True


def test_a_backend_that_never_answers_fails_within_the_timeout(client, settings, monkeypatch):
    monkeypatch.setattr(readiness, "READY_TIMEOUT_SECONDS", 0.5)
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        settings.ROOTLINE_PROMETHEUS_URL = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()

        status, body = ready(client)

    assert time.monotonic() - started < 3
    assert status == 503
    assert body["checks"]["prometheus"]["error"] in (
        "no answer: ReadTimeout",
        "no answer within 0.5s",
    )


def test_no_worker_running_the_scheduler_makes_it_unavailable(client):
    Schedule.objects.filter(func=SWEEP_TASK).update(next_run=timezone.now() - timedelta(minutes=10))

    status, body = ready(client)

    assert status == 503
    queue = body["checks"]["queue"]
    assert queue["ok"] is False
    assert "is a `manage.py qcluster` running?" in queue["error"]
    assert queue["scheduler_lag_seconds"] >= 600


def test_a_task_waiting_too_long_makes_it_unavailable(client, settings):
    settings.ROOTLINE_QUEUE_MAX_WAIT = timedelta(minutes=5)
    OrmQ.objects.create(key="rootline", payload="x", lock=timezone.now() - timedelta(minutes=6))

    status, body = ready(client)

    assert status == 503
    queue = body["checks"]["queue"]
    assert "ROOTLINE_QUEUE_MAX_WAIT (300s): the workers are not keeping up" in queue["error"]
    assert queue["waiting"] == 1
    assert queue["oldest_wait_seconds"] >= 360


def refuse(execute, sql, params, many, context):
    raise OperationalError("could not connect to server at db.internal (10.0.0.5)")


@pytest.mark.django_db(transaction=True)
def test_a_database_that_does_not_answer_fails_without_saying_where_it_is(client):
    with connection.execute_wrapper(refuse):
        status, body = ready(client)

    assert status == 503
    assert body["checks"]["database"] == {
        "ok": False,
        "error": "the database did not answer (OperationalError)",
    }
    assert body["checks"]["queue"]["ok"] is False
    assert "db.internal" not in json.dumps(body)


def test_every_probe_asks_the_backend_again(client, backends):
    """The clients' 30-second answer cache would hide a backend that has just gone down."""
    ready(client)
    ready(client)

    assert backends["prometheus"].call_count == 2
