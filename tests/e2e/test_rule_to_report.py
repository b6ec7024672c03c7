"""From rule to report: a real Prometheus fires a real alert rule, a real Alertmanager tells
Rootline, a real worker investigates against that Prometheus and a Loki stub through the
scripted model, the report is read on the pages and through the API, and when the rule
stops firing the resolution is recorded.

Prometheus evaluates rules at the present, so the failure is scraped live: Prometheus
scrapes the scenario exporter every second and the rule sees checkout fail when the test
says so. The history is backfilled, because the signal scan compares 30-second steps of
the incident with an hour of baseline and counts in full only a change that holds for two
minutes: the hour before, orders-db's climb towards its connection limit included, is
written with promtool just before Prometheus starts, labelled as the scrape labels it, so
each series runs on from its history into its live samples.

The logs hold secrets and a prompt injection (tests/e2e/hostile.py): none of the secrets
may reach the model, the injected text may reach it only inside tool results, and every
agent is offered only its read-only tools.
"""

import contextlib
import json
import re
import time

import httpx
import loki_stub
import pytest
import scripted_messages as scripted
from django.contrib.auth import get_user_model
from django_q.models import OrmQ

from accounts.models import ApiToken
from alerts.models import Alert, WebhookDelivery
from investigations.models import Investigation, ToolCall
from tests.e2e import hostile
from tests.e2e.scenario import (
    ALERT_RULES,
    JOB,
    Outage,
    ScenarioExporter,
    history,
    log_entries,
)
from tests.investigations.agents.scripts import LEAD, LOGS, METRICS
from tests.processes import wait_until
from tests.realprometheus import running_prometheus

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DEADLINE_SECONDS = 30
PASSWORD = "e2e-password"
ROOT_CAUSE = (
    "connection slots exhausted: active connections climbed from 22 to 98 of "
    "max_connections=100 before the first checkout 5xx"
)
REPORT = {
    "summary": "orders-db ran out of connections and refused checkout, whose requests then "
    "failed with 'sorry, too many clients already'.",
    "root_cause": {"service": "orders-db", "description": ROOT_CAUSE},
    "confidence": 0.85,
    "suspects": [
        {"service": "orders-db", "likelihood": 0.85, "reason": "saturated first"},
        {"service": "checkout", "likelihood": 0.1, "reason": "fails because of orders-db"},
    ],
    "remediation": ["Find what holds orders-db's connections; put a pooler in front of it"],
    "follow_up_checks": ["Check checkout's connection pool settings"],
}
STEP = re.compile(r"\[step (\d+)\]")


def steps_in(request):
    """The [step N] numbers of the tool results the model has just been sent."""
    last = request["messages"][-1]["content"]
    results = [b.get("content", "") for b in last if b.get("type") == "tool_result"]
    return sorted({int(n) for text in results for n in STEP.findall(str(text))})


def team_script():
    """A lead that asks both analysts at once and reports what they found, citing the
    steps they cite; analysts that read Loki and Prometheus once each."""

    def report(request):
        claim = {"claim": "orders-db saturated before checkout failed", "steps": steps_in(request)}
        return scripted.tool_use("submit_report", {**REPORT, "evidence": [claim]})

    def findings(text):
        return lambda request: scripted.text(
            text + " " + " ".join(f"[step {n}]" for n in steps_in(request))
        )

    return scripted.Script(
        {
            LEAD: [
                scripted.tool_uses(
                    [
                        ("investigate_logs", {"question": "Which service in shop errs first?"}),
                        ("investigate_metrics", {"question": "Did orders-db saturate first?"}),
                    ]
                ),
                report,
            ],
            LOGS: [
                scripted.tool_use("query_logs", {"query": '{namespace="shop"} |= "level=error"'}),
                findings("orders-db refuses clients before checkout's first 500."),
            ],
            METRICS: [
                scripted.tool_use(
                    "query_metrics_range",
                    {
                        "query": 'sum by (service) (pg_stat_activity_count{namespace="shop"}) '
                        '/ sum by (service) (pg_settings_max_connections{namespace="shop"})'
                    },
                ),
                findings("orders-db's connections reached 98% of max_connections."),
            ],
        }
    )


def prometheus_config(exporter, alertmanager):
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [exporter.address]}]}],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager.address]}]}]},
    }


def state(*processes, prometheus_log):
    """What Rootline holds and what the processes said, for a failure message."""
    deliveries = list(WebhookDelivery.objects.values("outcome", "status_code", "error"))
    alerts = list(Alert.objects.values("labels", "status", "starts_at", "ends_at"))
    investigations = list(Investigation.objects.values("pk", "status", "error"))
    steps = list(ToolCall.objects.order_by("sequence").values("agent", "tool", "status", "error"))
    said = "\n".join(p.describe() for p in processes)
    return (
        f"\ndeliveries: {deliveries}\nalerts: {alerts}\ninvestigations: {investigations}"
        f"\nsteps: {steps}\nqueued tasks: {OrmQ.objects.count()}\n{said}"
        f"\nprometheus wrote:\n{prometheus_log.read_text()[-4000:]}"
    )


