"""Notifications of a completed investigation: Slack and a generic JSON webhook.

A channel is a small class with the same methods, chosen by its name (healthchecks'
transports): whether it is configured, which severities it wants, and the request that
tells it about one investigation. `queue` runs when an investigation completes: it writes
one pending entry per channel that wants it on the investigation (`notifications`) and
queues a django-q2 task per entry once that has committed. `deliver` is one attempt of
one entry: it records the outcome on the entry and, after a failure worth repeating,
schedules the next attempt (a django-q2 Schedule run once, so no worker sleeps through
the backoff). A notification that fails never changes the investigation's own status.

The channel URLs are secrets (a Slack webhook URL is its own credential): an entry keeps
the host alone, errors are scrubbed of the URL and the token, and httpx's request log
shows the host alone too. Delivery is at least once: a receiver may, rarely, see one twice.
"""

import logging
import re
from datetime import UTC, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from investigations.models import Investigation
from investigations.telemetry.backend import USER_AGENT

log = logging.getLogger(__name__)

NOTIFY_TASK = "investigations.tasks.send_notification"
EVENT = "investigation.completed"
TIMEOUT_SECONDS = 10
# Waits before the 2nd, 3rd and 4th attempt; django-q2's scheduler looks for due
# schedules every 30 s, so a retry may come up to that much later.
RETRY_DELAYS_SECONDS = (10, 60, 300)
MAX_RETRY_AFTER_SECONDS = 3600
TOP_SUSPECTS = 5
ROOT_CAUSE_CHARS = 200
TITLE_ALERTNAMES = 3
QUESTION_CHARS = 150
ERROR_CHARS = 300

PENDING, SENT, FAILED = "pending", "sent", "failed"


class Channel:
    """What the channels share: their settings are ROOTLINE_NOTIFY_<setting>_*."""

    name = setting = ""

    @property
    def url(self):
        return getattr(settings, f"ROOTLINE_NOTIFY_{self.setting}_URL")

    @property
    def severities(self):
        return getattr(settings, f"ROOTLINE_NOTIFY_{self.setting}_SEVERITIES")

    def secrets(self):
        return [self.url]

    def request(self, event):
        """(JSON body, headers) announcing `event` (the generic webhook's body)."""
        raise NotImplementedError


class Slack(Channel):
    """A Slack incoming webhook: a short message with a link to the investigation."""

    name, setting = "slack", "SLACK"

    def request(self, event):
        link = f"<{event['url']}|{_mrkdwn(title(event))}>"
        cause = _mrkdwn(root_cause_line(event["root_cause"]))
        confidence = f"{event['confidence']:.0%}"
        by = "the Claude agents" if event["report_source"] == "agents" else "the signal scan"
        text = (
            f"Investigation {event['investigation_id']} completed: {_mrkdwn(title(event))}. "
            f"Root cause: {cause}. Confidence {confidence}. {event['url']}"
        )
        blocks = [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{link}*"}},
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"*Root cause:* {cause}\n*Confidence:* {confidence}",
                },
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"Rootline investigation {event['investigation_id']}, "
                        f"report by {by}",
                    }
                ],
            },
        ]
        return {"text": text, "blocks": blocks}, {}


class Webhook(Channel):
    """Any HTTP endpoint: the event as JSON, with a bearer token when one is configured."""

    name, setting = "webhook", "WEBHOOK"

    def secrets(self):
        return [self.url, settings.ROOTLINE_NOTIFY_WEBHOOK_TOKEN]

    def request(self, event):
        token = settings.ROOTLINE_NOTIFY_WEBHOOK_TOKEN
        return event, {"Authorization": f"Bearer {token}"} if token else {}


CHANNELS = {channel.name: channel for channel in (Slack(), Webhook())}


