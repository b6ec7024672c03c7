"""Telemetry that comes through OpenTelemetry, with nothing configured.

Prometheus' OTLP receiver, with the Kubernetes resource attributes promoted to labels,
stores `k8s_namespace_name`, `k8s_pod_name` and `service_name` (and sets `job` from
`service.name`), and alert rules over such series fire with those labels. A real
Prometheus holds such series for two namespaces: in `shop`, `db` steps up at ONSET while
`web` (the alerting service) runs on; in `other`, `batch` steps up four times as far then.
The alerts' namespace must bound the scan, and the pods be told by `k8s_pod_name`. Loki
is bench/loki_stub.py over HTTP, its streams named by OpenTelemetry or by Promtail.
"""

import pytest
from loki_stub import LogStore
from loki_stub import serve as serve_loki

from investigations import runner
from investigations.models import Investigation
from tests.investigations.signals.test_scope_labels import (
    NOW,
    ONSET,
    busy_series,
    error_lines,
    logs_read_in,
)
from tests.investigations.signals.test_scope_labels import investigate as investigate_alert
from tests.realprometheus import prometheus_fixture

# (namespace, service, pod, level before ONSET, level from it)
WORKLOADS = [
    ("shop", "db", "db-0", 50, 90),
    ("shop", "web", "web-7f9c-x1", 50, 50),
    ("other", "batch", "batch-0", 50, 210),
]

pytestmark = pytest.mark.django_db


def openmetrics():
    return busy_series(
        (
            f'k8s_namespace_name="{namespace}",service_name="{service}",job="{service}",'
            f'k8s_pod_name="{pod}",instance="{pod}:8080"',
            before,
            after,
        )
        for namespace, service, pod, before, after in WORKLOADS
    )


prometheus_url = prometheus_fixture(openmetrics)


def streams(labels):
    """New errors from the onset on in db's and batch's streams, labelled by
    `labels(namespace, service, pod)`."""
    return [
        entry
        for namespace, service, pod, _, after in WORKLOADS
        if after != 50
        for entry in error_lines(labels(namespace, service, pod))
    ]


# web's alert, raised on its OpenTelemetry series.
WEB_ALERT = {
    "alertname": "HighLatency",
    "k8s_namespace_name": "shop",
    "service_name": "web",
    "job": "web",
    "k8s_pod_name": "web-7f9c-x1",
}


def investigate(settings, prometheus_url, loki_url, labels=WEB_ALERT):
    """An investigation of an alert with `labels` and no other (no plain namespace or
    service), as test_scope_labels runs them."""
    return investigate_alert(
        settings, prometheus_url, loki_url, namespace=None, service=None, **labels
    )


def suspected(investigation):
    """{service: the kinds of its evidence}, of the suspects."""
    return {s["service"]: {item["kind"] for item in s["evidence"]} for s in investigation.suspects}


def test_the_alerts_namespace_bounds_the_scan_in_opentelemetry_s_names(prometheus_url, settings):
    entries = streams(
        lambda namespace, service, pod: {
            "k8s_namespace_name": namespace,
            "service_name": service,
            "k8s_pod_name": pod,
        }
    )
    with serve_loki(LogStore(entries)) as loki:
        investigation = investigate(settings, prometheus_url, loki.url)

    scope = investigation.scope
    assert scope["matchers"] == {"k8s_namespace_name": "shop"}
    assert (scope["service_label"], scope["services"]) == ("service_name", ["web"])
    assert "log_labels" not in scope  # Loki holds the scope's own names
    step = investigation.steps.get(tool="check_scope_labels")
    assert step.output_text == (
        'Prometheus: k8s_namespace_name="shop" held; Loki: k8s_namespace_name="shop" held'
    )
    query = investigation.steps.get(tool="scan_metrics").input["query"]
    assert query == '{k8s_namespace_name="shop"}'
    assert investigation.steps.get(tool="scan_logs").input["query"].startswith(query + " |~")
    # db, in its metrics and its logs; nothing of the other namespace.
    assert investigation.suspects[0]["service"] == "db"
    found = suspected(investigation)
    assert found["db"] >= {"metric", "logs"}
    assert "batch" not in found


