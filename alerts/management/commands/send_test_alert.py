import hashlib
import json
from datetime import UTC, datetime

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

ZERO_TIME = "0001-01-01T00:00:00Z"

LABELS = {
    "alertname": "HighErrorRate",
    "service": "checkout",
    "namespace": "production",
    "severity": "warning",
    "rootline_test": "true",
}
ANNOTATIONS = {
    "summary": "checkout is answering 5% of requests with errors",
    "description": "Test alert sent by `manage.py send_test_alert` to try the Rootline receiver.",
}
GENERATOR_URL = (
    "http://prometheus.example:9090/graph?g0.expr=job%3Acheckout_errors%3Aratio5m+%3E+0.05"
)
GROUP_LABELS = {"alertname": LABELS["alertname"], "namespace": LABELS["namespace"]}


def fingerprint(labels):
    """A stable 16-hex-digit fingerprint of the label set, shaped like Alertmanager's."""
    canonical = json.dumps(labels, sort_keys=True).encode()
    return hashlib.sha256(canonical).hexdigest()[:16]


def test_payload(starts_at, resolved):
    status = "resolved" if resolved else "firing"
    ends_at = datetime.now(UTC).isoformat().replace("+00:00", "Z") if resolved else ZERO_TIME
    alert = {
        "status": status,
        "labels": LABELS,
        "annotations": ANNOTATIONS,
        "startsAt": starts_at,
        "endsAt": ends_at,
        "generatorURL": GENERATOR_URL,
        "fingerprint": fingerprint(LABELS),
    }
    return {
        "receiver": "rootline",
        "status": status,
        "alerts": [alert],
        "groupLabels": GROUP_LABELS,
        "commonLabels": LABELS,
        "commonAnnotations": ANNOTATIONS,
        "externalURL": "http://alertmanager.example:9093",
        "version": "4",
        "groupKey": '{}:{alertname="HighErrorRate", namespace="production"}',
        "truncatedAlerts": 0,
    }


class Command(BaseCommand):
    help = (
        "Post a realistic Alertmanager notification to a running Rootline, "
        "as `amtool alert add` tries a receiver."
    )

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000/webhooks/alertmanager")
        parser.add_argument("--resolved", action="store_true", help="send the resolution")
        parser.add_argument(
            "--starts-at",
            help="the episode's startsAt (RFC 3339); to resolve, the one printed when it fired",
        )
        parser.add_argument("--token", default=None, help="default: ROOTLINE_WEBHOOK_TOKEN")

    def handle(self, url, resolved, starts_at, token, **options):
        token = token or settings.ROOTLINE_WEBHOOK_TOKEN
        if not token:
            raise CommandError("no token: set ROOTLINE_WEBHOOK_TOKEN or pass --token")
        if starts_at is None:
            starts_at = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        payload = test_payload(starts_at, resolved)
        try:
            response = httpx.post(
                url,
                json=payload,
                headers={
                    "Authorization": f"Bearer {token}",
                    "User-Agent": "rootline-send-test-alert",
                },
                timeout=10,
            )
        except httpx.HTTPError as exc:
            raise CommandError(f"could not reach {url}: {exc}") from None
        if response.status_code >= 300:
            raise CommandError(f"{url} answered {response.status_code}: {response.text}")
        self.stdout.write(f"{response.status_code} {response.text}")
        if not resolved:
            self.stdout.write(
                "To resolve it: python manage.py send_test_alert --resolved "
                f"--starts-at {starts_at}"
            )