def queue(investigation):
    """Plan the notifications of a just-completed investigation and queue their first
    attempts once the caller's transaction commits. A channel with a severity list takes
    the investigations with an alert of one of those severities; one without a list takes
    them all (an investigation without alerts, or whose alerts carry no severity, goes
    only to those)."""
    if investigation.status != Investigation.Status.COMPLETED:
        return
    severities = {alert.severity for alert in investigation.alerts.all() if alert.severity}
    wanted = [
        channel
        for channel in CHANNELS.values()
        if channel.url and (not channel.severities or severities & set(channel.severities))
    ]
    if not wanted:
        return
    investigation.notifications = [
        {
            "channel": channel.name,
            "target": urlsplit(channel.url).hostname,
            "status": PENDING,
            "attempts": 0,
            "last_error": "",
            "sent_at": None,
            "next_attempt_at": None,
        }
        for channel in wanted
    ]
    investigation.save(update_fields=["notifications"])
    pk, count = investigation.pk, len(wanted)

    def send():
        from django_q.tasks import async_task

        for index in range(count):
            async_task(NOTIFY_TASK, pk, index, 1, task_name=f"notify-{pk}-{index}")

    transaction.on_commit(send, robust=True)


def deliver(investigation_id, index, attempt):
    """Attempt `attempt` (1, 2, ...) of notification `index` of an investigation; records
    sent, failed, or pending with the next attempt scheduled. Does nothing when the entry
    is no longer waiting for this attempt (a duplicate task)."""
    investigation = Investigation.objects.filter(pk=investigation_id).first()
    if investigation is None:
        log.warning("investigation %s no longer exists; nothing to notify", investigation_id)
        return
    entry = investigation.notifications[index]
    if entry["status"] != PENDING or entry["attempts"] != attempt - 1:
        log.info("notification %s of investigation %s: already handled", index, investigation_id)
        return
    channel = CHANNELS[entry["channel"]]
    error, again, retry_after = f"{channel.name} is no longer configured", False, None
    if channel.url:
        try:
            error, again, retry_after = _send(channel, event_of(investigation))
        except Exception as exc:
            # A fault of ours (a report it cannot read): final, and recorded, not left pending.
            log.exception("notification %s of investigation %s", channel.name, investigation_id)
            error = _scrub(f"{type(exc).__name__}: {exc}", channel)
    now = timezone.now()
    changes = {"attempts": attempt, "last_error": error, "next_attempt_at": None}
    next_run = None
    if not error:
        changes.update(status=SENT, sent_at=now.isoformat())
    elif again and attempt <= len(RETRY_DELAYS_SECONDS):
        wait = RETRY_DELAYS_SECONDS[attempt - 1]
        if retry_after is not None:
            wait = max(wait, min(retry_after, MAX_RETRY_AFTER_SECONDS))
        next_run = now + timedelta(seconds=wait)
        changes["next_attempt_at"] = next_run.isoformat()
    else:
        changes["status"] = FAILED
    with transaction.atomic():
        row = Investigation.objects.select_for_update().get(pk=investigation_id)
        row.notifications[index].update(changes)
        row.save(update_fields=["notifications"])
        if next_run:
            from django_q.tasks import schedule

            schedule(NOTIFY_TASK, investigation_id, index, attempt + 1, next_run=next_run)
    outcome = changes.get("status", f"failed, next attempt at {changes['next_attempt_at']}")
    log.log(
        logging.INFO if outcome == SENT else logging.WARNING,
        "notification %s of investigation %s to %s, attempt %d: %s%s",
        channel.name,
        investigation_id,
        entry["target"],
        attempt,
        outcome,
        f" ({error})" if error else "",
    )


def _send(channel, event):
    """POST the channel's request; returns (error or "", worth another attempt,
    Retry-After in seconds or None)."""
    body, headers = channel.request(event)
    try:
        response = httpx.post(
            channel.url,
            json=body,
            headers={"User-Agent": USER_AGENT, **headers},
            timeout=TIMEOUT_SECONDS,
        )
    except httpx.TransportError as exc:
        return _scrub(f"{type(exc).__name__}: {exc}", channel), True, None
    if response.is_success:
        return "", False, None
    error = _scrub(f"HTTP {response.status_code}: {response.text.strip()}", channel)
    again = response.status_code == 429 or response.status_code >= 500
    return error, again, _retry_after(response)


