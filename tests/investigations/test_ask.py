"""Ask: an investigation without an alert, from a question, label matchers and a range."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ

from investigations import runner
from investigations.agents import team
from investigations.models import Investigation
from investigations.scope import ScopeError, parse_matchers
from investigations.tools import build_context

pytestmark = pytest.mark.django_db

ASK = {"question": "Why is checkout slow?", "matchers": 'namespace="shop", service="checkout"'}


@pytest.mark.parametrize(
    ("text", "matchers"),
    [
        ('namespace="shop", service="checkout"', {"namespace": "shop", "service": "checkout"}),
        ('{namespace="shop"}', {"namespace": "shop"}),
        ("namespace=shop , env = prod", {"namespace": "shop", "env": "prod"}),
        (r'msg="say \"hi\", then\\ go"', {"msg": 'say "hi", then\\ go'}),
        ('city="Zürich"', {"city": "Zürich"}),
        ("", {}),
    ],
)
def test_matchers_are_read_like_a_promql_selector(text, matchers):
    assert parse_matchers(text) == matchers


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('namespace=~"sh.*"', "only equality"),
        ('1ns="x"', "cannot read"),
        ('ns!="x"', "only equality"),
        ('namespace=""', "non-empty value"),
        ('a="1" b="2"', "expected a comma"),
        (",".join(f"l{n}=x" for n in range(11)), "at most 10"),
    ],
)
def test_unreadable_matchers_say_what_is_wrong(text, problem):
    with pytest.raises(ScopeError, match=problem):
        parse_matchers(text)


def test_the_ask_page_needs_a_login(client):
    response = client.get(reverse("ask"))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_asking_queues_an_investigation_of_the_matchers_over_the_last_hour(admin_client):
    before = timezone.now()
    response = admin_client.post(reverse("ask"), {**ASK, "since": "1h"})

    investigation = Investigation.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("investigation", args=[investigation.pk])
    assert investigation.kind == Investigation.Kind.QUESTION
    assert investigation.question == ASK["question"]
    assert investigation.scope == {"matchers": {"namespace": "shop", "service": "checkout"}}
    assert investigation.incident_end - investigation.incident_start == timedelta(hours=1)
    assert (
        investigation.incident_end >= before and investigation.as_of == investigation.incident_end
    )
    assert investigation.requested_by.username == "admin"
    [task] = OrmQ.objects.all()
    assert task.task["args"] == (investigation.pk,)


def test_asking_over_an_explicit_range(admin_client):
    form = {**ASK, "since": "range", "start": "2026-11-20T09:00", "end": "2026-11-20T10:30"}
    assert admin_client.post(reverse("ask"), form).status_code == 302
    investigation = Investigation.objects.get()
    assert investigation.incident_start == datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    assert investigation.incident_end == datetime(2026, 11, 20, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"matchers": "namespace=~x"}, "only equality"),
        ({"question": ""}, "This field is required"),
        ({"since": "range"}, "Give a start time"),
        ({"since": "range", "start": "2026-11-20T10:00", "end": "2026-11-20T09:00"}, "before end"),
        ({"since": "range", "start": "2026-11-01T10:00", "end": "2026-11-20T09:00"}, "7 days"),
        ({"since": "range", "start": "2099-01-01T10:00", "end": "2099-01-01T11:00"}, "future"),
        ({"since": "range", "start": "0001-01-01T00:30", "end": "0001-01-01T00:40"}, "1970"),
        ({"since": "forever"}, "Select a valid choice"),
    ],
)
def test_a_question_that_cannot_be_investigated_is_refused_with_the_reason(
    admin_client, form, message
):
    response = admin_client.post(reverse("ask"), {**ASK, "since": "1h", **form})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Investigation.objects.exists()


def test_a_question_is_scoped_by_its_matchers_and_window(settings):
    settings.ROOTLINE_PROMETHEUS_URL = settings.ROOTLINE_LOKI_URL = ""
    start = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    investigation = Investigation.open_question(
        ASK["question"],
        {"namespace": "shop", "service": "checkout"},
        start,
        start + timedelta(hours=1),
    )
    runner.run(investigation.pk)
    investigation.refresh_from_db()

    assert investigation.status == "completed", investigation.error
    first = investigation.steps.first()
    assert (first.tool, first.status) == ("question_scope", "ok")
    assert investigation.scope["selector"] == '{namespace="shop", service="checkout"}'
    assert investigation.scope["services"] == ["checkout"]
    assert investigation.scope["incident_window"] == [
        start.isoformat(),
        (start + timedelta(hours=1)).isoformat(),
    ]
    assert investigation.baseline_start == start - settings.ROOTLINE_BASELINE_WINDOW
    assert investigation.report["source"] == "signals"

    # the lead is told the question, and a re-run asks it again over the same scope
    brief = team.briefing(build_context(investigation), [], "", asked=investigation.question)
    assert brief.startswith("The on-call engineer asks: Why is checkout slow?")
    again = investigation.rerun()
    runner.run(again.pk)
    again.refresh_from_db()
    assert again.status == "completed" and again.scope == investigation.scope
