"""investigations/runner.py: claiming an investigation and recording its steps."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from django_q.models import OrmQ

from investigations import runner
from investigations.models import Investigation, ToolCall
from investigations.signals import MetricScan
from investigations.signals.metrics import MAX_SERIES
from investigations.signals.report import clock
from tests.factories import T0, make_alert, make_investigation

pytestmark = pytest.mark.django_db


def test_a_queued_investigation_runs_its_scope_step_and_completes(settings):
    alert = make_alert(service="checkout")
    investigation = make_investigation(alert, as_of=T0 + timedelta(minutes=5))

    runner.run(investigation.pk)

    investigation.refresh_from_db()
    assert investigation.status == "completed"
    assert investigation.attempts == 1
    assert investigation.started_at <= investigation.finished_at
    step, *rest = investigation.steps.order_by("sequence")
    assert (step.sequence, step.agent, step.tool, step.status) == (1, "scope", "derive_scope", "ok")
    # No backend is configured here: the scan ranks nothing and the report says so.
    assert [(s.agent, s.tool, s.status) for s in rest] == [
        ("signals", "rank_suspects", "ok"),
        ("signals", "signals_report", "ok"),
    ]
    assert investigation.report["unchecked"] == [
        "metrics (ROOTLINE_PROMETHEUS_URL is not set)",
        "logs (ROOTLINE_LOKI_URL is not set)",
    ]
    assert step.input == {"alerts": [alert.fingerprint]}
    assert step.output["matchers"] == {"namespace": "production"}
    assert step.output["services"] == ["checkout"]
    assert step.output["selector"] == '{namespace="production"}'
    assert 'Scope {namespace="production"}; services: checkout.' in step.output_text
    assert step.finished_at is not None and step.duration_ms is not None
    lookback = settings.ROOTLINE_INCIDENT_LOOKBACK
    assert investigation.incident_start == T0 - lookback
    assert investigation.incident_end == T0 + timedelta(minutes=5)
    assert investigation.baseline_start == T0 - lookback - settings.ROOTLINE_BASELINE_WINDOW
    assert investigation.scope == step.output


def test_an_investigation_another_worker_has_is_not_run_twice():
    investigation = make_investigation(make_alert())
    assert investigation.claim()

    runner.run(investigation.pk)

    assert ToolCall.objects.count() == 0
    assert Investigation.objects.get().attempts == 1


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
def test_a_finished_investigation_is_not_run_again(status):
    investigation = make_investigation(make_alert(), status=status)

    runner.run(investigation.pk)

    assert ToolCall.objects.count() == 0
    assert Investigation.objects.get().status == status


def test_an_investigation_left_running_past_the_timeout_by_a_dead_worker_is_run_again(settings):
    investigation = make_investigation(make_alert())
    investigation.claim()
    Investigation.objects.update(
        started_at=timezone.now() - settings.ROOTLINE_INVESTIGATION_TIMEOUT - timedelta(seconds=1)
    )

    runner.run(investigation.pk)

    investigation.refresh_from_db()
    assert investigation.status == "completed"
    assert investigation.attempts == 2


def test_an_investigation_left_running_on_its_last_attempt_is_failed_not_run(settings):
    # django-q2 re-delivers the task of a killed worker however often it was killed.
    investigation = make_investigation(make_alert())
    investigation.claim()
    Investigation.objects.update(
        attempts=settings.Q_CLUSTER["max_attempts"],
        started_at=timezone.now() - settings.ROOTLINE_INVESTIGATION_TIMEOUT - timedelta(seconds=1),
    )

    runner.run(investigation.pk)

    investigation.refresh_from_db()
    assert investigation.status == "failed"
    assert investigation.attempts == settings.Q_CLUSTER["max_attempts"]
    assert "attempt 2 of 2 stopped" in investigation.error
    assert ToolCall.objects.count() == 0


def test_a_failing_step_fails_the_investigation_with_the_reason():
    investigation = make_investigation()  # no alerts: nothing to scope

    runner.run(investigation.pk)

    investigation.refresh_from_db()
    assert investigation.status == "failed"
    assert "no alerts to scope" in investigation.error
    [step] = investigation.steps.all()
    assert step.status == "error"
    assert "no alerts to scope" in step.error


def test_a_deleted_investigation_is_skipped():
    runner.run(12345)  # nothing to assert but that it neither raises nor writes

    assert ToolCall.objects.count() == 0


def test_steps_are_numbered_in_order():
    investigation = make_investigation(make_alert())

    first = ToolCall.start(investigation, "signals", "scan_metrics")
    second = ToolCall.start(investigation, "lead", "investigate_logs", parent=first)

    assert (first.sequence, second.sequence) == (1, 2)
    assert second.parent == first


def test_rerun_queues_a_new_investigation_of_the_same_alerts():
    alerts = [make_alert("aa01"), make_alert("aa02")]
    first = make_investigation(*alerts, group_key="g")

    again = first.rerun()

    assert again.kind == "rerun"
    assert again.rerun_of == first
    assert again.status == "queued"
    assert set(again.alerts.all()) == set(alerts)
    [queued] = OrmQ.objects.all()
    assert queued.task["args"] == (again.pk,)


@pytest.mark.django_db(transaction=True)
def test_a_task_is_queued_only_if_its_investigation_commits():
    with pytest.raises(RuntimeError), transaction.atomic():
        make_investigation(make_alert("aa01")).enqueue()
        assert OrmQ.objects.count() == 1  # written in the same transaction...
        raise RuntimeError("the request failed after queueing")

    assert not Investigation.objects.exists()
    assert not OrmQ.objects.exists()  # ...so rolled back with it: no task for a ghost


def test_the_sweep_requeues_or_ends_investigations_no_worker_runs(settings):
    abandoned = (
        timezone.now()
        - settings.ROOTLINE_INVESTIGATION_TIMEOUT
        - settings.ROOTLINE_TASK_RETRY_GRACE
        - timedelta(minutes=2)
    )
    last_attempt = make_investigation(make_alert("aa01"))
    first_attempt = make_investigation(make_alert("aa02"))
    recent = make_investigation(make_alert("aa03"))
    Investigation.objects.filter(pk=last_attempt.pk).update(
        status="running", attempts=2, started_at=abandoned
    )
    Investigation.objects.filter(pk=first_attempt.pk).update(
        status="running", attempts=1, started_at=abandoned
    )
    Investigation.objects.filter(pk=recent.pk).update(
        status="running", attempts=1, started_at=timezone.now()
    )

    assert runner.sweep_stale() == 2

    last_attempt.refresh_from_db()
    assert last_attempt.status == "failed"
    assert "attempt 2 of 2 stopped" in last_attempt.error
    first_attempt.refresh_from_db()
    assert first_attempt.status == "queued"  # run again, by a new task
    assert [task.task["args"] for task in OrmQ.objects.all()] == [(first_attempt.pk,)]
    recent.refresh_from_db()
    assert recent.status == "running"  # its worker may still be at it


def test_the_sweep_is_scheduled_every_minute():
    from django_q.models import Schedule

    schedule = Schedule.objects.get(func="investigations.tasks.sweep_stale_investigations")
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == ("I", 1, -1)


def test_a_cancelled_investigation_is_not_completed_over():
    investigation = make_investigation(make_alert("aa01"), as_of=T0 + timedelta(minutes=5))
    Investigation.objects.filter(pk=investigation.pk).update(status="running")
    investigation.refresh_from_db()

    assert investigation.cancel("no longer needed")
    investigation.finish(Investigation.Status.COMPLETED)

    investigation.refresh_from_db()
    assert (investigation.status, investigation.error) == ("cancelled", "no longer needed")
    assert not investigation.cancel()  # already ended


def test_what_a_metric_scan_that_ran_could_not_check_is_said():
    end = T0 + timedelta(minutes=5)
    scan = MetricScan(metrics=40, errors=["a: HTTP 500"], left_out=["x", "y", "z", "w"])
    scan.newest = (end - timedelta(seconds=180)).timestamp()

    gaps = runner._metric_gaps(scan, end)

    assert gaps == [
        "metrics: 1 of 40 metrics could not be read, e.g. a: HTTP 500",
        f"metrics: 4 of 40 metrics were not read, over the scan's cap of {MAX_SERIES} series "
        "even as one series per service, e.g. x, y, z",
        f"metrics: no series in scope has a sample after {clock(scan.newest)}, 180 s before "
        "the scan's end (the store is behind, or nothing in scope was scraped since): what "
        "changed after it could not be seen, and series that stopped were judged up to it",
    ]
    assert runner._metric_gaps(MetricScan(metrics=40), end) == []