def event_of(investigation):
    """The generic webhook's JSON body (documented in the README's "Notifications")."""
    report = investigation.report or {}
    root = report.get("root_cause") or {}
    alerts = investigation.alerts.order_by("starts_at", "pk")
    return {
        "event": EVENT,
        "investigation_id": investigation.pk,
        "url": settings.ROOTLINE_BASE_URL + reverse("investigation", args=[investigation.pk]),
        "status": investigation.status,
        "question": investigation.question,
        "alerts": [
            {
                "fingerprint": alert.fingerprint,
                "alertname": alert.alertname,
                "severity": alert.severity,
                "status": alert.status,
                "starts_at": alert.starts_at.isoformat(),
            }
            for alert in alerts
        ],
        "report_source": investigation.report_source,
        "summary": report.get("summary", ""),
        "root_cause": (
            {
                "service": root.get("service", ""),
                "description": root.get("description") or root.get("explanation") or "",
            }
            if root
            else None
        ),
        "confidence": report.get("confidence") or 0.0,
        "suspects": [
            {"service": suspect["service"], "score": suspect["score"]}
            for suspect in investigation.suspects[:TOP_SUSPECTS]
        ],
        "finished_at": investigation.finished_at.isoformat() if investigation.finished_at else None,
    }


def title(event):
    """What the investigation was about: its alert names and severities, or its question."""
    names = sorted({alert["alertname"] for alert in event["alerts"] if alert["alertname"]})
    if not names:
        question = event["question"] or f"investigation {event['investigation_id']}"
        return _shorten(question, QUESTION_CHARS)
    shown = ", ".join(names[:TITLE_ALERTNAMES])
    if len(names) > TITLE_ALERTNAMES:
        shown += f" +{len(names) - TITLE_ALERTNAMES}"
    severities = sorted({alert["severity"] for alert in event["alerts"] if alert["severity"]})
    return f"{shown} ({', '.join(severities)})" if severities else shown


def root_cause_line(root_cause):
    if not root_cause:
        return "unclear, see the report"
    return _shorten(f"{root_cause['service']}: {root_cause['description']}", ROOT_CAUSE_CHARS)


def _shorten(text, chars):
    text = " ".join(text.split())
    return text if len(text) <= chars else text[: chars - 1].rstrip() + "…"


def _mrkdwn(text):
    """Text for Slack's mrkdwn: &, < and > escaped, so it cannot make links or mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _scrub(text, channel):
    """`text` without the channel's URL (beyond its host) or token, and not too long."""
    for secret in channel.secrets():
        if secret:
            text = text.replace(secret, "[secret]")
            path = urlsplit(secret).path
            if len(path) > 1:
                text = text.replace(path, "/[secret]")
    return _shorten(text, ERROR_CHARS)


def _retry_after(response):
    """Seconds the server asked to wait (Retry-After: seconds or an HTTP date), or None."""
    value = response.headers.get("Retry-After", "").strip()
    if re.fullmatch(r"\d+", value):
        return int(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, the zone HTTP dates are in
        when = when.replace(tzinfo=UTC)
    return max(0, int((when - timezone.now()).total_seconds()))


def _hide_secret_urls(record):
    """httpx logs each request's URL at INFO: a notification URL shows its host alone."""
    if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
        secret = {httpx.URL(c.url) for c in CHANNELS.values() if c.url}
        record.args = tuple(
            a.copy_with(path="/[secret]", query=None) if a in secret else a for a in record.args
        )
    return True


logging.getLogger("httpx").addFilter(_hide_secret_urls)
