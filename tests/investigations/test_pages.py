"""The overview and an investigation's page with its live timeline (investigations/views.py)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from investigations import runner
from investigations.models import Investigation, ToolCall
from tests.factories import T0, make_alert, make_investigation

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished():
    investigation = make_investigation(
        make_alert(service="checkout"), as_of=T0 + timedelta(minutes=5)
    )
    runner.run(investigation.pk)
    investigation.refresh_from_db()
    return investigation


@pytest.mark.parametrize(
    "url",
    [
        lambda i: reverse("home"),
        lambda i: reverse("investigation", args=[i.pk]),
        lambda i: reverse("investigation_steps", args=[i.pk]),
    ],
)
def test_every_page_needs_a_login(client, finished, url):
    response = client.get(url(finished))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_a_new_user_is_told_how_to_send_the_first_alert(admin_client):
    page = admin_client.get(reverse("home")).content.decode()
    assert "No investigation yet" in page
    assert "manage.py send_test_alert" in page


def test_the_overview_lists_running_and_latest_investigations(admin_client, finished):
    running = make_investigation(make_alert("bb01"), status="running")

    page = admin_client.get(reverse("home")).content.decode()

    running_section, latest_section = page.split("<h2>Latest</h2>")
    assert reverse("investigation", args=[running.pk]) in running_section
    assert reverse("investigation", args=[finished.pk]) in latest_section


def test_an_investigation_page_shows_its_report_and_timeline(admin_client, finished):
    page = admin_client.get(reverse("investigation", args=[finished.pk])).content.decode()

    assert "Not checked: metrics (ROOTLINE_PROMETHEUS_URL is not set)" in page  # the report
    for tool in ("derive_scope", "rank_suspects", "signals_report"):
        assert f'<span class="tool">{tool}</span>' in page
    assert 'id="timeline-tail"' not in page  # it has ended: nothing polls


def test_a_running_investigation_polls_for_the_steps_after_its_cursor(admin_client):
    investigation = make_investigation(make_alert("cc01"), status="running")
    first = ToolCall.start(investigation, "scope", "derive_scope")
    first.end(output_text="scoped")
    running = ToolCall.start(investigation, "signals", "scan_metrics")

    page = admin_client.get(reverse("investigation", args=[investigation.pk])).content.decode()
    steps_url = reverse("investigation_steps", args=[investigation.pk])
    assert f'hx-get="{steps_url}?after=1"' in page  # the cursor: the last ended step
    assert 'id="step-2"' in page  # the running step is shown in the tail

    running.end(output_text="213 series")
    ToolCall.start(investigation, "signals", "scan_logs").end(output_text="48 lines")
    ToolCall.start(investigation, "lead", "llm_turn")
    partial = admin_client.get(steps_url, {"after": 1})

    assert partial.status_code == 200
    body = partial.content.decode()
    assert 'id="step-1"' not in body  # already shown for good
    assert body.index('id="step-2"') < body.index('id="step-3"') < body.index('id="timeline-tail"')
    assert 'id="step-4"' in body.split('id="timeline-tail"')[1]  # still running: in the tail
    assert f'hx-get="{steps_url}?after=3"' in body


def test_polling_stops_with_286_once_the_investigation_has_ended(admin_client, finished):
    last = finished.steps.order_by("sequence").last().sequence
    steps_url = reverse("investigation_steps", args=[finished.pk])

    response = admin_client.get(steps_url, {"after": last - 1})

    assert response.status_code == 286
    body = response.content.decode()
    assert f'id="step-{last}"' in body and "timeline-tail" not in body
    assert admin_client.get(steps_url, {"after": "x"}).status_code == 400


def test_specialists_steps_nest_under_the_delegation_in_their_order(admin_client):
    """The analysts run in parallel, so their steps interleave by sequence; each still
    shows under the lead's delegation that started it."""
    investigation = make_investigation(make_alert("dd01"), status="completed")
    logs = ToolCall.start(investigation, "lead", "investigate_logs")  # 1
    metrics = ToolCall.start(investigation, "lead", "investigate_metrics")  # 2
    for parent, agent, tool in [
        (logs, "logs", "log_patterns"),  # 3
        (metrics, "metrics", "query_range"),  # 4
        (logs, "logs", "query_logs"),  # 5
    ]:
        ToolCall.start(investigation, agent, tool, parent=parent).end()
    logs.end()
    metrics.end()

    page = admin_client.get(reverse("investigation", args=[investigation.pk])).content.decode()

    order = [page.index(f'id="{anchor}"') for anchor in (
        "step-1", "children-1", "step-3", "step-5", "step-2", "children-2", "step-4"
    )]  # fmt: skip
    assert order == sorted(order)
    assert 'class="step-group nested">\n<details class="step step-ok" id="step-3"' in page


