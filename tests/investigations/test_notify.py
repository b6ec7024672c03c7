"""Notifications of a completed investigation (investigations/notify.py), received by a
real HTTP server on loopback. Retries are driven by django-q2's own scheduler with the
clock moved on (the schedule's next run set into the past), never by sleeping."""

import json
import logging
import re
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import NamedTuple

import pytest
import scripted_messages as scripted
from background_server import BackgroundServer
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import OrmQ, Schedule

from investigations import notify, runner
from tests.factories import REPORT, T0, make_alert, make_investigation
from tests.investigations.agents.scripts import LEAD
from tests.investigations.telemetry.test_settings import read_settings
from tests.processes import free_port

pytestmark = pytest.mark.django_db

BASE_URL = "https://rootline.example"
SLACK_PATH = "/services/T0001/B0002/slackSecretPart"
WEBHOOK_PATH = "/hooks/rootline-7d1e"
TOKEN = "webhook-bearer-secret"


class Received(NamedTuple):
    path: str
    headers: dict
    body: dict


class ReceiverHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server = self.server
        with server.lock:
            server.requests.append(
                Received(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(body)
                )
            )
            script = server.answers.get(self.path, [])
            status, headers, text = script.pop(0) if script else (200, {}, "ok")
        time.sleep(server.delay_seconds)
        data = text.encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class Receiver(BackgroundServer):
    """Records every POST; answers each path from its script of (status, headers, body),
    then 200 "ok"."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.lock = threading.Lock()
        self.requests = []
        self.answers = {}
        self.delay_seconds = 0.0

    def to(self, path):
        return [r for r in self.requests if r.path == path]


@pytest.fixture
def receiver():
    with Receiver().start() as server:
        yield server


@pytest.fixture
def channels(settings, receiver):
    """Slack and the JSON webhook both pointed at the receiver, for every severity."""
    settings.ROOTLINE_BASE_URL = BASE_URL
    settings.ROOTLINE_NOTIFY_SLACK_URL = receiver.url + SLACK_PATH
    settings.ROOTLINE_NOTIFY_SLACK_SEVERITIES = []
    settings.ROOTLINE_NOTIFY_WEBHOOK_URL = receiver.url + WEBHOOK_PATH
    settings.ROOTLINE_NOTIFY_WEBHOOK_TOKEN = TOKEN
    settings.ROOTLINE_NOTIFY_WEBHOOK_SEVERITIES = []
    return settings


@pytest.fixture
def slack_only(channels):
    channels.ROOTLINE_NOTIFY_WEBHOOK_URL = ""
    channels.ROOTLINE_NOTIFY_WEBHOOK_TOKEN = ""
    return channels


def run_queued_tasks():
    """What a worker does with the queue: run each task, oldest first, and drop it."""
    while queued := OrmQ.objects.order_by("id").first():
        task = queued.task
        queued.delete()
        import_string(task["func"])(*task["args"], **task["kwargs"])


def run_due_retries(monkeypatch):
    """Move the clock past every scheduled retry and let django-q2's scheduler queue them
    (it would close the test's database connection; here it keeps it), then run what it
    queued (the sweep of stale investigations too: it is due in tests)."""
    from django_q import scheduler

    monkeypatch.setattr(scheduler, "close_old_django_connections", lambda: None)
    retries().update(next_run=timezone.now() - timedelta(seconds=1))
    scheduler.scheduler()
    run_queued_tasks()


def retries():
    """The scheduled next attempts of notifications."""
    return Schedule.objects.filter(func=notify.NOTIFY_TASK)


def complete(django_capture_on_commit_callbacks, *alerts):
    """Run an investigation of `alerts` to completion (signals-only: no backend here) and
    its notifications' first attempts."""
    investigation = make_investigation(*alerts, as_of=T0 + timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        runner.run(investigation.pk)
    run_queued_tasks()
    investigation.refresh_from_db()
    return investigation


def seconds_from_now(iso):
    return (datetime.fromisoformat(iso) - timezone.now()).total_seconds()


def test_a_completed_report_goes_to_slack_and_the_webhook(
    channels, receiver, django_capture_on_commit_callbacks
):
    alert = make_alert(service="checkout", severity="critical")

    investigation = complete(django_capture_on_commit_callbacks, alert)

    assert investigation.status == "completed"
    url = f"{BASE_URL}/investigations/{investigation.pk}/"
    [slack] = receiver.to(SLACK_PATH)
    assert slack.body == {
        "text": f"Investigation {investigation.pk} completed: HighErrorRate (critical). "
        f"Root cause: unclear, see the report. Confidence 0%. {url}",
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*<{url}|HighErrorRate (critical)>*"},
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*Root cause:* unclear, see the report\n*Confidence:* 0%",
                },
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"Rootline investigation {investigation.pk}, "
                        "report by the signal scan",
                    }
                ],
            },
        ],
    }
    assert "authorization" not in slack.headers
    [hook] = receiver.to(WEBHOOK_PATH)
    assert hook.headers["authorization"] == f"Bearer {TOKEN}"
    assert hook.headers["content-type"] == "application/json"
    assert hook.body == {
        "event": "investigation.completed",
        "investigation_id": investigation.pk,
        "url": url,
        "status": "completed",
        "question": "",
        "alerts": [
            {
                "fingerprint": alert.fingerprint,
                "alertname": "HighErrorRate",
                "severity": "critical",
                "status": "firing",
                "starts_at": "2026-11-25T04:00:00+00:00",
            }
        ],
        "report_source": "signals",
        "summary": investigation.report["summary"],
        "root_cause": None,
        "confidence": 0.0,
        "suspects": [],
        "finished_at": investigation.finished_at.isoformat(),
    }
    slack_state, hook_state = investigation.notifications
    assert (slack_state["channel"], slack_state["target"]) == ("slack", "127.0.0.1")
    assert (hook_state["channel"], hook_state["target"]) == ("webhook", "127.0.0.1")
    for state in (slack_state, hook_state):
        assert (state["status"], state["attempts"], state["last_error"]) == ("sent", 1, "")
        assert -5 < seconds_from_now(state["sent_at"]) <= 0


