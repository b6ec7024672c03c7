"""Rootline's Prometheus metrics, counted from the database at scrape time.

Rootline runs several web processes and several workers, on any number of machines: a
counter kept in one process would count only what that process saw. Every series here is
an aggregate query over the rows all processes write, so any process answers a scrape
with the same numbers, and a restart loses nothing.

Counters are totals of rows (deliveries by outcome, finished investigations, tool calls,
LLM tokens): they only grow while rows are kept. Deleting old rows lowers them, which
Prometheus' rate() and increase() read as a counter reset. Gauges say how many rows are
in each state now. Histograms count rows under each bound with conditional counts, one
query per table. A scrape is eight aggregate queries however many rows there are, but each
scans its table, so its time grows with the rows kept (docs/deploy.md has a measurement).
"""

from django.db.models import Count, F, FloatField, Func, Q, Sum
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString

from alerts.models import Alert, WebhookDelivery
from investigations.models import SCAN_BACKENDS, Investigation, ToolCall
from investigations.tools import TOOLS
from rca_site.taskqueue import queue_state

# From a quick signal scan to an investigation that runs into its 15-minute timeout.
INVESTIGATION_BUCKETS_SECONDS = (5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600)
# From a cached Loki answer to a model turn that takes its full 120 s.
TOOL_CALL_BUCKETS_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# Where a timeline step's time goes, beyond the telemetry tools' own `backend`.
STEP_BACKENDS = {**SCAN_BACKENDS, "llm_turn": "anthropic"}
NO_BACKEND = "none"


class SecondsBetween(Func):
    """Seconds from one datetime column to another, computed by the database.

    Django's own `F(end) - F(start)` runs a Python function per row on SQLite (eleven
    times a row in a histogram); this is the database's own arithmetic on both backends.
    """

    output_field = FloatField()
    template = "EXTRACT(EPOCH FROM (%(expressions)s))"
    arg_joiner = " - "

    def __init__(self, start, end):
        super().__init__(end, start)

    def as_sqlite(self, compiler, connection, **extra):
        # julianday() is a double of days: rounded to the millisecond, exact seconds stay exact.
        template = "ROUND((julianday(%(expressions)s)) * 86400.0, 3)"
        return self.as_sql(
            compiler, connection, template=template, arg_joiner=") - julianday(", **extra
        )


class RootlineCollector:
    """A prometheus_client collector: every collect() reads the database afresh."""

    def collect(self):
        yield webhook_deliveries()
        yield alerts()
        yield from investigations()
        yield investigation_durations()
        yield from queue()
        yield tool_calls()
        yield from llm_usage()


def registry():
    """A registry with only Rootline's collector: no process metrics, because behind a
    load balancer a scrape reaches any one of the processes."""
    collected = CollectorRegistry()
    collected.register(RootlineCollector())
    return collected


def webhook_deliveries():
    return counted(
        CounterMetricFamily,
        "rootline_webhook_deliveries",
        "Alertmanager webhook deliveries received, by outcome (accepted, unauthorized, "
        "invalid, ...; received: being processed, or its processing failed).",
        WebhookDelivery.objects,
        "outcome",
        WebhookDelivery.Outcome,
    )


def alerts():
    return counted(
        GaugeMetricFamily,
        "rootline_alerts",
        "Alert firing episodes stored, by their status now.",
        Alert.objects,
        "status",
        Alert.Status,
    )


def investigations():
    now = counted(
        GaugeMetricFamily,
        "rootline_investigations",
        "Investigations, by their status now.",
        Investigation.objects,
        "status",
        Investigation.Status,
    )
    finished = CounterMetricFamily(
        "rootline_investigations_finished",
        "Investigations that ended, by how: completed, failed or cancelled.",
        labels=["status"],
    )
    for sample in now.samples:
        if sample.labels["status"] in Investigation.FINISHED:
            finished.add_metric([sample.labels["status"]], sample.value)
    yield now
    yield finished


def investigation_durations():
    """From a worker's claim to the end, of the investigations that ended after starting."""
    histogram = HistogramMetricFamily(
        "rootline_investigation_duration_seconds",
        "Time from a worker taking an investigation to its end, by how it ended.",
        labels=["status"],
    )
    ran = Investigation.objects.filter(
        status__in=Investigation.FINISHED, started_at__isnull=False, finished_at__isnull=False
    ).alias(seconds=SecondsBetween("started_at", "finished_at"))
    rows = histogram_rows(
        ran,
        "status",
        duration=F("seconds"),
        bounds=[Q(seconds__lte=b) for b in INVESTIGATION_BUCKETS_SECONDS],
    )
    for row in rows:
        seconds = float(row["total"])
        add_histogram(histogram, [row["status"]], row, INVESTIGATION_BUCKETS_SECONDS, seconds)
    return histogram


