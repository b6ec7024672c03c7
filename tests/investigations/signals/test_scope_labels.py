"""The scope's labels as each store holds them, checked before the scans read.

A real Prometheus whose configuration has external labels (cluster="eu1", as a server of
one cluster among several has): it adds them to the alerts it sends, so the alerts carry
cluster="eu1", but its series do not. Its namespace `shop` has `db` step up at ONSET;
namespace `other` is there too. Loki is bench/loki_stub.py over HTTP, its streams
labelled as the test says.
"""

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx
from loki_stub import LogStore
from loki_stub import serve as serve_loki

from investigations import runner
from investigations.signals.stores import external_labels
from investigations.telemetry import BackendConfig, PrometheusClient
from tests.factories import make_alert, make_investigation
from tests.realprometheus import prometheus_fixture

START = (datetime.now(UTC) - timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)
ONSET = START + timedelta(minutes=60)
ALERT = ONSET + timedelta(minutes=1)
NOW = ALERT + timedelta(minutes=5)
EXTERNAL = {"cluster": "eu1", "replica": "a"}

pytestmark = pytest.mark.django_db


def openmetrics():
    return busy_series(
        (f'namespace="{namespace}",service="{service}"', 50, 90 if service == "db" else 50)
        for namespace, service in (("shop", "db"), ("shop", "web"), ("other", "batch"))
    )


def busy_series(workloads):
    """OpenMetrics text of a gauge `busy` per (labels, level before ONSET, level from it)
    of `workloads`, every 15 s from START to ten minutes after NOW, wobbling by 0-2."""
    lines = ["# HELP busy Work in progress.", "# TYPE busy gauge"]
    for labels, before, after in workloads:
        t, n = START, 0
        while t < NOW + timedelta(minutes=10):
            level = after if t >= ONSET else before
            lines.append(f"busy{{{labels}}} {level + n % 3} {t.timestamp():.0f}")
            t, n = t + timedelta(seconds=15), n + 1
    return "\n".join([*lines, "# EOF", ""])


prometheus_url = prometheus_fixture(
    openmetrics, config={"global": {"evaluation_interval": "1m", "external_labels": EXTERNAL}}
)


def at(moment):
    return int(moment.timestamp() * 10**9)


def error_lines(labels):
    """New errors from the onset on, in a stream labelled `labels`."""
    return [(labels, at(ONSET + timedelta(seconds=10 * n)), f"ERROR lost {n}") for n in range(20)]


def investigate(settings, prometheus_url, loki_url="", starts_at=ALERT, **labels):
    investigation = make_investigation(
        make_alert(starts_at=starts_at, **{"service": "web", **labels}),
        as_of=starts_at + (NOW - ALERT),
    )
    settings.ROOTLINE_PROMETHEUS_URL, settings.ROOTLINE_LOKI_URL = prometheus_url, loki_url
    runner.run(investigation.pk)
    investigation.refresh_from_db()
    assert investigation.status == "completed", investigation.error
    return investigation


def only_gap(investigation, store):
    """The one "Not checked" line of the report about `store` ("metrics", "logs")."""
    [line] = [line for line in investigation.report["unchecked"] if line.startswith(store)]
    return line


def logs_read_in(investigation, log_labels, selector):
    """Assert that the scope took Loki's names `log_labels` ({scope's: Loki's}) and the
    log scans read by `selector`; returns the scan_logs step."""
    assert investigation.scope["log_labels"] == log_labels
    assert investigation.scope["log_selector"] == selector
    scan_logs = investigation.steps.get(tool="scan_logs")
    assert scan_logs.input["query"].startswith(selector + " |~")
    return scan_logs


def checked(investigation, store):
    step = investigation.steps.get(tool="check_scope_labels")
    assert (step.agent, step.status) == ("signals", "ok")
    return {c["label"]: c for c in step.output[store]["labels"]}


def test_the_alerting_servers_external_label_is_left_out_of_its_selector(prometheus_url, settings):
    # Loki's agents label streams by namespace but not by cluster, and Loki 3 adds a
    # service_name to each.
    entries = error_lines({"namespace": "shop", "app": "db", "service_name": "db"})
    entries += error_lines({"namespace": "shop", "container": "web", "service_name": "web"})
    with serve_loki(LogStore(entries)) as loki:
        investigation = investigate(
            settings, prometheus_url, loki.url, cluster="eu1", namespace="shop"
        )

    # No scope label was found under an OpenTelemetry name: streams are named as ever.
    assert "log_labels" not in investigation.scope
    metrics = checked(investigation, "metrics")
    assert metrics["cluster"]["state"] == "unstored"
    assert metrics["namespace"]["state"] == "held"
    assert checked(investigation, "logs")["cluster"]["state"] == "unstored"
    assert investigation.steps.get(tool="check_scope_labels").output_text == (
        'Prometheus: no series has cluster: read without cluster="eu1"; namespace="shop" '
        'held; Loki: no stream has cluster: read without cluster="eu1"; namespace="shop" held'
    )
    scope = investigation.scope
    assert scope["matchers"] == {"cluster": "eu1", "namespace": "shop"}
    assert scope["unstored"] == {"metrics": ["cluster"], "logs": ["cluster"]}
    assert scope["selector"] == '{namespace="shop"}'
    assert investigation.steps.get(tool="scan_metrics").input["query"] == '{namespace="shop"}'
    assert (
        investigation.steps.get(tool="scan_logs").input["query"].startswith('{namespace="shop"} |~')
    )
    # Read without it, the scan finds db, in its metrics and its logs.
    [db] = [s for s in investigation.suspects if s["service"] == "db"]
    assert investigation.suspects[0]["service"] == "db"
    assert {item["kind"] for item in db["evidence"]} >= {"metric", "logs"}
    assert not any("cluster" in line for line in investigation.report["unchecked"])


