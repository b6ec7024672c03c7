"""Services named with their namespace in `job` ("shop/web"), and no other label to bound.

Prometheus' OTLP receiver and the OpenTelemetry collector's remote write, with no resource
attribute promoted to a label, store `job` = service.namespace/service.name and `instance`
only; Promtail's Kubernetes configuration labels log streams `job` = namespace/app. A real
Prometheus holds such series for two namespaces: in `shop`, `db` steps up at ONSET while
`web` (the alerting service) runs on; in `other`, `batch` steps up four times as far then.
The alert's namespace, as the prefix of its job, must bound the scan. Loki is
bench/loki_stub.py over HTTP.
"""

import pytest
from loki_stub import LogStore
from loki_stub import serve as serve_loki

from tests.investigations.signals.test_otel_names import suspected
from tests.investigations.signals.test_scope_labels import busy_series, error_lines
from tests.investigations.signals.test_scope_labels import investigate as investigate_alert
from tests.realprometheus import prometheus_fixture

# (job, level before ONSET, level from it)
JOBS = [("shop/db", 50, 90), ("shop/web", 50, 50), ("other/batch", 50, 210)]

pytestmark = pytest.mark.django_db


def openmetrics():
    return busy_series(
        (f'job="{job}",instance="{job.replace("/", "-")}-0"', before, after)
        for job, before, after in JOBS
    )


prometheus_url = prometheus_fixture(openmetrics)

# The errors of the two services that step up, in Promtail's names.
ENTRIES = [entry for job, _, after in JOBS if after != 50 for entry in error_lines({"job": job})]


def test_the_alert_s_namespace_in_its_job_bounds_the_scan(settings, prometheus_url):
    with serve_loki(LogStore(ENTRIES)) as loki:
        investigation = investigate_alert(
            settings, prometheus_url, loki.url, namespace=None, service=None, job="shop/web"
        )

    scope = investigation.scope
    assert (scope["matchers"], scope["service_namespace"]) == ({}, "shop")
    assert (scope["service_label"], scope["services"]) == ("job", ["shop/web"])
    assert scope["selector"] == '{job=~"shop/.+"}'
    assert investigation.steps.get(tool="scan_metrics").input["query"] == '{job=~"shop/.+"}'
    scan_logs = investigation.steps.get(tool="scan_logs")
    assert scan_logs.input["query"].startswith('{job=~"shop/.+"} |~')
    assert scan_logs.output["lines"] == [0, 20]  # shop's errors, not other's
    # db, in its metrics and its logs; nothing of the other namespace.
    assert investigation.suspects[0]["service"] == "shop/db"
    assert suspected(investigation)["shop/db"] >= {"metric", "logs"}
    assert "other/batch" not in suspected(investigation)


def test_a_loki_fed_through_opentelemetry_is_bounded_by_its_service_namespace(
    settings, prometheus_url
):
    # Loki's OTLP ingest indexes service_name and service_namespace, and has no job.
    entries = [
        entry
        for job, _, after in JOBS
        if after != 50
        for entry in error_lines(
            dict(zip(("service_namespace", "service_name"), job.split("/"), strict=True))
        )
    ]
    with serve_loki(LogStore(entries)) as loki:
        investigation = investigate_alert(
            settings, prometheus_url, loki.url, namespace=None, service=None, job="shop/web"
        )

    scope = investigation.scope
    assert scope["log_labels"] == {"job": "service_name", "service_namespace": "service_namespace"}
    assert scope["log_selector"] == '{service_namespace="shop"}'
    step = investigation.steps.get(tool="find_service_label")
    assert step.output_text == (
        "Loki: no stream has job: services named by service_name, bounded by service_namespace"
    )
    scan_logs = investigation.steps.get(tool="scan_logs")
    assert scan_logs.input["query"].startswith('{service_namespace="shop"} |~')
    assert scan_logs.output["lines"] == [0, 20]
    # Its logs are named as its metrics are, by OpenTelemetry's job: one suspect, not two.
    assert investigation.suspects[0]["service"] == "shop/db"
    assert suspected(investigation)["shop/db"] >= {"metric", "logs"}
    assert not {"db", "batch", "other/batch"} & set(suspected(investigation))
