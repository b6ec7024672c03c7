from urllib.parse import parse_qs, urlsplit

from django.db import models
from django.utils import timezone


class WebhookDelivery(models.Model):
    """One POST to the webhook, kept as received before anything else is written.

    A delivery whose processing failed stays `received`, so it can be found and replayed.
    """

    class Outcome(models.TextChoices):
        RECEIVED = "received", "received, not yet processed"
        ACCEPTED = "accepted", "accepted"
        UNAUTHORIZED = "unauthorized", "unauthorized (401)"
        NOT_CONFIGURED = "not_configured", "no webhook token configured (503)"
        TOO_LARGE = "too_large", "body too large (413)"
        NOT_JSON = "not_json", "body is not JSON (400)"
        INVALID = "invalid", "not an Alertmanager v4 payload (422)"
        FAILED = "failed", "kept, but its alerts could not be stored (500)"

    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    body = models.BinaryField(blank=True)
    body_bytes = models.PositiveIntegerField(help_text="size of the body as sent")
    body_truncated = models.BooleanField(default=False)
    outcome = models.CharField(max_length=20, choices=Outcome, default=Outcome.RECEIVED)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    group_key = models.TextField(blank=True)
    alerts_received = models.PositiveIntegerField(default=0)
    alerts_new = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-received_at"]

    def __str__(self):
        return f"delivery {self.pk} at {self.received_at:%Y-%m-%d %H:%M:%S} ({self.outcome})"

    def body_text(self):
        return bytes(self.body).decode("utf-8", errors="replace")


class Alert(models.Model):
    """One firing episode of one Alertmanager alert.

    Alertmanager identifies an alert by the fingerprint of its labels; an episode is that
    fingerprint plus the time it started firing. Every notification of the episode
    (repeats, group updates, the resolution) updates this one row.
    """

    class Status(models.TextChoices):
        FIRING = "firing"
        RESOLVED = "resolved"

    fingerprint = models.CharField(max_length=64)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status)
    alertname = models.CharField(max_length=200, blank=True)
    severity = models.CharField(max_length=50, blank=True)
    labels = models.JSONField(default=dict)
    annotations = models.JSONField(default=dict, blank=True)
    generator_url = models.TextField(blank=True)
    group_key = models.TextField(blank=True)
    receive_count = models.PositiveIntegerField(default=1)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    first_delivery = models.ForeignKey(
        WebhookDelivery, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolved_delivery = models.ForeignKey(
        WebhookDelivery, models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["fingerprint", "starts_at"], name="alert_episode"),
        ]
        indexes = [
            # the alerts list: newest first, optionally only firing ones
            models.Index(fields=["status", "-starts_at"], name="alert_status_start"),
            models.Index(fields=["-starts_at"], name="alert_start"),
            # admin and page filters
            models.Index(fields=["alertname"], name="alert_alertname"),
            models.Index(fields=["severity"], name="alert_severity"),
        ]
        ordering = ["-starts_at"]

    def __str__(self):
        name = self.alertname or self.fingerprint
        return f"{name} ({self.status}, since {self.starts_at:%Y-%m-%d %H:%M})"

    def label(self, name, default=""):
        return self.labels.get(name, default)

    @property
    def expression(self):
        """The PromQL expression of the rule that raised the alert, from its generator URL
        (Prometheus and its rulers link to `/graph?g0.expr=...`); "" when it names none."""
        return parse_qs(urlsplit(self.generator_url).query).get("g0.expr", [""])[0]
