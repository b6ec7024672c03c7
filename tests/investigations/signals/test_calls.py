"""Who calls whom, from series whose labels name both ends of a call.

A real Prometheus holds namespace `shop`: `email` stops working at ONSET (its `busy` falls
to nothing) and `checkout`, which calls it, works harder; `web` (the alerting service) runs
on. A series of checkout's calls to email names both ends. The report, led by email, says
that email did less work and who calls it, and how the alert's service reaches it.
"""

import pytest

from tests.investigations.signals.test_scope_labels import busy_series, investigate
from tests.realprometheus import prometheus_fixture

pytestmark = pytest.mark.django_db

CALLS = 'source_service="checkout",destination_service="email"'


def openmetrics():
    return busy_series(
        [
            ('namespace="shop",service="email"', 70, 0),
            ('namespace="shop",service="checkout"', 40, 55),
            ('namespace="shop",service="web"', 50, 50),
            (f'namespace="shop",service="email",{CALLS}', 5, 5),
            (
                'namespace="shop",service="checkout",source_service="web",'
                'destination_service="checkout"',
                5,
                5,
            ),
        ]
    )


prometheus_url = prometheus_fixture(openmetrics)


def test_a_service_that_did_less_work_is_reported_with_its_callers(settings, prometheus_url):
    investigation = investigate(settings, prometheus_url, namespace="shop")

    suspects = {s["service"]: s for s in investigation.suspects}
    assert investigation.suspects[0]["service"] == "email"
    assert (suspects["email"]["callers"], suspects["checkout"]["callers"]) == (
        ["checkout"],
        ["web"],
    )
    text = investigation.report_text
    assert "email did less work (every change found in it went down)" in text
    assert "It is called by checkout (suspect 2)" in text
    assert "web calls email through checkout (web -> checkout -> email)" in text
