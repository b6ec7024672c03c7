"""When an alert's condition began: a real Prometheus evaluates rules with a `for`, and the
investigation reads when each alert became pending from ALERTS_FOR_STATE."""

import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from investigations import runner
from investigations.scope import derive_scope
from tests.factories import make_alert, make_investigation
from tests.processes import wait_until
from tests.realprometheus import serving_prometheus

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

FOR_SECONDS = 3
RULES = [
    {
        "name": "shop",
        "interval": "1s",
        "rules": [
            {
                "alert": "CheckoutErrors",
                "expr": "vector(1) > 0",
                "for": f"{FOR_SECONDS}s",
                "labels": {"service": service, "severity": "page"},
            }
            for service in ("checkout", "cart")
        ],
    }
]


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prometheus")
    (tmp / "rules.yml").write_text(json.dumps({"groups": RULES}))  # JSON is YAML
    config = {"global": {"evaluation_interval": "1s"}, "rule_files": [str(tmp / "rules.yml")]}
    with serving_prometheus(json.dumps(config), tmp) as url:
        yield url


def firing(url):
    """{service: activeAt, unix seconds} of the rule's alerts, once both fire."""
    alerts = httpx.get(f"{url}/api/v1/alerts").json()["data"]["alerts"]
    if len(alerts) < 2 or any(a["state"] != "firing" for a in alerts):
        return None
    return {
        a["labels"]["service"]: datetime.fromisoformat(a["activeAt"].replace("Z", "+00:00"))
        for a in alerts
    }


def test_the_scan_starts_when_the_alert_became_pending_not_when_it_fired(prometheus_url, settings):
    settings.ROOTLINE_PROMETHEUS_URL = prometheus_url
    active = wait_until(lambda: firing(prometheus_url), 30, lambda: "the rule's alerts fire")
    time.sleep(2)  # a rule evaluation writes ALERTS_FOR_STATE: let one more pass
    fired = active["checkout"] + timedelta(seconds=FOR_SECONDS + 1)
    # Alertmanager adds the server's external labels (namespace here), which the stored
    # series do not carry; cart's alert has the same name and other labels.
    alert = make_alert(
        alertname="CheckoutErrors", service="checkout", severity="page", starts_at=fired
    )
    investigation = make_investigation(alert)

    scope = derive_scope([alert], fired + timedelta(minutes=1))

    since = runner.alert_start(investigation, scope)

    # Prometheus keeps activeAt in whole seconds.
    assert timedelta(0) <= active["checkout"] - since < timedelta(seconds=1)
    step = investigation.steps.get(tool="alert_onset")
    assert (step.agent, step.status) == ("signals", "ok")
    assert step.input["query"] == 'ALERTS_FOR_STATE{alertname="CheckoutErrors"}'
    assert step.output["pending_since"] == since.timestamp()
    assert "CheckoutErrors was pending from" in step.output_text
    # The scan's windows follow: its incident opens its lookback before the condition.
    runner.signals_step(investigation, scope)
    scan = investigation.steps.get(tool="scan_metrics")
    opens = datetime.fromisoformat(scan.input["incident"][0])
    assert opens == since - settings.ROOTLINE_SIGNALS_LOOKBACK


def test_an_alert_without_a_recorded_pending_state_starts_when_it_fired(prometheus_url, settings):
    settings.ROOTLINE_PROMETHEUS_URL = prometheus_url
    fired = datetime.now(UTC).replace(microsecond=0)
    alert = make_alert(alertname="PaymentsDown", service="payments", starts_at=fired)
    investigation = make_investigation(alert)

    assert runner.alert_start(investigation, derive_scope([alert], fired)) == fired
    step = investigation.steps.get(tool="alert_onset")
    assert step.status == "ok" and step.output["pending_since"] is None
    assert "no pending state recorded" in step.output_text


def test_a_store_that_is_down_leaves_the_start_as_it_fired(settings):
    settings.ROOTLINE_PROMETHEUS_URL = "http://127.0.0.1:9"  # nothing listens there
    alert = make_alert(starts_at=datetime(2026, 11, 25, 4, 0, tzinfo=UTC))
    investigation = make_investigation(alert)

    scope = derive_scope([alert], alert.starts_at)
    assert runner.alert_start(investigation, scope) == alert.starts_at
    step = investigation.steps.get(tool="alert_onset")
    assert step.status == "error" and "the scan starts from startsAt" in step.error