@pytest.mark.django_db(transaction=True)
def test_the_agents_report_is_notified_with_its_root_cause(channels, receiver, settings):
    settings.ANTHROPIC_API_KEY = "test-key"
    settings.ROOTLINE_LLM_BACKOFF = timedelta(milliseconds=10)
    investigation = make_investigation(
        make_alert(service="payment-api", severity="critical"),
        as_of=T0 + timedelta(minutes=5),
    )
    script = scripted.Script({LEAD: [scripted.tool_use("submit_report", REPORT)]})
    with scripted.serve(script) as model:
        settings.ANTHROPIC_BASE_URL = model.url
        runner.run(investigation.pk)  # no transaction around it here: queued at once
    run_queued_tasks()

    investigation.refresh_from_db()
    assert investigation.report_source == "agents", investigation.error
    [hook] = receiver.to(WEBHOOK_PATH)
    assert hook.body["report_source"] == "agents"
    assert hook.body["root_cause"] == {
        "service": "orders-db",
        "description": "OOM kill; payment-api refused",
    }
    assert hook.body["confidence"] == 0.8
    assert hook.body["summary"] == REPORT["summary"]
    [slack] = receiver.to(SLACK_PATH)
    assert (
        "Root cause: orders-db: OOM kill; payment-api refused. Confidence 80%."
        in (slack.body["text"])
    )
    assert slack.body["blocks"][2]["elements"][0]["text"].endswith("report by the Claude agents")


@pytest.mark.parametrize(
    ("severity", "channels_told"),
    [("critical", ["slack", "webhook"]), ("warning", ["webhook"]), ("", ["webhook"])],
)
def test_each_channel_gets_the_severities_it_asked_for(
    channels, receiver, django_capture_on_commit_callbacks, severity, channels_told
):
    channels.ROOTLINE_NOTIFY_SLACK_SEVERITIES = ["critical", "page"]

    investigation = complete(
        django_capture_on_commit_callbacks, make_alert(service="checkout", severity=severity)
    )

    assert [n["channel"] for n in investigation.notifications] == channels_told
    assert sorted(r.path for r in receiver.requests) == sorted(
        {"slack": SLACK_PATH, "webhook": WEBHOOK_PATH}[c] for c in channels_told
    )


def test_a_question_without_alerts_goes_only_to_channels_without_a_severity_list(
    channels, receiver, django_capture_on_commit_callbacks
):
    channels.ROOTLINE_NOTIFY_WEBHOOK_SEVERITIES = ["critical"]
    investigation = make_investigation(
        question="Why is checkout slow?", status="completed", report={"confidence": 0.4}
    )

    with django_capture_on_commit_callbacks(execute=True):
        notify.queue(investigation)
    run_queued_tasks()

    [slack] = receiver.requests
    assert slack.path == SLACK_PATH
    assert "completed: Why is checkout slow?." in slack.body["text"]


