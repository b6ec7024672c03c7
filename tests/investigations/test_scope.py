"""investigations/scope.py: where and when an investigation looks."""

from datetime import timedelta

import pytest

from investigations.scope import derive_scope, quote
from tests.factories import T0, make_alert

pytestmark = pytest.mark.django_db

NOW = T0 + timedelta(minutes=10)


def test_the_matchers_are_the_scope_labels_every_alert_shares():
    alerts = [
        make_alert("aa01", service="checkout", cluster="eu-1", pod="checkout-1"),
        make_alert("aa02", service="payment-api", cluster="eu-1", pod="payment-1"),
        make_alert("aa03", app="frontend", cluster="eu-1"),
    ]

    scope = derive_scope(alerts, NOW)

    assert scope.matchers == {"cluster": "eu-1", "namespace": "production"}
    assert scope.selector == '{cluster="eu-1", namespace="production"}'
    assert scope.service_label == "service"
    assert scope.services == ["checkout", "payment-api"]
    assert scope.alertnames == ["HighErrorRate"]


def test_loki_s_selector_is_in_its_own_names_for_the_labels(settings):
    alerts = [make_alert("aa01", service="checkout", cluster="eu-1")]
    assert "log_selector" not in derive_scope(alerts, NOW).as_dict()

    settings.ROOTLINE_LOKI_LABELS = {"namespace": "k8s_namespace_name", "service": "service_name"}
    scope = derive_scope(alerts, NOW)

    assert scope.query_selector == '{cluster="eu-1", namespace="production"}'
    assert scope.log_selector == '{cluster="eu-1", k8s_namespace_name="production"}'
    assert scope.as_dict()["log_selector"] == scope.log_selector
    scope.matchers = {}  # nothing shared bounds it: every stream of a service
    assert (scope.query_selector, scope.log_selector) == ('{service=~".+"}', '{service_name=~".+"}')


def test_a_label_that_differs_between_alerts_does_not_bound_the_search():
    alerts = [make_alert("aa01", namespace="shop"), make_alert("aa02", namespace="payments")]

    assert derive_scope(alerts, NOW).matchers == {}


def test_the_service_label_is_the_first_configured_one_present(settings):
    settings.ROOTLINE_SERVICE_LABELS = ["app", "job"]

    scope = derive_scope([make_alert(job="node-exporter", service="x")], NOW)

    assert (scope.service_label, scope.services) == ("job", ["node-exporter"])


def test_alerts_in_opentelemetry_s_names_are_scoped_by_them():
    # Raised on series Prometheus' OTLP receiver stored: its names for namespace and
    # service, and `job` set from service.name.
    alerts = [
        make_alert(
            "aa01", namespace=None, k8s_namespace_name="shop", service_name="cart", job="cart"
        ),
        make_alert(
            "aa02", namespace=None, k8s_namespace_name="shop", service_name="pay", job="pay"
        ),
    ]

    scope = derive_scope(alerts, NOW)

    assert scope.matchers == {"k8s_namespace_name": "shop"}
    assert (scope.service_label, scope.services) == ("service_name", ["cart", "pay"])


def test_a_configured_label_wins_over_its_opentelemetry_name():
    alert = make_alert(
        service="cart", service_name="cart-svc", namespace="shop", k8s_namespace_name="x"
    )

    scope = derive_scope([alert], NOW)

    assert scope.matchers == {"namespace": "shop"}
    assert (scope.service_label, scope.services) == ("service", ["cart"])


def test_windows_open_before_the_first_alert_and_close_now(settings):
    alerts = [make_alert("aa01", starts_at=T0 + timedelta(minutes=2)), make_alert("aa02")]

    scope = derive_scope(alerts, NOW)

    assert scope.incident_start == T0 - settings.ROOTLINE_INCIDENT_LOOKBACK
    assert scope.incident_end == NOW
    assert scope.baseline_start == scope.incident_start - settings.ROOTLINE_BASELINE_WINDOW


def test_when_every_alert_has_resolved_the_incident_ends_with_the_last_one():
    first, second = make_alert("aa01"), make_alert("aa02")
    first.ends_at, second.ends_at = T0 + timedelta(minutes=3), T0 + timedelta(minutes=4)

    assert derive_scope([first, second], NOW).incident_end == T0 + timedelta(minutes=4)


def test_label_values_are_quoted_for_promql_and_logql():
    assert quote('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'


JOBS = ["shop/web", "shop/cart"]


def test_a_namespace_named_in_every_alert_s_job_bounds_the_search():
    # OpenTelemetry's job, service.namespace/service.name, and nothing else to bound by.
    alerts = [make_alert(f"aa0{n}", job=job, namespace=None) for n, job in enumerate(JOBS)]

    scope = derive_scope(alerts, NOW)

    assert (scope.matchers, scope.service_namespace) == ({}, "shop")
    assert scope.query_selector == scope.log_selector == '{job=~"shop/.+"}'
    assert scope.as_dict()["service_namespace"] == "shop"
    # Where Loki names services by service.name, that holds no namespace: not bounded so.
    scope.log_labels = {"job": "service_name"}
    assert scope.log_selector == '{service_name=~".+"}'


@pytest.mark.parametrize(
    "jobs",
    [
        ["shop/web", "payments/api"],  # two namespaces
        ["shop/web", "web"],  # one without
        ["web"],
        ["/web"],
        ["shop/"],
    ],
)
def test_jobs_that_share_no_namespace_do_not_bound_the_search(jobs):
    alerts = [make_alert(f"aa0{n}", job=job, namespace=None) for n, job in enumerate(jobs)]

    scope = derive_scope(alerts, NOW)

    assert scope.service_namespace is None
    assert scope.query_selector == '{job=~".+"}'
    assert "service_namespace" not in scope.as_dict()


def test_a_label_that_bounds_the_search_leaves_the_job_s_namespace_out():
    scope = derive_scope([make_alert(job="shop/web")], NOW)

    assert (scope.matchers, scope.service_namespace) == ({"namespace": "production"}, None)


def test_the_namespace_is_a_literal_in_the_regular_expression():
    alert = make_alert(job="a.b+c/web", namespace=None)

    assert derive_scope([alert], NOW).selector == '{job=~"a\\\\.b\\\\+c/.+"}'
