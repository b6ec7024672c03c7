"""An incident in which nothing the scan reads changed clearly.

The Prometheus of test_scope_labels, read twenty minutes before its `db` steps up: `db`
and `web` only wobble by their resolution. An alert on `web` then leaves the alert as the
evidence: `web` leads and the report says why. A question about the same namespace has no
alert to lean on, and says that nothing changed clearly.
"""

from datetime import timedelta

import pytest

from investigations import runner
from investigations.models import Investigation
from tests.investigations.signals.test_scope_labels import ONSET, investigate, openmetrics
from tests.realprometheus import prometheus_fixture

pytestmark = pytest.mark.django_db

prometheus_url = prometheus_fixture(openmetrics)
QUIET = ONSET - timedelta(minutes=20)


def test_an_alert_where_nothing_changed_clearly_leads_to_its_own_service(settings, prometheus_url):
    investigation = investigate(settings, prometheus_url, starts_at=QUIET, namespace="shop")

    top = investigation.suspects[0]
    assert (top["service"], top["alert_score"]) == ("web", 1.0)
    assert top["evidence"][0] == {"kind": "alert", "services": 1}
    assert all(s["alert_score"] == 0 for s in investigation.suspects[1:])
    report = investigation.report
    assert report["root_cause"]["service"] == "web"
    assert report["summary"].startswith(
        "Most likely root cause: web, the alerting service itself. No service in scope "
        "changed clearly"
    )
    assert report["confidence"] < 0.5
    ranked = investigation.steps.get(tool="rank_suspects")
    assert ranked.output["suspects"][0]["service"] == "web"


def test_a_question_where_nothing_changed_clearly_names_no_alerting_service(
    settings, prometheus_url
):
    settings.ROOTLINE_PROMETHEUS_URL, settings.ROOTLINE_LOKI_URL = prometheus_url, ""
    matchers = {"namespace": "shop", "service": "web"}
    asked = Investigation.open_question(
        "What changed?", matchers, QUIET, QUIET + timedelta(minutes=5)
    )

    runner.run(asked.pk)

    asked.refresh_from_db()
    assert asked.status == "completed", asked.error
    assert asked.steps.get(tool="rank_suspects").input["alerting_services"] == []
    assert all(s["alert_score"] == 0 for s in asked.suspects)
    assert all(e["kind"] != "alert" for s in asked.suspects for e in s["evidence"])
    assert "alerting service" not in asked.report["summary"]
    assert "the alert" not in asked.report_text
