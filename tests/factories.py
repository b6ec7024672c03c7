"""Small builders for rows the tests need, with realistic defaults."""

from datetime import UTC, datetime

from django.utils import timezone

from alerts.models import Alert
from investigations.models import Investigation

T0 = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)


def make_alert(fingerprint="a1b2c3d4e5f60718", starts_at=T0, status="firing", **labels):
    """An alert with `labels`; a default label given as None is left out."""
    labels = {"alertname": "HighErrorRate", "namespace": "production", **labels}
    labels = {k: v for k, v in labels.items() if v is not None}
    now = timezone.now()
    return Alert.objects.create(
        fingerprint=fingerprint,
        starts_at=starts_at,
        status=status,
        alertname=labels["alertname"],
        severity=labels.get("severity", ""),
        labels=labels,
        first_seen=now,
        last_seen=now,
    )


def make_investigation(*alerts, **fields):
    investigation = Investigation.objects.create(**fields)
    investigation.alerts.set(alerts)
    return investigation


# A report as the lead agent submits it (investigations.agents.team.Report).
REPORT = {
    "summary": "payment-api lost its database orders-db, which was OOM-killed.",
    "root_cause": {"service": "orders-db", "description": "OOM kill; payment-api refused"},
    "confidence": 0.8,
    "suspects": [
        {"service": "orders-db", "likelihood": 0.8, "reason": "OOM kill first"},
        {"service": "payment-api", "likelihood": 0.15, "reason": "errors follow"},
    ],
    "evidence": [{"claim": "connection refused from 03:49", "steps": [6]}],
    "remediation": ["Raise orders-db's memory limit"],
    "follow_up_checks": ["Check orders-db memory growth"],
}
