"""POST /webhooks/alertmanager: authenticate, keep the raw delivery, validate, upsert, queue.

It never calls a telemetry backend or a model, so it answers in milliseconds. The order
is fixed: nothing about the request is trusted before it is authenticated, and no alert
is written before its raw delivery is.
"""

import base64
import binascii
import logging
import secrets

from django.conf import settings
from django.db import DatabaseError, transaction
from ninja import Router, Status
from pydantic import ValidationError

from alerts.ingest import ingest, prepare
from alerts.models import WebhookDelivery
from alerts.schemas import (
    AlertmanagerPayload,
    ErrorOut,
    WebhookAcceptedOut,
    describe_validation_error,
)

log = logging.getLogger(__name__)

router = Router(tags=["webhook"])

KEPT_HEADERS = ("User-Agent", "Content-Type", "Content-Length", "X-Forwarded-For")

Outcome = WebhookDelivery.Outcome


class Refused(Exception):
    """The delivery cannot be accepted; carries the HTTP answer to give."""

    def __init__(self, status, outcome, error, message, fields=()):
        super().__init__(message)
        self.status = status
        self.outcome = outcome
        self.error = error
        self.message = message
        self.fields = list(fields)

    def answer(self):
        body = {"error": self.error, "message": self.message, "fields": self.fields}
        return Status(self.status, body)


def presented_token(request):
    """The token from `Authorization: Bearer <token>` or Basic auth's password, or None."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


def presents(request, expected):
    """The request carries `expected` (webhook or metrics token), compared in constant
    time; never true when no token is expected."""
    token = presented_token(request)
    return (
        bool(expected)
        and token is not None
        and secrets.compare_digest(token.encode(), expected.encode())
    )


def check_token(request):
    expected = settings.ROOTLINE_WEBHOOK_TOKEN
    if not expected:
        raise Refused(
            503,
            Outcome.NOT_CONFIGURED,
            "webhook_not_configured",
            "ROOTLINE_WEBHOOK_TOKEN is not set on this Rootline, so it accepts no alerts. "
            "Set it and give Alertmanager the same token.",
        )
    if not presents(request, expected):
        raise Refused(
            401,
            Outcome.UNAUTHORIZED,
            "unauthorized",
            "Missing or wrong webhook token: send `Authorization: Bearer <token>` "
            "(or HTTP Basic with the token as password).",
        )


def read_body(request, limit):
    """Up to `limit` + 1 bytes of the body, whatever Content-Length claims."""
    declared = request.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        return request.read(settings.ROOTLINE_REFUSED_BODY_KEEP_BYTES), int(declared)
    body = request.read(limit + 1)
    return body, len(body)


def parse(body, size, limit):
    if size > limit:
        raise Refused(
            413,
            Outcome.TOO_LARGE,
            "payload_too_large",
            f"The body is {size} bytes; this webhook takes at most {limit} "
            "(ROOTLINE_WEBHOOK_MAX_BYTES). Lower max_alerts in Alertmanager's webhook_configs.",
        )
    try:
        return AlertmanagerPayload.model_validate_json(body)
    except ValidationError as exc:
        not_json = [e for e in exc.errors() if e["type"] == "json_invalid"]
        if not_json:
            reason = not_json[0]["ctx"].get("error", "") if "ctx" in not_json[0] else ""
            message = f"The body is not valid JSON: {reason}." if reason else "Not JSON."
            raise Refused(400, Outcome.NOT_JSON, "not_json", message) from None
        message, fields = describe_validation_error(exc)
        raise Refused(422, Outcome.INVALID, "payload_invalid", message, fields) from None


def keep_delivery(request, body, size, refused=None, whole=False):
    """Write the raw delivery, trimmed for refusals (unless `whole`) so storage stays
    bounded whatever an unauthenticated or broken sender posts."""
    keep = len(body) if refused is None or whole else settings.ROOTLINE_REFUSED_BODY_KEEP_BYTES
    headers = {h: request.headers[h] for h in KEPT_HEADERS if h in request.headers}
    auth_scheme = request.headers.get("Authorization", "").partition(" ")[0]
    if auth_scheme:
        headers["Authorization"] = f"{auth_scheme} [not stored]"
    return WebhookDelivery.objects.create(
        remote_addr=request.META.get("REMOTE_ADDR") or None,
        headers={k: v.replace("\x00", "") for k, v in headers.items()},
        body=body[:keep],
        body_bytes=size,
        body_truncated=size > keep,
        outcome=refused.outcome if refused else Outcome.RECEIVED,
        status_code=refused.status if refused else None,
        error=refused.message if refused else "",
    )


def ingest_failure(exc):
    """The answer when the alerts of an accepted payload could not be stored.

    A database error gets 503, so Alertmanager retries; anything else is a bug (500, and
    Alertmanager retries too).
    """
    if isinstance(exc, DatabaseError):
        log.error("webhook alerts not stored, answering 503: %s", exc)
        return Refused(
            503,
            Outcome.FAILED,
            "database_unavailable",
            f"The alert store failed ({type(exc).__name__}); no alert was stored. Retry later.",
        )
    log.exception("webhook alerts not stored, answering 500")
    return Refused(
        500,
        Outcome.FAILED,
        "ingest_failed",
        f"The alerts could not be stored ({type(exc).__name__}); this is a bug in Rootline, "
        "see its log. Retry later.",
    )


@router.post(
    "/alertmanager",
    response={202: WebhookAcceptedOut, (400, 401, 413, 422, 500, 503): ErrorOut},
    summary="Receive an Alertmanager webhook notification",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": AlertmanagerPayload.model_json_schema()}},
        },
        "security": [{"BearerAuth": []}, {"BasicAuth": []}],
    },
)
def alertmanager_webhook(request):
    """Point an Alertmanager `webhook_configs` receiver here with the Rootline token.

    Every alert is stored once per firing episode (fingerprint + startsAt); a new episode
    starts an investigation unless its group already has one within ROOTLINE_GROUP_WINDOW.
    """
    limit = settings.ROOTLINE_WEBHOOK_MAX_BYTES
    failure = None
    try:
        body, size = read_body(request, limit)
        try:
            check_token(request)
            payload = parse(body, size, limit)
        except Refused as refused:
            keep_delivery(request, body, size, refused)
            return refused.answer()
        batch = prepare(payload)
        # One transaction, one commit: the delivery row, the alerts, the investigation
        # and its task. Should ingest fail, all of it is rolled back and the raw delivery
        # is kept on its own, whole and marked failed, for replay.
        try:
            with transaction.atomic():
                delivery = keep_delivery(request, body, size)
                result = ingest(batch, delivery)
        except Exception as exc:
            failure = ingest_failure(exc)
            kept = keep_delivery(request, body, size, failure, whole=True)
            failure.message += f" The raw delivery was kept (id {kept.pk}) for replay."
            WebhookDelivery.objects.filter(pk=kept.pk).update(error=failure.message)
            return failure.answer()
    except DatabaseError as exc:
        log.error("webhook delivery not stored, answering 503: %s", exc)
        body = {
            "error": "database_unavailable",
            "message": "The alert store is unavailable; nothing was stored. Retry later.",
            "fields": [],
        }
        return Status(503, body)
    log.info(
        "webhook delivery %s: %s alerts, %s new, %s resolved, %s investigations queued",
        delivery.pk,
        result.alerts_received,
        result.alerts_new,
        result.alerts_resolved,
        result.investigations_queued,
    )
    return Status(202, result.as_dict())