def test_an_alert_from_another_server_is_not_read_as_this_ones(prometheus_url, settings):
    # Loki, without a cluster label, is taken for the same cluster as Prometheus: its
    # namespace shop is not the alerts' either.
    entries = error_lines({"namespace": "shop", "service": "db"})
    with serve_loki(LogStore(entries)) as loki:
        investigation = investigate(
            settings, prometheus_url, loki.url, cluster="us2", namespace="shop"
        )

    cluster = checked(investigation, "metrics")["cluster"]
    assert (cluster["state"], cluster["external"]) == ("elsewhere", "eu1")
    assert "unstored" not in investigation.scope
    query = investigation.steps.get(tool="scan_metrics").input["query"]
    assert query == '{cluster="us2", namespace="shop"}'
    assert investigation.suspects == []
    gap = only_gap(investigation, "metrics")
    assert 'the alerts are from cluster="us2"' in gap
    assert 'is cluster="eu1" (its external labels)' in gap
    assert "ROOTLINE_PROMETHEUS_URL" in gap
    assert gap in investigation.report_text
    assert checked(investigation, "logs")["cluster"]["state"] == "elsewhere"
    scan_logs = investigation.steps.get(tool="scan_logs")
    assert scan_logs.input["query"].startswith('{cluster="us2", namespace="shop"} |~')
    assert scan_logs.output["lines"] == [0, 0]
    logs = only_gap(investigation, "logs")
    assert logs == (
        "logs: Loki holds no cluster, so it is taken for the same cluster as the metric store "
        '("eu1", not the alerts\' "us2"): no stream matched'
    )


def test_a_namespace_the_store_does_not_hold_is_said_with_those_it_does(prometheus_url, settings):
    investigation = investigate(settings, prometheus_url, namespace="prod")

    namespace = checked(investigation, "metrics")["namespace"]
    assert (namespace["state"], namespace["values"]) == ("other", ["other", "shop"])
    assert investigation.suspects == []
    gap = only_gap(investigation, "metrics")
    assert gap.startswith('metrics: Prometheus has nothing with namespace="prod" between ')
    assert gap.endswith('(it has "other", "shop")')


def test_a_mistyped_service_is_said_with_the_likeliest_first(prometheus_url, settings):
    # Scoped by service too, as a question asked by hand may be: the values most like
    # the typo come first.
    settings.ROOTLINE_SCOPE_LABELS = ["namespace", "service"]
    investigation = investigate(settings, prometheus_url, namespace="shop", service="wbe")

    gap = only_gap(investigation, "metrics")
    assert gap.startswith('metrics: Prometheus has nothing with service="wbe" between ')
    assert gap.endswith('(it has "web", "batch", "db")')


def test_labels_held_apart_but_never_together_are_said(prometheus_url, settings):
    settings.ROOTLINE_SCOPE_LABELS = ["namespace", "service"]
    investigation = investigate(settings, prometheus_url, namespace="other", service="db")

    assert {c["state"] for c in checked(investigation, "metrics").values()} == {"held"}
    assert investigation.suspects == []
    gap = only_gap(investigation, "metrics")
    assert gap.startswith('metrics: no series under {namespace="other", service="db"} between ')
    assert gap.endswith(" UTC, so no metric could be compared")


def test_a_store_with_nothing_in_that_time_is_not_read_without_the_labels(prometheus_url, settings):
    # A day before its first sample the store has no label at all: the labels are not
    # what is missing, and read without them the scope would be every series there is.
    investigation = investigate(
        settings, prometheus_url, starts_at=ALERT - timedelta(days=1), namespace="shop"
    )

    step = investigation.steps.get(tool="check_scope_labels")
    assert step.output["metrics"]["empty"] is True
    assert step.output_text == "Prometheus: holds nothing at all in that time"
    assert "unstored" not in investigation.scope
    assert investigation.steps.get(tool="scan_metrics").input["query"] == '{namespace="shop"}'
    gap = only_gap(investigation, "metrics")
    assert gap.startswith("metrics: Prometheus holds nothing at all between ")


