import logging

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from prometheus_client.exposition import choose_encoder

from alerts.api import presents
from rca_site import metrics as rootline_metrics
from rca_site import readiness

log = logging.getLogger(__name__)


def healthz(request):
    """200 when the database answers, 503 otherwise. No authentication: for probes."""
    exc = readiness.database_error()
    if exc is not None:
        return JsonResponse({"status": "unavailable", "database": str(exc)}, status=503)
    return JsonResponse({"status": "ok"})


def readyz(request):
    """200 when Rootline can take an alert and investigate it now: the database, the
    queue and its workers, the configured backends (rca_site/readiness.py); 503 naming
    what failed otherwise. No authentication (probes); no URL or secret in the answer."""
    ready, checks = readiness.readiness()
    body = {"status": "ready" if ready else "unavailable", "checks": checks}
    return JsonResponse(body, status=200 if ready else 503)


def metrics(request):
    """Prometheus metrics, counted from the database (rca_site/metrics.py).

    For Prometheus with `Authorization: Bearer <ROOTLINE_METRICS_TOKEN>` (or HTTP Basic
    with the token as password), and for logged-in staff in a browser. Without the token
    set, only staff: the counts say how an organisation's alerting is doing.
    """
    refusal = metrics_refusal(request)
    if refusal is not None:
        return refusal
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    try:
        body = encoder(rootline_metrics.registry())
    except DatabaseError as exc:
        log.error("/metrics: the database did not answer: %s", exc)
        return text(503, "The database did not answer; no metrics. See Rootline's log.")
    return HttpResponse(body, content_type=content_type)


def metrics_refusal(request):
    """None when `request` may read /metrics, else the answer that says why not."""
    expected = settings.ROOTLINE_METRICS_TOKEN
    if presents(request, expected):
        return None
    if request.user.is_authenticated and request.user.is_staff:
        return None
    if not expected:
        return text(
            403,
            "ROOTLINE_METRICS_TOKEN is not set, so /metrics is open to logged-in staff only. "
            "Set it and give Prometheus the same token (authorization: credentials); "
            "see docs/deploy.md.",
        )
    answer = text(
        401,
        "Missing or wrong metrics token: send `Authorization: Bearer <ROOTLINE_METRICS_TOKEN>`.",
    )
    answer["WWW-Authenticate"] = 'Bearer realm="rootline metrics"'
    return answer


def text(status, message):
    return HttpResponse(message + "\n", status=status, content_type="text/plain; charset=utf-8")
