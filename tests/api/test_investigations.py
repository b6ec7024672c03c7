"""GET /api/v1/investigations/{id} (investigations/api.py)."""

from datetime import timedelta

import pytest

from investigations.models import Investigation
from tests.factories import T0, make_alert, make_investigation

pytestmark = pytest.mark.django_db

SUSPECTS = [
    {
        "service": "payment-db",
        "score": 1.62,
        "metric_score": 1.0,
        "log_score": 0.62,
        "onset": 1795579020.0,
        "evidence": [
            {
                "kind": "metric",
                "metric": "pg_stat_activity_count",
                "labels": {"namespace": "production"},
                "score": 14.3,
                "direction": "up",
                "onset": 1795579020.0,
                "baseline": 12.0,
                "incident": 100.0,
                "counter": False,
            },
            {
                "kind": "logs",
                "incident_lines": 412,
                "baseline_lines": 3,
                "new_template_lines": 398,
                "templates": [{"template": "FATAL: too many connections for role <*>"}],
                "score": 6.7,
            },
        ],
    },
    {"service": "payment-api", "score": 0.41, "onset": None, "evidence": []},
]
REPORT = {
    "summary": "payment-db ran out of connections; payment-api's requests failed.",
    "root_cause": {"service": "payment-db", "confidence": "high"},
    "evidence": [{"tool_call": 7, "finding": "FATAL: too many connections"}],
}


@pytest.fixture
def completed():
    """A finished investigation of two alerts of one group, as the runner leaves it."""
    later = make_alert("b2c3d4e5f6071829", starts_at=T0 + timedelta(minutes=2), service="api")
    first = make_alert("a1b2c3d4e5f60718", starts_at=T0, service="db")
    return make_investigation(
        later,
        first,
        group_key='{}:{alertname="HighErrorRate"}',
        status=Investigation.Status.COMPLETED,
        created_at=T0 + timedelta(seconds=5),
        started_at=T0 + timedelta(seconds=6),
        finished_at=T0 + timedelta(seconds=48),
        as_of=T0 + timedelta(seconds=5),
        scope={"matchers": {"namespace": "production"}, "services": ["api", "db"]},
        baseline_start=T0 - timedelta(minutes=75),
        incident_start=T0 - timedelta(minutes=15),
        incident_end=T0 + timedelta(seconds=5),
        suspects=SUSPECTS,
        report=REPORT,
        report_text="payment-db ran out of connections.",
    )


def test_a_finished_investigation_with_its_suspects_and_report(api_get, completed):
    response = api_get(f"/api/v1/investigations/{completed.pk}")

    assert response.status_code == 200, response.content
    assert response.json() == {
        "id": completed.pk,
        "kind": "alert_group",
        "status": "completed",
        "created_at": "2026-11-25T04:00:05Z",
        "started_at": "2026-11-25T04:00:06Z",
        "finished_at": "2026-11-25T04:00:48Z",
        "as_of": "2026-11-25T04:00:05Z",
        "error": "",
        "group_key": '{}:{alertname="HighErrorRate"}',
        "question": "",
        "rerun_of": None,
        "alerts": ["a1b2c3d4e5f60718", "b2c3d4e5f6071829"],
        "scope": {"matchers": {"namespace": "production"}, "services": ["api", "db"]},
        "baseline_start": "2026-11-25T02:45:00Z",
        "incident_start": "2026-11-25T03:45:00Z",
        "incident_end": "2026-11-25T04:00:05Z",
        "model": "",
        "input_tokens": 0,
        "output_tokens": 0,
        "cost_usd": 0.0,
        # Suspects stored before the scan named callers read with none.
        "suspects": [{**suspect, "callers": []} for suspect in SUSPECTS],
        "report": REPORT,
        "report_text": "payment-db ran out of connections.",
        "followups": [],
        "feedback": "",
        "feedback_text": "",
        "feedback_at": None,
        "notifications": [],
    }


def test_a_queued_investigation_has_no_times_suspects_or_report_yet(api_get):
    queued = make_investigation(make_alert())

    body = api_get(f"/api/v1/investigations/{queued.pk}").json()

    assert body["status"] == "queued"
    assert body["started_at"] is body["finished_at"] is body["incident_start"] is None
    assert (body["scope"], body["suspects"], body["report"], body["report_text"]) == (
        {},
        [],
        None,
        "",
    )
    assert body["alerts"] == ["a1b2c3d4e5f60718"]


def test_a_failed_investigation_says_why(api_get):
    failed = make_investigation(status=Investigation.Status.FAILED, error="Loki answered 502")

    body = api_get(f"/api/v1/investigations/{failed.pk}").json()

    assert (body["status"], body["error"], body["alerts"]) == ("failed", "Loki answered 502", [])


@pytest.mark.parametrize("missing", [123, 2**63])
def test_an_unknown_investigation_is_not_found(api_get, missing):
    response = api_get(f"/api/v1/investigations/{missing}")

    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "message": f"No investigation {missing}.",
        "fields": [],
    }


def test_an_id_that_is_not_a_number_is_refused(api_get):
    response = api_get("/api/v1/investigations/latest")

    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_request"
    assert "investigation_id" in body["message"]
    assert body["fields"] and body["fields"][0].startswith("path.investigation_id:")