def test_nothing_is_sent_when_no_channel_is_configured_or_the_investigation_failed(
    channels, receiver, django_capture_on_commit_callbacks
):
    failed = complete(django_capture_on_commit_callbacks)  # no alerts: nothing to scope
    assert failed.status == "failed"
    assert failed.notifications == []

    channels.ROOTLINE_NOTIFY_SLACK_URL = channels.ROOTLINE_NOTIFY_WEBHOOK_URL = ""
    quiet = complete(django_capture_on_commit_callbacks, make_alert(service="checkout"))
    assert quiet.status == "completed"
    assert quiet.notifications == []
    assert receiver.requests == []


def test_a_500_is_tried_again_after_the_backoff_and_then_delivered(
    slack_only, receiver, django_capture_on_commit_callbacks, monkeypatch
):
    receiver.answers[SLACK_PATH] = [(500, {}, "internal_error")]

    investigation = complete(django_capture_on_commit_callbacks, make_alert(service="checkout"))

    [state] = investigation.notifications
    assert (state["status"], state["attempts"]) == ("pending", 1)
    assert state["last_error"] == "HTTP 500: internal_error"
    [retry] = retries()
    assert retry.func == notify.NOTIFY_TASK
    assert 8 < (retry.next_run - timezone.now()).total_seconds() <= 10
    assert 8 < seconds_from_now(state["next_attempt_at"]) <= 10

    run_due_retries(monkeypatch)

    investigation.refresh_from_db()
    [state] = investigation.notifications
    assert (state["status"], state["attempts"], state["next_attempt_at"]) == ("sent", 2, None)
    assert len(receiver.requests) == 2
    assert receiver.requests[0].body == receiver.requests[1].body
    assert not retries().exists()  # a retry's schedule runs once and is gone


def test_retry_after_is_honoured(slack_only, receiver, django_capture_on_commit_callbacks):
    receiver.answers[SLACK_PATH] = [(429, {"Retry-After": "120"}, "rate_limited")]

    investigation = complete(django_capture_on_commit_callbacks, make_alert(service="checkout"))

    [state] = investigation.notifications
    assert (state["status"], state["last_error"]) == ("pending", "HTTP 429: rate_limited")
    [retry] = retries()
    assert 115 < (retry.next_run - timezone.now()).total_seconds() <= 120


def test_a_receiver_that_keeps_failing_ends_failed_and_the_investigation_stays_completed(
    channels, receiver, django_capture_on_commit_callbacks, monkeypatch
):
    receiver.answers[WEBHOOK_PATH] = [(503, {}, "upstream down")] * 4

    investigation = complete(django_capture_on_commit_callbacks, make_alert(service="checkout"))
    waits = []
    while retries().exists():
        waits.append(round((retries().get().next_run - timezone.now()).total_seconds()))
        run_due_retries(monkeypatch)

    assert waits == [10, 60, 300]
    investigation.refresh_from_db()
    assert investigation.status == "completed"
    assert investigation.error == ""
    slack_state, hook_state = investigation.notifications
    assert slack_state["status"] == "sent"
    assert (hook_state["status"], hook_state["attempts"]) == ("failed", 4)
    assert hook_state["last_error"] == "HTTP 503: upstream down"
    assert hook_state["sent_at"] is None and hook_state["next_attempt_at"] is None
    assert len(receiver.to(WEBHOOK_PATH)) == 4


def test_a_4xx_is_final(slack_only, receiver, django_capture_on_commit_callbacks):
    receiver.answers[SLACK_PATH] = [(404, {}, "no_service")]

    investigation = complete(django_capture_on_commit_callbacks, make_alert(service="checkout"))

    [state] = investigation.notifications
    assert (state["status"], state["attempts"], state["last_error"]) == (
        "failed",
        1,
        "HTTP 404: no_service",
    )
    assert not retries().exists()
    assert len(receiver.requests) == 1


def test_a_refused_connection_and_a_timeout_are_tried_again(
    slack_only, receiver, django_capture_on_commit_callbacks, monkeypatch
):
    slack_only.ROOTLINE_NOTIFY_SLACK_URL = f"http://127.0.0.1:{free_port()}{SLACK_PATH}"
    investigation = complete(django_capture_on_commit_callbacks, make_alert(service="checkout"))
    [state] = investigation.notifications
    assert state["status"] == "pending"
    assert state["last_error"].startswith("ConnectError:")

    slack_only.ROOTLINE_NOTIFY_SLACK_URL = receiver.url + SLACK_PATH
    receiver.delay_seconds = 0.5
    monkeypatch.setattr(notify, "TIMEOUT_SECONDS", 0.1)
    run_due_retries(monkeypatch)

    investigation.refresh_from_db()
    [state] = investigation.notifications
    assert (state["status"], state["attempts"]) == ("pending", 2)
    assert state["last_error"].startswith("ReadTimeout:")
    assert retries().count() == 1


