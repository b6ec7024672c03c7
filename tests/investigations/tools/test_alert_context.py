"""The alert context tool: the investigation's alerts, its group's other alerts, the scope."""

import asyncio
from datetime import timedelta

import pytest
import respx

from alerts.models import Alert
from investigations import runner
from investigations.telemetry import BackendConfig, PrometheusClient
from investigations.tools import TOOLS, build_context, call
from investigations.tools.compaction import estimate_tokens
from tests.factories import T0, make_alert, make_investigation

pytestmark = pytest.mark.django_db

GROUP = '{}:{alertname="HighErrorRate", namespace="production"}'
TOKEN = "glpat-AbCdEfGhIjKlMnOpQrSt"


def alert(fingerprint, starts_at=T0, **labels):
    row = make_alert(fingerprint, starts_at=starts_at, service="checkout", **labels)
    Alert.objects.filter(pk=row.pk).update(
        group_key=GROUP,
        annotations={
            "summary": f"5xx ratio above 5% on {labels.get('pod', 'checkout')}",
            "runbook_url": f"https://runbooks.example/5xx?private_token={TOKEN}",
        },
    )
    row.refresh_from_db()
    return row


def investigated(*alerts):
    investigation = make_investigation(*alerts, group_key=GROUP, as_of=T0 + timedelta(minutes=10))
    runner.scope_step(investigation)
    return investigation


def run_alert_context(investigation, **options):
    context = build_context(investigation, **options)
    return asyncio.run(call(TOOLS["alert_context"], context, {}))


def test_it_shows_the_alerts_the_group_and_the_windows():
    first = alert("aa01", pod="checkout-1")
    investigation = investigated(first)
    alert("aa02", starts_at=T0 + timedelta(minutes=2), pod="checkout-2")  # joined later
    alert("aa03", starts_at=T0 - timedelta(days=2), pod="old")  # long before: not related

    result = run_alert_context(investigation)

    assert not result.is_error, result.text
    assert "1 alert(s) of this investigation" in result.text
    assert "HighErrorRate [firing] since 2026-11-25T04:00:00Z" in result.text
    assert "5xx ratio above 5% on checkout-1" in result.text
    assert "1 other alert(s) of the same group" in result.text
    assert "checkout-2" in result.text and "pod=old" not in result.text
    assert 'Scope {namespace="production"}; services: checkout' in result.text
    assert "incident 2026-11-25 03:45..04:10 UTC" in result.text
    assert [a["fingerprint"] for a in result.data["related_alerts"]] == ["aa02"]


def test_it_gives_loki_s_selector_where_loki_names_the_labels_otherwise(settings):
    settings.ROOTLINE_LOKI_LABELS = {"namespace": "k8s_namespace_name"}

    result = run_alert_context(investigated(alert("aa01")))

    assert (
        'Scope {namespace="production"} (in Loki: {k8s_namespace_name="production"}); '
        "services: checkout" in result.text
    )


def test_secrets_in_annotations_are_redacted():
    result = run_alert_context(investigated(alert("aa01")))

    assert TOKEN not in result.text + str(result.data)
    assert result.redactions


def test_a_storm_is_held_to_the_budget():
    alerts = [alert(f"{n:04x}", pod=f"checkout-{n}") for n in range(40)]
    investigation = investigated(*alerts)

    result = run_alert_context(investigation, budget_tokens=300)

    assert estimate_tokens(result.text) <= 300
    assert len(result.data["alerts"]) == 40  # the timeline keeps all of them


def test_it_shows_the_rule_expression_from_the_generator_url():
    fired = alert("aa01")
    Alert.objects.filter(pk=fired.pk).update(
        generator_url="http://prometheus.example:9090/graph?g0.expr="
        "sum%28rate%28http_requests_total%7Bcode%3D~%225..%22%7D%5B5m%5D%29%29+%3E+1&g0.tab=1"
    )
    elsewhere = alert("aa02", starts_at=T0 + timedelta(minutes=1))
    Alert.objects.filter(pk=elsewhere.pk).update(generator_url="https://grafana.example/alerting")

    result = run_alert_context(investigated(fired, elsewhere))

    expression = 'sum(rate(http_requests_total{code=~"5.."}[5m])) > 1'
    assert f"(rule: {expression})" in result.text
    assert [a["expression"] for a in result.data["alerts"]] == [expression, ""]
    assert result.text.count("(rule: ") == 1


def test_the_store_s_alerts_in_scope_are_those_of_the_job_s_namespace():
    # Alerts on OpenTelemetry's job, service.namespace/service.name, and no namespace.
    investigation = investigated(make_alert("aa01", job="shop/web", namespace=None))
    assert investigation.scope["service_namespace"] == "shop"
    held = [
        {
            "labels": {"alertname": "HighLatency", "job": job},
            "annotations": {},
            "state": "firing",
            "activeAt": "2026-11-25T04:00:00Z",
            "value": "1e+00",
        }
        for job in ("shop/db", "other/batch", "shopfront/web")
    ]

    config = BackendConfig(url="http://prometheus.test", name="Prometheus")
    prometheus = PrometheusClient(config, backoff_seconds=0.001)
    context = build_context(investigation, prometheus=prometheus)

    async def main():
        async with prometheus:
            return await call(TOOLS["alert_context"], context, {})

    with respx.mock:
        respx.get("http://prometheus.test/api/v1/alerts").respond(
            json={"status": "success", "data": {"alerts": held}}
        )
        result = asyncio.run(main())

    assert "1 alert(s) the metric store's rules hold now, in scope:" in result.text
    assert "job=shop/db" in result.text
    assert "other/batch" not in result.text and "shopfront/web" not in result.text