def test_a_step_links_its_query_to_grafana_explore(admin_client, settings, finished):
    settings.ROOTLINE_GRAFANA_URL = "https://grafana.example"
    settings.ROOTLINE_GRAFANA_PROMETHEUS_UID = "prom-uid"
    settings.ROOTLINE_GRAFANA_LOKI_UID = ""
    call = ToolCall.start(finished, "metrics", "query_range", {"query": "up"})
    call.end(output={"query": "rate(x[5m])", "links": ["https://grafana.example/explore?a"]})

    page = admin_client.get(reverse("investigation", args=[finished.pk])).content.decode()

    assert 'href="https://grafana.example/explore?a"' in page
    assert "rate(x[5m])" in page
    # a signal scan's step gets a link made from its query and incident window
    window = {"incident": [T0.isoformat(), (T0 + timedelta(minutes=5)).isoformat()]}
    scan = ToolCall.start(finished, "signals", "scan_metrics", {"query": '{ns="a"}', **window})
    assert scan.links[0].startswith("https://grafana.example/explore?")
    assert "prom-uid" in scan.links[0] and str(int(T0.timestamp() * 1000)) in scan.links[0]
    # no Loki datasource configured: no link for a logs scan
    logs = ToolCall.start(finished, "signals", "scan_logs", {"query": '{ns="a"}', **window})
    assert logs.links == []


def test_login_page_renders(client):
    page = client.get(reverse("login")).content.decode()
    assert 'name="username"' in page and 'name="password"' in page


def test_the_last_poll_brings_the_report_in(admin_client, finished):
    steps_url = reverse("investigation_steps", args=[finished.pk])

    body = admin_client.get(steps_url, {"after": 1}).content.decode()

    assert '<div id="outcome" hx-swap-oob="true">' in body
    assert "Not checked: metrics" in body


def test_feedback_is_saved_and_shown(admin_client, finished):
    url = reverse("investigation_action", args=[finished.pk, "feedback"])

    page = admin_client.post(
        url, {"feedback": "wrong", "feedback_text": "it was the DNS"}, follow=True
    ).content.decode()

    finished.refresh_from_db()
    assert (finished.feedback, finished.feedback_text) == ("wrong", "it was the DNS")
    assert "Thank you: feedback saved." in page and "Marked Wrong" in page
    bad = admin_client.post(url, {"feedback": "maybe"}, follow=True).content.decode()
    assert "Pick correct, partly correct or wrong." in bad


def test_rerun_and_cancel_from_the_page(admin_client, finished):
    page = admin_client.post(
        reverse("investigation_action", args=[finished.pk, "rerun"]), follow=True
    )
    again = page.context["investigation"]
    assert again.pk != finished.pk and again.rerun_of_id == finished.pk
    assert again.status == "queued"

    admin_client.post(reverse("investigation_action", args=[again.pk, "cancel"]))
    again.refresh_from_db()
    assert again.status == "cancelled"
    assert (
        admin_client.get(reverse("investigation_action", args=[again.pk, "cancel"])).status_code
        == 405
    )


def test_a_question_needs_a_model(admin_client, finished, settings):
    settings.ANTHROPIC_API_KEY = ""
    page = admin_client.post(
        reverse("investigation_action", args=[finished.pk, "ask"]),
        {"question": "Why?"},
        follow=True,
    ).content.decode()
    assert "Follow-up questions need a model" in page
    finished.refresh_from_db()
    assert finished.followups == []


def test_a_pending_question_keeps_the_timeline_polling(admin_client, finished, settings):
    settings.ANTHROPIC_API_KEY = "test-key"
    admin_client.post(
        reverse("investigation_action", args=[finished.pk, "ask"]), {"question": "When?"}
    )
    last = finished.steps.order_by("sequence").last().sequence

    response = admin_client.get(reverse("investigation_steps", args=[finished.pk]), {"after": last})

    assert response.status_code == 200  # not 286: the answer is still to come
    assert 'id="timeline-tail"' in response.content.decode()


def test_the_overview_numbers(admin_client, finished):
    Investigation.objects.filter(pk=finished.pk).update(
        feedback="correct", cost_usd=Decimal("0.70")
    )
    other = make_investigation(make_alert("ee01", severity="critical"), status="failed")
    other.feedback = "wrong"
    other.save()

    response = admin_client.get(reverse("home"))

    numbers = response.context["numbers"]
    assert numbers["per_day"] == pytest.approx(2 / 7)
    assert numbers["cost_per_day"] == pytest.approx(Decimal("0.10"))
    assert numbers["correct_share"] == 0.5 and numbers["judged"] == 2
    assert numbers["median_seconds_to_report"] is not None
    page = response.content.decode()
    assert "50%" in page and "$0.10" in page
    assert "1 critical" in page  # alerts firing by severity