def queue():
    state = queue_state()
    tasks = GaugeMetricFamily(
        "rootline_queue_tasks",
        "Tasks in the django-q2 queue: waiting for a worker, or claimed by one.",
        labels=["state"],
    )
    tasks.add_metric(["waiting"], state.waiting)
    tasks.add_metric(["claimed"], state.claimed)
    yield tasks
    yield GaugeMetricFamily(
        "rootline_queue_oldest_task_age_seconds",
        "How long the oldest waiting task has waited for a worker (0: none waits).",
        value=state.oldest_wait_seconds,
    )
    if state.scheduler_lag_seconds is not None:
        yield GaugeMetricFamily(
            "rootline_scheduler_lag_seconds",
            "How overdue the every-minute sweep is; above a minute or two, no qcluster is running.",
            value=state.scheduler_lag_seconds,
        )


def tool_calls():
    """Every ended timeline step: the agents' tool calls, the signal scans, model turns."""
    histogram = HistogramMetricFamily(
        "rootline_tool_call_duration_seconds",
        "Timeline steps that ended (tool calls, signal scans, model turns), by agent, "
        "tool, the backend it asked and outcome (ok, error); _count counts the calls.",
        labels=["agent", "tool", "backend", "outcome"],
    )
    ended = ToolCall.objects.filter(
        status__in=[ToolCall.Status.OK, ToolCall.Status.ERROR], duration_ms__isnull=False
    )
    rows = histogram_rows(
        ended,
        "agent",
        "tool",
        "status",
        duration=F("duration_ms"),
        bounds=[Q(duration_ms__lte=b * 1000) for b in TOOL_CALL_BUCKETS_SECONDS],
    )
    for row in rows:
        labels = [row["agent"], row["tool"], backend_of(row["tool"]), row["status"]]
        add_histogram(histogram, labels, row, TOOL_CALL_BUCKETS_SECONDS, row["total"] / 1000)
    return histogram


def backend_of(tool):
    """The backend a step of `tool` talks to: loki, prometheus, anthropic, or none."""
    backend = STEP_BACKENDS.get(tool) or getattr(TOOLS.get(tool), "backend", None)
    return backend or NO_BACKEND


def llm_usage():
    tokens = CounterMetricFamily(
        "rootline_llm_tokens",
        "Tokens the agents spent, by model and kind: input (cache writes included), "
        "cache_read, output.",
        labels=["model", "kind"],
    )
    cost = CounterMetricFamily(
        "rootline_llm_cost_usd",
        "What the agents cost in US dollars, at ROOTLINE_LLM_PRICES, by model.",
        labels=["model"],
    )
    rows = (
        Investigation.objects.exclude(model="")
        .values("model")
        .annotate(
            input=Sum("input_tokens"),
            cache_read=Sum("cached_tokens"),
            output=Sum("output_tokens"),
            cost=Sum("cost_usd"),
        )
        .order_by("model")
    )
    for row in rows:
        # input_tokens counts every input token, cache reads included (runner.run_team).
        tokens.add_metric([row["model"], "input"], row["input"] - row["cache_read"])
        tokens.add_metric([row["model"], "cache_read"], row["cache_read"])
        tokens.add_metric([row["model"], "output"], row["output"])
        cost.add_metric([row["model"]], float(row["cost"]))
    yield tokens
    yield cost


def counted(family_type, name, documentation, queryset, field, choices):
    """A family with one series per value of `field` (its label too): how many rows have
    it. Every one of `choices` has its series, 0 when no row has it (a series that would
    appear with its first row hides that row from increase()); so has any other value
    stored."""
    stored = queryset.values_list(field).annotate(count=Count("pk")).order_by(field)
    family = family_type(name, documentation, labels=[field])
    for value, count in {**dict.fromkeys(choices.values, 0), **dict(stored)}.items():
        family.add_metric([value], count)
    return family


def histogram_rows(queryset, *fields, duration, bounds):
    """Per group of `fields`: `count`, `total` (the sum of `duration`) and `bucket_<i>`,
    the rows meeting `bounds[i]` (a Q: at or under the i-th bound): a cumulative
    histogram in one GROUP BY."""
    buckets = {f"bucket_{i}": Count("pk", filter=under) for i, under in enumerate(bounds)}
    return (
        queryset.values(*fields)
        .annotate(count=Count("pk"), total=Sum(duration), **buckets)
        .order_by(*fields)
    )


def add_histogram(histogram, labels, row, bounds_seconds, sum_seconds):
    buckets = [(floatToGoString(b), row[f"bucket_{i}"]) for i, b in enumerate(bounds_seconds)]
    buckets.append(("+Inf", row["count"]))
    histogram.add_metric(labels, buckets, sum_value=sum_seconds)
