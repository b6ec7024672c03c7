"""Everything the pages do, through the JSON API (investigations/api.py)."""

from datetime import timedelta
from datetime import timezone as fixed_offset

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from investigations.models import Investigation, ToolCall
from tests.factories import REPORT, T0, make_alert, make_investigation

pytestmark = pytest.mark.django_db


def minutes(n):
    return T0 + timedelta(minutes=n)


def queued_tasks():
    return OrmQ.objects.count()


# --- Lists ------------------------------------------------------------------------------


def test_investigations_newest_first_with_their_root_cause_page_by_page(api_get):
    older = make_investigation(make_alert("0001"), created_at=minutes(1))
    done = make_investigation(
        make_alert("0002", alertname="DiskFull"),
        created_at=minutes(2),
        status="completed",
        report=REPORT,
    )
    question = make_investigation(kind="question", question="Why slow?", created_at=minutes(3))

    first = api_get("/api/v1/investigations", limit=2).json()
    second = api_get("/api/v1/investigations", limit=2, cursor=first["next_cursor"]).json()

    assert [i["id"] for i in first["items"]] == [question.pk, done.pk]
    assert [i["id"] for i in second["items"]] == [older.pk]
    assert second["next_cursor"] is None
    summary = first["items"][1]
    assert (summary["root_cause"], summary["confidence"], summary["alertnames"]) == (
        "orders-db",
        0.8,
        ["DiskFull"],
    )
    assert first["items"][0]["question"] == "Why slow?"
    assert first["items"][0]["root_cause"] is None


def test_the_investigation_filters(api_get):
    alert = make_alert("00aa", alertname="DiskFull")
    by_alert = make_investigation(alert, created_at=minutes(1), status="failed", error="Loki 502")
    judged = make_investigation(created_at=minutes(2), feedback="wrong", report_text="cart OOM")
    make_investigation(created_at=minutes(3), kind="question", question="why is cart slow")

    def found(**params):
        response = api_get("/api/v1/investigations", **params)
        assert response.status_code == 200, response.content
        return [i["id"] for i in response.json()["items"]]

    assert found(fingerprint="00aa") == [by_alert.pk]
    assert found(alertname="DiskFull") == [by_alert.pk]
    assert found(status="failed") == [by_alert.pk]
    assert found(feedback="wrong") == [judged.pk]
    assert found(q="OOM") == [judged.pk]
    assert len(found(q="cart")) == 2
    assert len(found(kind="question")) == 1
    assert found(created_before=minutes(2).isoformat()) == [by_alert.pk]
    # An offset no place uses, which PostgreSQL cannot store: the same moment in UTC.
    far_east = fixed_offset(timedelta(hours=20, minutes=30))
    assert found(created_before=minutes(2).astimezone(far_east).isoformat()) == [by_alert.pk]
    assert found(created_after=minutes(2).isoformat(), kind="alert_group") == [judged.pk]
    early = api_get("/api/v1/investigations", created_after="0001-01-01T00:00:00+03:00")
    assert early.status_code == 422
    assert early.json()["fields"][0].startswith("query.created_after: ")


def test_an_investigation_of_many_alerts_is_listed_once(api_get):
    make_investigation(*[make_alert(f"{n:04x}", alertname="DiskFull") for n in range(3)])

    body = api_get("/api/v1/investigations", alertname="DiskFull").json()

    assert len(body["items"]) == 1
    assert len(body["items"][0]["alerts"]) == 3


def test_one_alert_with_its_history_and_deliveries(api_get):
    earlier = make_alert("00bb", starts_at=minutes(0), status="resolved")
    alert = make_alert("00bb", starts_at=minutes(30), severity="critical")
    investigation = make_investigation(alert)

    body = api_get(f"/api/v1/alerts/{alert.pk}").json()

    assert (body["id"], body["severity"], body["investigation"]) == (
        alert.pk,
        "critical",
        investigation.pk,
    )
    assert [e["id"] for e in body["episodes"]] == [alert.pk, earlier.pk]
    assert body["first_delivery"] is None
    assert api_get("/api/v1/alerts/999999").status_code == 404


def test_the_overview_numbers(api_get):
    make_alert("0001", severity="critical")
    make_alert("0002", severity="critical")
    make_alert("0003")
    running = make_investigation(status="running")
    make_investigation(status="completed", feedback="correct", created_at=timezone.now())

    body = api_get("/api/v1/overview").json()

    assert body["firing"] == {"critical": 2, "none": 1}
    assert body["active"] == [running.pk]
    assert (body["correct_share"], body["judged"], body["days"]) == (1.0, 1, 7)


# --- The timeline and the report --------------------------------------------------------


def step(investigation, tool, ended=True, parent=None):
    row = ToolCall.start(investigation, "lead", tool, {"query": "up"}, parent=parent)
    if ended:
        row.end(output={"series": 1}, output_text="1 series")
    return row