def test_a_duplicate_task_sends_nothing_twice(
    slack_only, receiver, django_capture_on_commit_callbacks
):
    investigation = complete(django_capture_on_commit_callbacks, make_alert(service="checkout"))

    notify.deliver(investigation.pk, 0, 1)

    assert len(receiver.requests) == 1


def test_the_secret_urls_and_token_are_never_stored_logged_or_shown(
    channels, receiver, django_capture_on_commit_callbacks, caplog, admin_client
):
    # The webhook's refusal quotes the URL it was called at, token and all.
    receiver.answers[WEBHOOK_PATH] = [
        (403, {}, f"no hook at {WEBHOOK_PATH} for token {TOKEN}"),
    ]
    caplog.set_level(logging.INFO)

    investigation = complete(django_capture_on_commit_callbacks, make_alert(service="checkout"))

    slack_state, hook_state = investigation.notifications
    assert slack_state["status"] == "sent"
    assert hook_state["last_error"] == "HTTP 403: no hook at /[secret] for token [secret]"
    assert "HTTP Request: POST http://127.0.0.1" in caplog.text  # httpx logged it...
    page = admin_client.get(reverse("investigation", args=[investigation.pk])).content.decode()
    assert 'webhook (127.0.0.1): <span class="status-failed">failed</span>' in page
    admin_page = admin_client.get(
        reverse("admin:investigations_investigation_change", args=[investigation.pk])
    ).content.decode()
    assert "<b>slack</b> (127.0.0.1): sent, 1 attempt(s)" in admin_page
    api = admin_client.get(f"/api/v1/investigations/{investigation.pk}").content.decode()
    assert json.loads(api)["notifications"] == investigation.notifications
    shown_anywhere = (json.dumps(investigation.notifications), caplog.text, page, admin_page, api)
    for shown in shown_anywhere:
        for secret in ("slackSecretPart", "T0001", "rootline-7d1e", TOKEN):  # ...not these
            assert secret not in shown


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        (
            {"ROOTLINE_NOTIFY_SLACK_URL": "hooks.slack.com/services/T0001/B0002/slackSecret"},
            "ROOTLINE_NOTIFY_SLACK_URL (value not shown: a secret) must start with http://",
        ),
        (
            {"ROOTLINE_BASE_URL": "rootline.example"},
            "ROOTLINE_BASE_URL='rootline.example' must start with http:// or https://",
        ),
        (
            {"ROOTLINE_NOTIFY_WEBHOOK_URL": "https://hooks.example/x"},
            "ROOTLINE_BASE_URL is not set",
        ),
        (
            {"ROOTLINE_NOTIFY_WEBHOOK_TOKEN": "t"},
            "ROOTLINE_NOTIFY_WEBHOOK_TOKEN is set but ROOTLINE_NOTIFY_WEBHOOK_URL is not",
        ),
    ],
)
def test_malformed_notification_settings_stop_start_up(monkeypatch, environment, message):
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)) as stopped:
        read_settings(monkeypatch, **environment)
    assert "slackSecret" not in str(stopped.value)


def test_notification_settings_from_files_and_lists(monkeypatch, tmp_path):
    secret = tmp_path / "slack-url"
    secret.write_text("https://hooks.slack.com/services/T0001/B0002/slackSecret\n")

    settings = read_settings(
        monkeypatch,
        ROOTLINE_BASE_URL="https://rootline.example/",
        ROOTLINE_NOTIFY_SLACK_URL_FILE=str(secret),
        ROOTLINE_NOTIFY_SLACK_SEVERITIES="Critical, page",
    )

    assert settings["ROOTLINE_BASE_URL"] == "https://rootline.example"
    assert settings["ROOTLINE_NOTIFY_SLACK_URL"] == (
        "https://hooks.slack.com/services/T0001/B0002/slackSecret"
    )
    assert settings["ROOTLINE_NOTIFY_SLACK_SEVERITIES"] == ["critical", "page"]
    assert settings["ROOTLINE_NOTIFY_WEBHOOK_URL"] == ""