def test_a_loki_fed_opentelemetry_is_read_in_its_names(prometheus_url, settings):
    # Loki indexes OpenTelemetry resource attributes as k8s_namespace_name, service_name,
    # k8s_pod_name: the scans read and name its streams so, with nothing configured.
    entries = error_lines(
        {"k8s_namespace_name": "shop", "service_name": "db", "k8s_pod_name": "db-1"}
    )
    entries += error_lines(
        {"k8s_namespace_name": "other", "service_name": "batch", "k8s_pod_name": "batch-1"}
    )
    with serve_loki(LogStore(entries)) as loki:
        investigation = investigate(settings, prometheus_url, loki.url, namespace="shop")

    namespace = checked(investigation, "logs")["namespace"]
    assert (namespace["stored_as"], namespace["state"]) == ("k8s_namespace_name", "held")
    scan_logs = logs_read_in(
        investigation,
        {
            "namespace": "k8s_namespace_name",
            "pod": "k8s_pod_name",
            "service": "service_name",
            "job": "service_name",  # Prometheus' OTLP receiver's job is service.name
        },
        '{k8s_namespace_name="shop"}',
    )
    assert "unstored" not in investigation.scope
    assert scan_logs.output["lines"] == [0, 20]  # shop's, not other's
    [db] = [s for s in investigation.suspects if s["service"] == "db"]
    [errors] = [item for item in db["evidence"] if item["kind"] == "logs"]
    assert errors["incident_lines"] == 20
    assert [line for line in investigation.report["unchecked"] if "logs" in line] == []


@pytest.mark.parametrize("configured", [False, True])
def test_a_loki_that_holds_none_of_the_scopes_labels_is_not_read_unbounded(
    prometheus_url, settings, configured
):
    # The log agent names the labels its own way. Read without the namespace, the scans
    # would read every namespace; ROOTLINE_LOKI_LABELS maps them.
    if configured:
        settings.ROOTLINE_LOKI_LABELS = {"namespace": "kubernetes_namespace", "service": "app"}
    entries = error_lines({"kubernetes_namespace": "shop", "app": "db"})
    entries += error_lines({"kubernetes_namespace": "other", "app": "batch"})
    with serve_loki(LogStore(entries)) as loki:
        investigation = investigate(settings, prometheus_url, loki.url, namespace="shop")

    logs = investigation.steps.get(tool="check_scope_labels").output["logs"]
    assert logs["read"] is configured
    scanned = investigation.steps.filter(tool__in=["scan_logs", "scan_paths"])
    if configured:
        assert checked(investigation, "logs")["namespace"]["stored_as"] == "kubernetes_namespace"
        assert scanned.count() == 2
        assert investigation.steps.get(tool="scan_logs").output["lines"] == [0, 20]
        [db] = [s for s in investigation.suspects if s["service"] == "db"]
        assert "logs" in {item["kind"] for item in db["evidence"]}
        assert investigation.report["unchecked"] == []
        return
    assert logs["store_labels"] == ["app", "kubernetes_namespace"]
    assert not scanned.exists()
    [gap] = investigation.report["unchecked"]
    assert gap.startswith("logs: Loki holds none of the scope's labels (namespace) between ")
    assert "its labels are: app, kubernetes_namespace" in gap
    assert "ROOTLINE_LOKI_LABELS" in gap
    # The metrics are read as ever: db leads.
    assert investigation.suspects[0]["service"] == "db"


def test_a_store_that_cannot_be_checked_is_read_as_the_scope_says(prometheus_url, settings):
    settings.ROOTLINE_LOKI_URL = "http://127.0.0.1:9"  # nothing listens there
    investigation = make_investigation(
        make_alert(service="web", starts_at=ALERT, cluster="eu1", namespace="shop"), as_of=NOW
    )
    settings.ROOTLINE_PROMETHEUS_URL = prometheus_url
    runner.run(investigation.pk)
    investigation.refresh_from_db()

    assert investigation.status == "completed", investigation.error
    step = investigation.steps.get(tool="check_scope_labels")
    assert step.status == "ok"
    assert "Loki" in step.output["logs"]["error"]
    assert "logs: could not check" in step.output_text
    assert investigation.scope["unstored"] == {"metrics": ["cluster"]}
    assert (
        investigation.steps.get(tool="scan_logs")
        .input["query"]
        .startswith('{cluster="eu1", namespace="shop"}')
    )
    assert investigation.suspects[0]["service"] == "db"


@respx.mock
def test_a_querier_without_a_configuration_has_no_external_labels():
    # Thanos' and Mimir's queriers answer 404 where Prometheus shows its configuration.
    respx.get("http://thanos:9090/api/v1/status/config").mock(
        return_value=httpx.Response(404, text="404 page not found")
    )
    respx.get("http://prom:9090/api/v1/status/config").mock(
        return_value=httpx.Response(
            200,
            json={
                "status": "success",
                "data": {"yaml": "global:\n  external_labels:\n    cluster: eu1\n    zone: 3\n"},
            },
        )
    )

    async def labels(url):
        async with PrometheusClient(BackendConfig(url=url, name="Prometheus")) as prometheus:
            return await external_labels(prometheus)

    assert asyncio.run(labels("http://thanos:9090")) == {}
    assert asyncio.run(labels("http://prom:9090")) == {"cluster": "eu1", "zone": "3"}