def test_steps_after_a_cursor_stop_at_the_first_still_running(api_get):
    investigation = make_investigation(status="running")
    first = step(investigation, "delegate")
    step(investigation, "query_metrics", parent=first)
    running = step(investigation, "query_logs", ended=False)
    step(investigation, "query_metrics")
    path = f"/api/v1/investigations/{investigation.pk}/steps"

    body = api_get(path).json()

    assert [s["sequence"] for s in body["items"]] == [1, 2]
    assert body["items"][1]["parent"] == 1
    assert body["items"][0]["query"] == "up"
    assert [s["sequence"] for s in body["running"]] == [3, 4]
    assert (body["next_after"], body["ended"]) == (2, False)

    running.end(output={}, output_text="")
    Investigation.objects.filter(pk=investigation.pk).update(status="completed")
    body = api_get(path, after=2).json()

    assert [s["sequence"] for s in body["items"]] == [3, 4]
    assert (body["running"], body["next_after"], body["ended"]) == ([], 4, True)
    assert api_get(path, after=4).json()["items"] == []


def test_the_report_as_data_markdown_and_safe_html(api_get):
    investigation = make_investigation(
        status="completed",
        report={**REPORT, "source": "agents"},
        report_text="**Root cause:** orders-db, see [step 6]. <script>alert(1)</script>",
        suspects=[{"service": "orders-db", "score": 2.0, "evidence": []}],
    )

    body = api_get(f"/api/v1/investigations/{investigation.pk}/report").json()

    assert body["source"] == "agents"
    assert body["report"]["root_cause"]["service"] == "orders-db"
    assert '<a href="#step-6"' in body["html"]
    assert "<strong>Root cause:</strong>" in body["html"]
    assert "<script" not in body["html"]
    assert body["suspects"][0]["service"] == "orders-db"


def test_no_report_yet_is_not_found_saying_why(api_get):
    investigation = make_investigation(status="running")

    response = api_get(f"/api/v1/investigations/{investigation.pk}/report")

    assert response.status_code == 404
    assert response.json()["error"] == "no_report"
    assert "running" in response.json()["message"]


# --- Actions ----------------------------------------------------------------------------


def test_an_ad_hoc_investigation_is_created_and_queued(api_send, sre):
    end = timezone.now().replace(microsecond=0) - timedelta(minutes=5)
    body = {
        "question": "Why did checkout get slow?",
        "matchers": {"namespace": "shop"},
        "start": (end - timedelta(minutes=30)).isoformat(),
        "end": end.isoformat(),
    }

    response = api_send("POST", "/api/v1/investigations", body)

    assert response.status_code == 201, response.content
    created = response.json()
    investigation = Investigation.objects.get(pk=created["id"])
    assert (created["kind"], created["status"], created["question"]) == (
        "question",
        "queued",
        "Why did checkout get slow?",
    )
    assert investigation.scope == {"matchers": {"namespace": "shop"}}
    assert (investigation.incident_start, investigation.incident_end) == (
        end - timedelta(minutes=30),
        end,
    )
    assert investigation.requested_by == sre
    assert queued_tasks() == 1


def test_an_ad_hoc_investigation_takes_matchers_as_text_and_the_last_hour_by_default(api_send):
    response = api_send(
        "POST", "/api/v1/investigations", {"question": "Errors?", "matchers": 'service="cart"'}
    )

    assert response.status_code == 201, response.content
    investigation = Investigation.objects.get(pk=response.json()["id"])
    assert investigation.scope["matchers"] == {"service": "cart"}
    assert investigation.incident_end - investigation.incident_start == timedelta(hours=1)


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        ({"matchers": 'namespace=~"s.*"'}, "body.body.matchers", "only equality"),
        ({"matchers": {"bad-name": "x"}}, "body.body.matchers", "not a label name"),
        ({"matchers": ["namespace"]}, "body.body.matchers", "object of label names"),
        ({"question": "?"}, "body.body.question", "at least 3"),
        ({"start": "2026-11-25T10:00:00"}, "body.body.start", "timezone"),
        ({"end": "2999-01-01T00:00:00Z"}, "body.start", "in the future"),
        ({"end": "0001-01-01T00:06:00+03:00"}, "body.body.end", "1970-01-01T00:00:00Z or later"),
        (
            {"start": "2026-11-01T00:00:00Z", "end": "2026-11-25T00:00:00Z"},
            "body.start",
            "7 days",
        ),
    ],
)
def test_an_ad_hoc_investigation_that_cannot_be_run_is_refused(api_send, changes, field, problem):
    body = {"question": "Why slow?", **changes}

    response = api_send("POST", "/api/v1/investigations", body)

    assert response.status_code == 422, response.content
    answer = response.json()
    assert answer["fields"][0].startswith(field), answer
    assert problem in answer["message"], answer
    assert not Investigation.objects.exists()


