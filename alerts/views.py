"""The alert pages: the list (filters kept in the URL, refreshed every few seconds) and one
alert with its labels, annotations, history, deliveries and investigations."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.shortcuts import get_object_or_404, render

from alerts.models import Alert

PAGE_SIZE = 50
LINK_ANNOTATIONS = ("runbook_url", "runbook", "dashboard", "dashboard_url")


def is_web_url(value):
    return isinstance(value, str) and value.lower().startswith(("http://", "https://"))


def label_matches(names, value):
    """Alerts whose label `name` (any of `names`) is `value`."""
    matches = Q()
    for name in names:
        matches |= Q(**{f"labels__{name}": value})
    return matches


def filter_alerts(params):
    # A NUL cannot be in any stored text, and PostgreSQL refuses to compare with one.
    params = {k: v.replace("\x00", "") for k, v in params.items() if isinstance(v, str)}
    alerts = Alert.objects.prefetch_related("investigations").order_by("-starts_at", "-pk")
    if params.get("fingerprint"):
        alerts = alerts.filter(fingerprint=params["fingerprint"])
    if params.get("status") in Alert.Status.values:
        alerts = alerts.filter(status=params["status"])
    if params.get("severity"):
        alerts = alerts.filter(severity=params["severity"].lower())
    if params.get("alertname"):
        alerts = alerts.filter(alertname=params["alertname"])
    if params.get("service"):
        alerts = alerts.filter(label_matches(settings.ROOTLINE_SERVICE_LABELS, params["service"]))
    if params.get("namespace"):
        alerts = alerts.filter(label_matches(["namespace"], params["namespace"]))
    if text := params.get("q", "").strip():
        alerts = alerts.filter(
            Q(alertname__icontains=text)
            | Q(fingerprint__icontains=text)
            | Q(labels__icontains=text)
            | Q(annotations__icontains=text)
        )
    return alerts


@login_required
def alert_list(request):
    page = Paginator(filter_alerts(request.GET), PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "alerts/list.html",
        {
            "page": page,
            "filters": {k: request.GET.get(k, "") for k in FILTERS},
            "query": query.urlencode(),
            "severities": Alert.objects.exclude(severity="")
            .values_list("severity", flat=True)
            .distinct()
            .order_by("severity"),
        },
    )


FILTERS = ("status", "severity", "alertname", "service", "namespace", "q")


@login_required
def alert_detail(request, pk):
    alert = get_object_or_404(
        Alert.objects.select_related("first_delivery", "resolved_delivery"), pk=pk
    )
    # Only http(s) becomes a link: an annotation is whatever the alert rule wrote.
    links = {k: v for k, v in alert.annotations.items() if k in LINK_ANNOTATIONS and is_web_url(v)}
    return render(
        request,
        "alerts/detail.html",
        {
            "alert": alert,
            "links": links,
            "annotations": {k: v for k, v in alert.annotations.items() if k not in links},
            "source": alert.generator_url if is_web_url(alert.generator_url) else "",
            "investigations": alert.investigations.order_by("-created_at"),
            "episodes": Alert.objects.filter(fingerprint=alert.fingerprint).order_by("-starts_at"),
        },
    )