def test_a_firing_rule_ends_in_the_agents_report_and_its_resolution_is_recorded(
    alertmanager, start_qcluster, live_server, client, tmp_path
):
    outage = Outage(history_end=time.time())
    (tmp_path / "prometheus").mkdir()
    prometheus_log = tmp_path / "prometheus" / "prometheus.log"
    with contextlib.ExitStack() as running:
        exporter = running.enter_context(ScenarioExporter(outage).start())
        model = running.enter_context(scripted.serve(team_script()))
        loki = running.enter_context(loki_stub.serve(loki_stub.LogStore(log_entries(outage))))
        prometheus_url = running.enter_context(
            running_prometheus(
                history(outage, exporter.target_labels),
                tmp_path / "prometheus",
                config=prometheus_config(exporter, alertmanager),
                rules=ALERT_RULES,
            )
        )
        worker = start_qcluster(
            ROOTLINE_PROMETHEUS_URL=prometheus_url,
            ROOTLINE_LOKI_URL=loki.url,
            ANTHROPIC_API_KEY="test-key",
            ANTHROPIC_BASE_URL=model.url,
        )

        def describe():
            return state(alertmanager, worker, prometheus_log=prometheus_log)

        wait_until(
            lambda: exporter.scrapes >= 2, DEADLINE_SECONDS, lambda: "no scrape" + describe()
        )
        # checkout fails now, and from now on logs it.
        failing_since = outage.fail_checkout()
        loki.store = loki_stub.LogStore(log_entries(outage))

        alert = wait_until(Alert.objects.first, DEADLINE_SECONDS, lambda: "no alert" + describe())
        investigation = wait_until(
            lambda: Investigation.objects.filter(status__in=Investigation.FINISHED).first(),
            DEADLINE_SECONDS,
            lambda: "the worker did not finish" + describe(),
        )
        requests = model.requests

        # Prometheus' alert, as Alertmanager delivered it.
        assert alert.labels == {
            "alertname": "CheckoutErrorRateHigh",
            "namespace": "shop",
            "service": "checkout",
            "severity": "critical",
        }
        assert alert.annotations["summary"].startswith("checkout fails ")
        assert "/graph?g0.expr=" in alert.generator_url
        assert failing_since - 1 <= alert.starts_at.timestamp() <= failing_since + 10
        assert alert.first_delivery.headers["User-Agent"].startswith("Alertmanager/")

        # The investigation: the real signal scan, then the agents' report.
        assert investigation.status == "completed", describe()
        assert list(investigation.alerts.all()) == [alert]
        assert investigation.scope["matchers"] == {"namespace": "shop"}
        scans = investigation.steps.filter(tool__in=["scan_metrics", "scan_logs"])
        assert {(s.tool, s.status) for s in scans} == {("scan_metrics", "ok"), ("scan_logs", "ok")}
        assert investigation.suspects[0]["service"] == "orders-db", investigation.suspects
        report = investigation.report
        assert report["source"] == "agents", report.get("agents_error")
        assert report["root_cause"] == REPORT["root_cause"]
        assert report["evidence"][0]["steps"], "the report cites no step"
        assert "prompt_text_withheld" not in report
        assert model.protocol_errors == 0 and model.ran_out == []
        assert model.remaining_turns() == {}

        # The pages and the API show it.
        user = get_user_model().objects.create_user("oncall", password=PASSWORD)
        assert client.login(username="oncall", password=PASSWORD)
        page = client.get(f"/investigations/{investigation.pk}/")
        assert page.status_code == 200
        html = page.content.decode()
        assert f"orders-db: {ROOT_CAUSE}" in html
        _, token = ApiToken.issue(user, name="e2e")
        # A kept-alive connection would keep a server thread, and its database session.
        api = running.enter_context(
            httpx.Client(
                base_url=f"{live_server.url}/api/v1",
                headers={"Authorization": f"Bearer {token}", "Connection": "close"},
            )
        )
        detail = api.get(f"/investigations/{investigation.pk}")
        published = api.get(f"/investigations/{investigation.pk}/report")
        assert detail.status_code == 200, detail.text
        assert detail.json()["status"] == "completed"
        assert detail.json()["report"]["root_cause"]["service"] == "orders-db"
        assert published.status_code == 200, published.text
        assert f"**Root cause:** orders-db: {ROOT_CAUSE}" in published.json()["markdown"]

        # Secrets: read, redacted, and never sent to the model nor shown.
        assert hostile.leaked_secrets(requests) == {}
        timeline = json.dumps(list(investigation.steps.values("input", "output", "output_text")))
        shown = [html, timeline, detail.text, published.text]
        for name, value in hostile.SECRETS.items():
            assert not [text for text in shown if value in text], name
        redactions = {}
        for step in investigation.steps.filter(tool="query_logs"):
            for kind, n in step.output["redactions"].items():
                redactions[kind] = redactions.get(kind, 0) + n
        assert set(redactions) >= {
            "url_password", "authorization_header", "key_value", "jwt", "aws_access_key",
            "aws_secret_key", "github_token", "slack_webhook",
        }, redactions  # fmt: skip

        # The injection: read by the analysts, only ever as a tool result; tools read-only.
        assert hostile.tool_results_with_injection(requests) > 0
        assert hostile.injection_outside_tool_results(requests) == []
        assert hostile.offered_tools_problems(requests) == []
        assert hostile.tool_implementation_problems() == []

        # checkout recovers: the rule stops firing and Alertmanager sends the resolution.
        recovered_at = outage.recover()
        resolved = wait_until(
            lambda: Alert.objects.filter(status="resolved").first(),
            DEADLINE_SECONDS,
            lambda: "the alert was not resolved" + describe(),
        )
    assert resolved.pk == alert.pk
    assert recovered_at - 1 <= resolved.ends_at.timestamp() <= time.time()
    assert resolved.resolved_delivery.headers["User-Agent"].startswith("Alertmanager/")
    assert Alert.objects.count() == 1 and Investigation.objects.count() == 1
    assert not WebhookDelivery.objects.exclude(outcome=WebhookDelivery.Outcome.ACCEPTED).exists()