def test_rerun_queues_a_new_investigation_of_the_same_alerts(api_send):
    alert = make_alert("00cc")
    done = make_investigation(alert, status="completed")

    response = api_send("POST", f"/api/v1/investigations/{done.pk}/rerun")

    assert response.status_code == 202, response.content
    again = response.json()
    assert (again["kind"], again["status"], again["rerun_of"], again["alerts"]) == (
        "rerun",
        "queued",
        done.pk,
        ["00cc"],
    )
    assert queued_tasks() == 1


def test_cancel_stops_a_running_investigation_once(api_send):
    running = make_investigation(status="running")
    path = f"/api/v1/investigations/{running.pk}/cancel"

    first = api_send("POST", path)
    second = api_send("POST", path)

    assert first.status_code == 200, first.content
    assert (first.json()["status"], first.json()["error"]) == ("cancelled", "cancelled by sre")
    assert second.status_code == 409
    assert second.json()["error"] == "conflict"
    assert "cancelled" in second.json()["message"]


def test_feedback_is_recorded_and_replaced(api_send):
    investigation = make_investigation(status="completed")
    path = f"/api/v1/investigations/{investigation.pk}/feedback"

    api_send("PUT", path, {"feedback": "partly"})
    response = api_send("PUT", path, {"feedback": "wrong", "text": "  the cache, not the db "})

    assert response.status_code == 200, response.content
    investigation.refresh_from_db()
    assert (investigation.feedback, investigation.feedback_text) == (
        "wrong",
        "the cache, not the db",
    )
    assert investigation.feedback_at is not None
    refused = api_send("PUT", path, {"feedback": "maybe"})
    assert refused.status_code == 422
    assert refused.json()["fields"][0].startswith("body.body.feedback")


def test_a_follow_up_question_needs_a_model(api_send, settings):
    settings.ANTHROPIC_API_KEY = ""
    investigation = make_investigation(status="completed")

    response = api_send(
        "POST", f"/api/v1/investigations/{investigation.pk}/questions", {"question": "And then?"}
    )

    assert response.status_code == 409
    assert "ANTHROPIC_API_KEY" in response.json()["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/investigations/999999/rerun"),
        ("POST", "/api/v1/investigations/999999/cancel"),
        ("PUT", "/api/v1/investigations/999999/feedback"),
    ],
)
def test_actions_on_an_unknown_investigation_are_not_found(api_send, method, path):
    response = api_send(method, path, {"feedback": "correct"})

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


# --- One error shape --------------------------------------------------------------------


def test_an_unknown_api_path_answers_in_the_error_shape(api_get):
    response = api_get("/api/v1/nothing-here")

    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "message": "There is nothing at /api/v1/nothing-here; "
        "the API is described at /api/v1/docs.",
        "fields": [],
    }


def test_a_method_a_path_does_not_take_answers_in_the_error_shape(api_send):
    response = api_send("DELETE", "/api/v1/investigations")

    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert "GET" in response["Allow"]


def test_a_body_over_the_limit_is_refused_with_413(api_send, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048

    response = api_send("POST", "/api/v1/investigations", {"question": "x" * 4000})

    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert not Investigation.objects.exists()


def test_a_browser_session_must_send_the_csrf_token_to_change_anything(sre):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(sre)
    investigation = make_investigation(status="running")

    response = browser.post(f"/api/v1/investigations/{investigation.pk}/cancel")

    assert response.status_code in (401, 403)
    assert set(response.json()) == {"error", "message", "fields"}
    investigation.refresh_from_db()
    assert investigation.status == "running"
    assert browser.get(f"/api/v1/investigations/{investigation.pk}").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/alerts?q=a%00b", None),
        ("GET", "/api/v1/investigations?alertname=%00", None),
        ("POST", "/api/v1/investigations", {"question": "why\u0000?"}),
        ("POST", "/api/v1/investigations", {"question": "why?", "matchers": {"ns": "a\u0000"}}),
        ("PUT", "/api/v1/investigations/{pk}/feedback", {"feedback": "wrong", "text": "\u0000"}),
    ],
)
def test_a_nul_character_is_refused_naming_the_field(api_send, api_get, method, path, body):
    """PostgreSQL's text cannot hold a NUL: refused up front, on SQLite too."""
    path = path.format(pk=make_investigation(status="completed").pk)

    response = api_get(path) if method == "GET" else api_send(method, path, body)

    assert response.status_code == 422, response.content
    assert "NUL" in response.json()["message"]


def test_the_alerts_page_ignores_a_nul_in_its_filters(client, sre):
    client.force_login(sre)
    make_alert("00dd", service="cart")

    response = client.get("/alerts/", {"q": "ca\x00rt"})

    assert response.status_code == 200
    assert "(1 alerts)" in response.content.decode()