def test_a_loki_fed_by_promtail_is_read_in_its_own_names(prometheus_url, settings):
    # Promtail's names, and no service label: only the pod tells whose a stream is.
    entries = streams(
        lambda namespace, service, pod: {"namespace": namespace, "pod": pod, "container": "server"}
    )
    with serve_loki(LogStore(entries)) as loki:
        investigation = investigate(settings, prometheus_url, loki.url)

    scan_logs = logs_read_in(
        investigation,
        {
            "k8s_namespace_name": "namespace",
            "k8s_pod_name": "pod",
            "k8s_container_name": "container",
        },
        '{namespace="shop"}',
    )
    assert scan_logs.output["lines"] == [0, 20]  # shop's, not other's
    # The metric scan's pods (k8s_pod_name) name the streams' services (pod).
    found = suspected(investigation)
    assert investigation.suspects[0]["service"] == "db"
    assert found["db"] >= {"metric", "logs"}
    assert "batch" not in found


def ask(settings, prometheus_url, matchers):
    """An investigation of a question about `matchers`, from ONSET on."""
    settings.ROOTLINE_PROMETHEUS_URL, settings.ROOTLINE_LOKI_URL = prometheus_url, ""
    investigation = Investigation.open_question("What changed?", matchers, ONSET, NOW)
    runner.run(investigation.pk)
    investigation.refresh_from_db()
    assert investigation.status == "completed", investigation.error
    return investigation


def test_a_question_naming_no_service_is_scanned_by_the_store_s_service_label(
    prometheus_url, settings
):
    investigation = ask(settings, prometheus_url, {"k8s_namespace_name": "shop"})

    assert investigation.suspects[0]["service"] == "db"
    assert "batch" not in suspected(investigation)
    assert investigation.scope["service_label"] == "service_name"
    step = investigation.steps.get(tool="find_service_label")
    assert step.input["match"] == '{k8s_namespace_name="shop"}'
    assert step.output_text == "Prometheus names services by service_name"


def test_a_store_with_none_of_the_service_labels_is_said(prometheus_url, settings):
    settings.ROOTLINE_SERVICE_LABELS = ["app", "container"]

    investigation = ask(settings, prometheus_url, {"k8s_namespace_name": "shop"})

    step = investigation.steps.get(tool="find_service_label")
    assert step.output == {"metrics": {"service_label": None}}
    assert investigation.scope["service_label"] is None
    assert investigation.suspects == []
    gap = (
        'metrics: no series under {k8s_namespace_name="shop"} has a label that names a '
        "service (app, container, nor their OpenTelemetry names)"
    )
    assert any(line.startswith(gap) for line in investigation.report["unchecked"])


# An alert that names no namespace: only the target, as on Prometheus' own `job` and
# `instance` (a target outside Kubernetes, or OTLP with no attribute promoted to a label).
JOB_ALERT = {"alertname": "HighLatency", "job": "web", "instance": "web-7f9c-x1:8080"}


def test_with_nothing_to_bound_it_loki_is_read_by_a_service_label_it_holds(
    prometheus_url, settings
):
    # Loki, fed through OpenTelemetry, has no `job`: it names services service_name.
    entries = streams(
        lambda namespace, service, pod: {"k8s_namespace_name": namespace, "service_name": service}
    )
    with serve_loki(LogStore(entries)) as loki:
        investigation = investigate(settings, prometheus_url, loki.url, JOB_ALERT)

    assert investigation.scope["matchers"] == {}
    scan_logs = investigation.steps.get(tool="scan_logs")
    assert scan_logs.input["query"].startswith('{service_name=~".+"} |~')
    assert scan_logs.output["lines"] == [0, 40]  # every namespace's: nothing bounds it
    assert {"metric", "logs"} <= suspected(investigation)["db"]
    assert investigation.scope["log_labels"] == {"job": "service_name"}
    step = investigation.steps.get(tool="find_service_label")
    assert step.output == {"logs": {"service_label": "service_name"}}
    assert step.output_text == "Loki: no stream has job: services named by service_name"


def test_a_loki_with_no_service_label_is_not_read_and_said(prometheus_url, settings):
    entries = error_lines({"filename": "/var/log/db.log"})
    with serve_loki(LogStore(entries)) as loki:
        investigation = investigate(settings, prometheus_url, loki.url, JOB_ALERT)

    assert not investigation.steps.filter(tool__in=["scan_logs", "scan_paths"]).exists()
    step = investigation.steps.get(tool="find_service_label")
    assert step.output == {"logs": {"service_label": None}}
    [gap] = [line for line in investigation.report["unchecked"] if line.startswith("logs")]
    assert gap.startswith("logs: Loki holds no stream with job or any other label that names")
    assert "ROOTLINE_LOKI_LABELS" in gap
    assert investigation.suspects  # the metrics are read as ever
