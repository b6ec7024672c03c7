"""One investigation, end to end. The only place the investigation steps touch models.

Each step is a ToolCall written when it starts and when it ends, so the timeline shows
it live. Steps: the scope, then the signal scan (metrics and logs, then the ranking),
then the report (signals-only until the agents come after the scan). Once it completes,
its notifications are queued (investigations.notify).
"""

import asyncio
import logging
from collections import Counter
from contextlib import AsyncExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from investigations import notify, signals
from investigations.agents import team
from investigations.agents.llm import LLM, LLMUnavailable, cost_usd
from investigations.agents.loop import Budget, Cancelled
from investigations.models import Investigation, ToolCall
from investigations.scope import (
    LOGS,
    METRICS,
    NAMESPACED_LABEL,
    OTEL_SERVICE_NAME,
    OTEL_SERVICE_NAMESPACE,
    check_matchers,
    derive_scope,
    held_names,
    question_scope,
)
from investigations.signals.metrics import HISTOGRAM_QUANTILE, MAX_SERIES, STEP_SECONDS, credit
from investigations.signals.onset import for_state_query, pending_since
from investigations.signals.report import clock, metric_label, percent, percentile
from investigations.signals.stores import check_store, settle
from investigations.telemetry import LokiClient, PrometheusClient, TelemetryError
from investigations.tools import build_context

log = logging.getLogger(__name__)

STALE_GRACE = timedelta(minutes=1)


class InvestigationError(Exception):
    """A step cannot go on; the investigation fails with this message."""


@contextmanager
def step(investigation, agent, tool, input=None):
    """Record one timeline step around a block; the block sets `.result` (output, text)."""
    call = ToolCall.start(investigation, agent, tool, input=input)
    call.result = (None, "")
    try:
        yield call
    except Exception as exc:
        call.end(error=f"{type(exc).__name__}: {exc}")
        raise
    call.end(output=call.result[0], output_text=call.result[1])


def run(investigation_id):
    """Run one investigation if this worker can claim it. Never raises for a failed step."""
    try:
        investigation = Investigation.objects.get(pk=investigation_id)
    except Investigation.DoesNotExist:
        log.warning("investigation %s no longer exists; nothing to run", investigation_id)
        return
    if not investigation.claim():
        if investigation.abandoned_on_last_attempt():
            give_up(investigation)
        else:
            log.info(
                "investigation %s is %s; not running it", investigation_id, investigation.status
            )
        return
    try:
        scope = scope_step(investigation)
        suspects, unchecked, evidence_steps = signals_step(investigation, scope)
        report_step(investigation, scope, suspects, unchecked, evidence_steps)
        agents_step(investigation)
    except Cancelled:
        log.info("investigation %s was cancelled", investigation_id)
        return
    except Exception as exc:
        log.exception("investigation %s failed", investigation_id)
        investigation.finish(Investigation.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
        return
    with transaction.atomic():
        investigation.finish(Investigation.Status.COMPLETED, error=investigation.error)
        notify.queue(investigation)


def scope_step(investigation):
    """Where and when to look: from the alerts, or for a question without alerts from the
    matchers and time range it was asked with."""
    now = investigation.as_of or timezone.now()
    alerts = list(investigation.alerts.order_by("starts_at"))
    asked = not alerts and investigation.question and investigation.incident_start
    if asked:
        tool, request = (
            "question_scope",
            {
                "question": investigation.question,
                "matchers": investigation.scope.get("matchers", {}),
                "window": [
                    investigation.incident_start.isoformat(),
                    investigation.incident_end.isoformat(),
                ],
            },
        )
    else:
        tool, request = "derive_scope", {"alerts": [a.fingerprint for a in alerts]}
    with step(investigation, ToolCall.Agent.SCOPE, tool, request) as call:
        if asked:
            scope = question_scope(
                check_matchers(request["matchers"]),
                investigation.incident_start,
                investigation.incident_end,
            )
        elif not alerts:
            raise InvestigationError("the investigation has no alerts to scope")
        else:
            scope = derive_scope(alerts, now)
        call.result = (scope.as_dict(), describe(scope))
    investigation.scope = scope.as_dict()
    investigation.baseline_start = scope.baseline_start
    investigation.incident_start = scope.incident_start
    investigation.incident_end = scope.incident_end
    investigation.save(update_fields=["scope", "baseline_start", "incident_start", "incident_end"])
    return scope


def describe(scope):
    services = ", ".join(scope.services) or "none named"
    return (
        f"Scope {scope.selector}; services: {services}. "
        f"Baseline {scope.baseline_start:%H:%M} to {scope.incident_start:%H:%M} UTC, "
        f"incident {scope.incident_start:%H:%M} to {scope.incident_end:%H:%M} UTC."
    )


def scan_windows(first_start, scope):
    """(baseline, incident) for the signal scan, given when the first alert fired (None
    for a question without alerts: the scope's own windows)."""
    if first_start is None:
        return (scope.baseline_start, scope.incident_start), (
            scope.incident_start,
            scope.incident_end,
        )
    return scan_windows_from(first_start, scope)


def alert_start(investigation, scope):
    """When the condition of the investigation's first alert began, None without alerts:
    its startsAt, or where the metric store recorded it pending before (its rule's `for`;
    see signals.onset), then, though no earlier than the scope's incident window. Looked up
    as a timeline step."""
    first = investigation.alerts.order_by("starts_at").first()
    if first is None:
        return None
    prometheus = PrometheusClient.from_settings()
    if prometheus is None:
        return first.starts_at
    fired, earliest = first.starts_at.timestamp(), scope.incident_start.timestamp()
    call = ToolCall.start(
        investigation,
        ToolCall.Agent.SIGNALS,
        "alert_onset",
        {"query": for_state_query(first.labels), "time": first.starts_at.isoformat()},
    )

    async def lookup():
        async with prometheus:
            return await pending_since(prometheus, first.labels, fired, earliest)

    try:
        since = asyncio.run(lookup())
    except (TelemetryError, OSError) as exc:
        call.end(error=f"{type(exc).__name__}: {exc}; the scan starts from startsAt")
        return first.starts_at
    name = first.alertname or "the alert"
    if since is None:
        call.end(
            output={"fired_at": fired, "pending_since": None},
            output_text=f"{name}: no pending state recorded (a rule without `for`, or "
            "evaluated elsewhere); the scan starts from its startsAt",
        )
        return first.starts_at
    call.end(
        output={"fired_at": fired, "pending_since": since},
        output_text=f"{name} was pending from "
        f"{datetime.fromtimestamp(since, UTC):%H:%M:%S} UTC, {fired - since:.0f} s before it "
        "fired (its rule's `for`); the scan starts from then",
    )
    return datetime.fromtimestamp(since, UTC)


def scan_windows_from(first_start, scope):
    """The signal scan's windows: the incident opens ROOTLINE_SIGNALS_LOOKBACK before the
    first alert (tighter than the scope's window, so an earlier, unrelated change is not
    mistaken for this one) and the baseline is the ROOTLINE_BASELINE_WINDOW before that."""
    start = min(first_start - settings.ROOTLINE_SIGNALS_LOOKBACK, scope.incident_end)
    return (start - settings.ROOTLINE_BASELINE_WINDOW, start), (start, scope.incident_end)


def signals_step(investigation, scope):
    """Scan metrics and logs in scope, rank the services; returns (suspects, unchecked,
    evidence_steps: the step number of each scan that ran, by evidence kind)."""
    first_start = alert_start(investigation, scope)
    baseline, incident = scan_windows(first_start, scope)
    windows = {
        "baseline": [baseline[0].isoformat(), baseline[1].isoformat()],
        "incident": [incident[0].isoformat(), incident[1].isoformat()],
    }
    unchecked, read_logs = scope_labels_step(investigation, scope, (baseline[0], incident[1]))
    gaps, read = service_label_step(investigation, scope, (baseline[0], incident[1]))
    unchecked, read_logs = unchecked + gaps, read_logs and read
    service_label = scope.service_label or settings.ROOTLINE_SERVICE_LABELS[0]
    selector = scope.query_selector
    prometheus = PrometheusClient.from_settings()
    loki = LokiClient.from_settings() if read_logs else None
    calls = {}
    if prometheus:
        calls["metrics"] = ToolCall.start(
            investigation, ToolCall.Agent.SIGNALS, "scan_metrics", {"query": selector, **windows}
        )
    else:
        unchecked.append("metrics (ROOTLINE_PROMETHEUS_URL is not set)")
    if loki:
        calls["logs"] = ToolCall.start(
            investigation,
            ToolCall.Agent.SIGNALS,
            "scan_logs",
            {"query": signals.logs.error_query(scope.log_selector), **windows},
        )
        calls["paths"] = ToolCall.start(
            investigation,
            ToolCall.Agent.SIGNALS,
            "scan_paths",
            {"query": signals.paths.path_query(scope.log_selector), **windows},
        )
    elif read_logs:
        unchecked.append("logs (ROOTLINE_LOKI_URL is not set)")
    metric_scan, log_scan, path_scan = asyncio.run(
        run_scans(prometheus, loki, scope, service_label, baseline, incident)
    )
    scans = {"metrics": metric_scan, "logs": log_scan, "paths": path_scan}
    described = {
        "metrics": lambda scan: _describe_metric_scan(scan, service_label),
        "logs": _describe_log_scan,
        "paths": _describe_path_scan,
    }
    named = {"metrics": "metrics", "logs": "logs", "paths": "request paths"}
    for name, call in calls.items():
        scan = scans[name]
        if isinstance(scan, Exception):
            unchecked.append(f"{named[name]}: {scan}")
            call.end(error=f"{type(scan).__name__}: {scan}")
            scans[name] = None
        else:
            call.end(*described[name](scan))
    metric_scan = scans["metrics"]
    if metric_scan:
        said = any(line.startswith(f"{METRICS}:") for line in unchecked)  # by the check
        if not metric_scan.series_found and not said:
            unchecked.append(
                f"{METRICS}: no series under {selector} between {baseline[0]:%H:%M} and "
                f"{incident[1]:%H:%M} UTC, so no metric could be compared"
            )
        unchecked += _metric_gaps(metric_scan, incident[1])
        credit_alerts(investigation, scope, service_label, metric_scan)
    metric_scores = metric_scan.scores if metric_scan else []
    service_logs = scans["logs"].services if scans["logs"] else {}
    service_paths = scans["paths"].services if scans["paths"] else {}
    alerting = alerting_services(investigation, scope)
    with step(
        investigation,
        ToolCall.Agent.SIGNALS,
        "rank_suspects",
        {"service_label": service_label, "alerting_services": alerting},
    ) as call:
        suspects = signals.rank_suspects(
            metric_scores,
            service_logs,
            service_label,
            services_in_scope=scope.services,
            service_paths=service_paths,
            alert_start=first_start.timestamp() if first_start else None,
            alerting_services=alerting,
            calls=metric_scan.calls if metric_scan else (),
        )
        ranked = [s.as_dict() for s in suspects if s.score > 0]
        call.result = (
            {"suspects": ranked},
            "; ".join(
                f"{n}. {s['service']} ({s['score']:.2f})" for n, s in enumerate(ranked[:5], 1)
            )
            or "no service changed clearly",
        )
    investigation.suspects = ranked
    investigation.save(update_fields=["suspects"])
    evidence_steps = {
        kind: calls[name].sequence
        for kind, name in (
            ("metric", "metrics"),
            ("silence", "metrics"),
            ("rollout", "metrics"),
            ("logs", "logs"),
            ("paths", "paths"),
        )
        if name in calls and calls[name].status == ToolCall.Status.OK
    }
    return [s for s in suspects if s.score > 0], unchecked, evidence_steps


def scope_labels_step(investigation, scope, window):
    """Look up the scope's labels in each store over `window` (signals.stores) and leave
    out of a store's selectors those it holds nothing with; saves the scope. Returns the
    report's "Not checked" lines and whether Loki is to be read. A store that cannot be
    asked is read as the scope says (its scan says what failed)."""
    clients = _signal_clients()
    if not scope.matchers or not clients:
        return [], True
    call = ToolCall.start(
        investigation,
        ToolCall.Agent.SIGNALS,
        "check_scope_labels",
        {"matchers": scope.matchers, "window": [t.isoformat() for t in window]},
    )
    renamed = {LOGS: settings.ROOTLINE_LOKI_LABELS}
    checks = _per_store(
        clients,
        lambda store, client: check_store(
            client, store, scope.matchers, *window, renamed=renamed.get(store)
        ),
    )
    failed = {store: c for store, c in checks.items() if isinstance(c, Exception)}
    checks = {store: c for store, c in checks.items() if store not in failed}
    if not checks:
        call.end(error="; ".join(f"{store}: {exc}" for store, exc in failed.items()))
        return [], True
    settle(checks)
    scope.unstored = {store: c.unstored for store, c in checks.items() if c.unstored}
    scope.log_labels = checks[LOGS].renamed if LOGS in checks else {}
    investigation.scope = scope.as_dict()
    investigation.save(update_fields=["scope"])
    output = {store: c.as_dict() for store, c in checks.items()}
    output.update({store: {"error": str(exc)} for store, exc in failed.items()})
    call.end(
        output=output,
        output_text="; ".join(
            [
                *(c.summary() for c in checks.values()),
                *(f"{store}: could not check ({exc})" for store, exc in failed.items()),
            ]
        ),
    )
    logs = checks.get(LOGS)
    return [gap for c in checks.values() for gap in c.gaps(window)], not (logs and logs.skipped)


def service_label_step(investigation, scope, window):
    """The labels that name services, where the scope leaves them open, looked up over
    `window`; saves the scope and returns (the report's "Not checked" lines, whether Loki
    is to be read).

    - metrics: where no alert (or question) names a service, the first of
      ROOTLINE_SERVICE_LABELS (each under its OpenTelemetry name too) that the series in
      scope hold, so that a store labelled by `app` is scanned by `app`;
    - logs: where no label bounds the scope, Loki's selector is every stream with a
      service label (Scope.log_selector); where Loki holds no stream with it (alerts on
      `job` and a Loki fed through OpenTelemetry, which names services `service_name`),
      the first of those labels it holds names the services in Loki instead, and with
      none Loki is not read: such a selector would match nothing, and say nothing.
    """
    clients = _signal_clients()
    if scope.service_label:
        clients.pop(METRICS, None)
    if scope.matchers:
        clients.pop(LOGS, None)
    if not clients:
        return [], True
    match = scope.selector if scope.stored_matchers(METRICS) else None
    call = ToolCall.start(
        investigation,
        ToolCall.Agent.SIGNALS,
        "find_service_label",
        {
            "stores": list(clients),
            "labels": settings.ROOTLINE_SERVICE_LABELS,
            **({"match": match} if match and METRICS in clients else {}),
            "window": [t.isoformat() for t in window],
        },
    )

    def names(store, client):
        if store == METRICS:
            return client.labels(*window, match=[match] if match else None)
        return client.labels(*window)

    answers = _per_store(clients, names)
    output, said, gaps, read_logs = {}, [], [], True
    for store, held in answers.items():  # the metric store first: it names the label
        if isinstance(held, Exception):  # the scans read as before, and say it
            output[store] = {"error": str(held)}
            said.append(f"{clients[store].config.name}: could not check ({held})")
            continue
        found = held_names(settings.ROOTLINE_SERVICE_LABELS, held)
        if store == METRICS:
            label, line, gap = _metric_service_label(scope, found, match)
        else:
            label, line, gap = _log_service_label(scope, held, found)
            read_logs = label is not None
        output[store] = {"service_label": label}
        said.append(line)
        gaps += gap
    if all("error" in answer for answer in output.values()):
        call.end(error="; ".join(said))
        return [], True
    investigation.scope = scope.as_dict()
    investigation.save(update_fields=["scope"])
    call.end(output=output, output_text="; ".join(said))
    return gaps, read_logs


def _metric_service_label(scope, found, match):
    """(the label that names services in the metric store, or None; the timeline's line;
    the report's gaps), `found` the service labels its series under `match` hold; sets
    the scope's service label."""
    where = f"under {match}" if match else "in the store"
    wanted = ", ".join(settings.ROOTLINE_SERVICE_LABELS)
    if found:
        scope.service_label = found[0]
        return found[0], f"Prometheus names services by {found[0]}", []
    gap = (
        f"{METRICS}: no series {where} has a label that names a service ({wanted}, nor their "
        "OpenTelemetry names), so no change could be told to be a service's: "
        "ROOTLINE_SERVICE_LABELS names such labels"
    )
    return None, f"Prometheus: no series {where} has {wanted}", [gap]


def _log_service_label(scope, held, found):
    """As _metric_service_label, for Loki, whose label names are `held`: the scope's
    service label as Loki names it, else the first service label it holds (saved in the
    scope's log_labels), else None: Loki is not read."""
    wanted = ", ".join(settings.ROOTLINE_SERVICE_LABELS)
    label = scope.service_label or settings.ROOTLINE_SERVICE_LABELS[0]
    named = scope.loki_labels.get(label, label)
    if named in held or not held:  # with nothing at all there, nothing is missing
        return named, f"Loki names services by {named}" if held else "Loki: holds nothing", []
    if found:
        scope.log_labels = {**scope.log_labels, label: found[0]}
        line = f"Loki: no stream has {named}: services named by {found[0]}"
        # OpenTelemetry's job is service_namespace/service_name: the namespace bounds
        # Loki's streams by their own label, where Loki holds it.
        otel = (label, found[0]) == (NAMESPACED_LABEL, OTEL_SERVICE_NAME)
        if otel and scope.service_namespace and OTEL_SERVICE_NAMESPACE in held:
            scope.log_labels[OTEL_SERVICE_NAMESPACE] = OTEL_SERVICE_NAMESPACE
            line += f", bounded by {OTEL_SERVICE_NAMESPACE}"
        return found[0], line, []
    gap = (
        f"{LOGS}: Loki holds no stream with {named} or any other label that names a service "
        f"({wanted}, nor their OpenTelemetry names), and no label bounds the scope, so its "
        "streams were not read: ROOTLINE_LOKI_LABELS maps a label to Loki's name for it"
    )
    return None, f"Loki: no stream has {named}, nor {wanted}: not read", [gap]


def _signal_clients():
    """{store: its client}, of the stores configured (METRICS: Prometheus, LOGS: Loki)."""
    clients = {METRICS: PrometheusClient.from_settings(), LOGS: LokiClient.from_settings()}
    return {store: client for store, client in clients.items() if client}


def _per_store(clients, work):
    """{store: what `work(store, client)` gave, or the telemetry failure that stopped it}
    for each of `clients` ({store: client}), at once, with every client open; `work`
    returns an awaitable."""

    async def run():
        async with AsyncExitStack() as stack:
            for client in clients.values():
                await stack.enter_async_context(client)
            return await asyncio.gather(
                *(_guarded(work(store, client)) for store, client in clients.items())
            )

    return dict(zip(clients, asyncio.run(run()), strict=True))


def _metric_gaps(scan, end):
    """What a metric scan that ran could still not check, as the report's "Not checked"
    lines: metrics the store failed to answer for, metrics over the cap, and the minutes
    before `end` (a datetime) that the store had no sample of."""
    gaps = []
    if scan.errors:  # the store answered, but not for every metric
        gaps.append(
            f"metrics: {len(scan.errors)} of {scan.metrics} metrics could not be read, "
            f"e.g. {scan.errors[0]}"
        )
    if scan.left_out:
        gaps.append(
            f"metrics: {len(scan.left_out)} of {scan.metrics} metrics were not read, over "
            f"the scan's cap of {MAX_SERIES} series even as one series per service, e.g. "
            f"{', '.join(scan.left_out[:3])}"
        )
    if scan.newest is not None:
        gaps.append(
            f"metrics: no series in scope has a sample after {clock(scan.newest)}, "
            f"{end.timestamp() - scan.newest:.0f} s before the scan's end (the store is "
            "behind, or nothing in scope was scraped since): what changed after it could not "
            "be seen, and series that stopped were judged up to it"
        )
    return gaps


def credit_alerts(investigation, scope, service_label, scan):
    """Name as the alerting services the services that own the alerts' pods (see
    signals.metrics.pod_owners), where an alert names a pod and its service label names an
    exporter, as kube-state-metrics' alerts do: a crash-looping container's alert says
    service="...-kube-state-metrics", pod="cart-...". `scan` is the metric scan, whose
    workload labels are the store's names for them. Saved in the scope."""
    alerting = set()
    for alert in investigation.alerts.all():
        labels = credit(alert.labels, scan.owners, service_label, scan.workload_labels)
        alerting.add(labels.get(service_label))
    alerting.discard(None)
    if alerting and alerting != set(scope.services):
        scope.services = sorted(alerting)
        investigation.scope = scope.as_dict()
        investigation.save(update_fields=["scope"])


async def run_scans(prometheus, loki, scope, service_label, baseline, incident):
    """The scans at once: metrics, error-like log lines, request paths; each result is the
    scan, the exception that stopped it, or None for a backend that is not configured.
    Logs are read and named in Loki's names for the labels (Scope.loki_labels)."""
    renamed = scope.loki_labels
    labels = [service_label, *settings.ROOTLINE_SERVICE_LABELS]
    labels = list(dict.fromkeys([*(renamed.get(name, name) for name in labels), *labels]))
    if service_label == NAMESPACED_LABEL:  # as OpenTelemetry forms it where Loki has none
        labels = list(dict.fromkeys([NAMESPACED_LABEL, *labels]))
    selector, log_selector = scope.query_selector, scope.log_selector
    now = incident[1]

    async with AsyncExitStack() as clients:
        for client in (prometheus, loki):
            if client:
                await clients.enter_async_context(client)
        metric_scan = asyncio.ensure_future(
            _guarded(
                signals.scan_metrics(
                    prometheus,
                    selector,
                    baseline,
                    incident,
                    now=now,
                    service_label=service_label,
                    workload_labels=settings.ROOTLINE_WORKLOAD_LABELS,
                )
            )
            if prometheus
            else _nothing()
        )

        async def pods():
            """Whose each pod is, as the metric scan found: logs name services as metrics."""
            owners = getattr(await metric_scan, "owners", None) or {}
            return {(renamed.get(name, name), value): s for (name, value), s in owners.items()}

        owners = asyncio.ensure_future(pods())  # awaited by each scan once it has read
        scans = (signals.scan_logs, signals.scan_paths)
        return await asyncio.gather(
            metric_scan,
            *(
                _guarded(
                    scan(loki, log_selector, labels, baseline, incident, now=now, owners=owners)
                )
                if loki
                else _nothing()
                for scan in scans
            ),
        )


async def _nothing():
    return None


async def _guarded(awaitable):
    """What `awaitable` gives, or the telemetry failure that stopped it."""
    try:
        return await awaitable
    except (TelemetryError, OSError) as exc:
        return exc


def _describe_metric_scan(scan, service_label):
    histograms = (
        f" ({len(scan.histograms)} histogram{'s' * (len(scan.histograms) != 1)} read as "
        f"{'their' if len(scan.histograms) != 1 else 'its'} {percentile(HISTOGRAM_QUANTILE)})"
        if scan.histograms
        else ""
    )

    def entry(series):
        return {**series.as_evidence(service_label), "service": series.labels.get(service_label)}

    top = [entry(s) for s in scan.scores[:20]]
    saturated = [entry(s) for s in scan.scores if s.saturated is not None][:20]

    def services(changed):
        return Counter(
            s.labels[service_label]
            for s in scan.scores
            if changed(s) and s.labels.get(service_label)
        )

    stopped = services(lambda s: s.stopped is not None)
    restarted = services(lambda s: s.restarted is not None)
    taken_over = services(lambda s: s.replaces is not None)
    text = (
        f"{scan.series_found} series of {scan.metrics} metrics scanned"
        f"{' (capped)' if scan.truncated else ''}"
        f"{f' ({len(scan.aggregated)} read per service, over the cap)' if scan.aggregated else ''}"
        f"{f' ({len(scan.left_out)} left out, over the cap)' if scan.left_out else ''}"
        f"{histograms}"
        f"{f' at a {scan.step_seconds} s step' if scan.step_seconds != STEP_SECONDS else ''}; "
        + "".join(
            f"saturated: {t['metric']} of {t['service']} ({percent(t['saturated'])}); "
            for t in saturated[:5]
        )
        + "".join(
            f"{what}: "
            + ", ".join(f"{n} series of {service}" for service, n in found.most_common(5))
            + "; "
            for what, found in (
                ("stopped reporting", stopped),
                ("started over", restarted),
                ("taken over by new pods", taken_over),
            )
            if found
        )
        + (
            "most abnormal: "
            + "; ".join(f"{metric_label(t)} of {t['service']} ({t['score']:.1f})" for t in top[:5])
            if top
            else "no series"
        )
    )
    if scan.errors:
        text += f"; {len(scan.errors)} metric(s) could not be read"
    if scan.newest is not None:
        text += f"; no sample after {clock(scan.newest)}"
    output = {
        "series": scan.series_found,
        "metrics": scan.metrics,
        "truncated": scan.truncated,
        "aggregated": scan.aggregated[:20],
        "left_out": scan.left_out[:20],
        "histograms": scan.histograms[:20],
        "step_seconds": scan.step_seconds,
        "top": top,
        "saturated": saturated,
        "stopped": dict(stopped.most_common(20)),
        "restarted": dict(restarted.most_common(20)),
        "taken_over": dict(taken_over.most_common(20)),
        "errors": scan.errors[:20],
        "newest": scan.newest,
    }
    return output, text


def _describe_log_scan(scan):
    ranked = sorted(scan.services.values(), key=lambda s: s.score, reverse=True)
    text = f"{scan.lines[0]} baseline and {scan.lines[1]} incident error-like lines" + (
        " (capped)" if scan.truncated else ""
    )
    if ranked:
        text += "; most: " + "; ".join(
            f"{s.service} ({s.incident_lines}, {s.new_template_lines} new)" for s in ranked[:5]
        )
    output = {
        "query": scan.query,
        "lines": list(scan.lines),
        "truncated": scan.truncated,
        "services": [{"service": s.service, **s.as_evidence()} for s in ranked[:20]],
    }
    return output, text


def _describe_path_scan(scan):
    ranked = sorted(scan.services.values(), key=lambda s: s.score, reverse=True)
    reference, control, incident = scan.requests
    if not any(scan.requests):
        text = f"{scan.lines} lines with a trace id; no request paths to compare"
    else:
        text = (
            f"{scan.lines} lines, {reference + control} baseline and {incident} incident "
            "requests by trace id" + (" (capped)" if scan.truncated else "")
        )
    if ranked and ranked[0].score > 0:
        text += "; diverged at: " + "; ".join(
            f"{s.service} ({s.incident_diverged}, baseline {s.baseline_diverged})"
            for s in ranked[:5]
            if s.score > 0
        )
    output = {
        "query": scan.query,
        "lines": scan.lines,
        "requests": dict(zip(("reference", "control", "incident"), scan.requests, strict=True)),
        "truncated": scan.truncated,
        "services": [{"service": s.service, **s.as_evidence()} for s in ranked[:20]],
    }
    return output, text


def alerting_services(investigation, scope):
    """The services the investigation's alerts fired on; none for a question, whose scope
    may name a service that no alert fired on."""
    return scope.services if investigation.alerts.exists() else []


def report_step(investigation, scope, suspects, unchecked, evidence_steps=None):
    """The signals-only report (the agents, when configured, come in a later step)."""
    with step(investigation, ToolCall.Agent.SIGNALS, "signals_report") as call:
        report, text = signals.build_report(
            suspects,
            alerting_services=set(alerting_services(investigation, scope)),
            unchecked=unchecked,
            evidence_steps=evidence_steps,
        )
        call.result = (report, text)
    investigation.report = report
    investigation.report_text = text
    investigation.save(update_fields=["report", "report_text"])


async def _write(function, *args, **kwargs):
    """Run one timeline write to its end, even if the agent awaiting it is cancelled
    meanwhile (a sibling analyst failed): cancelling the await of a write still queued
    for the database thread drops the write, and its step would stay `running` for ever.
    Returns (the write's result, whether the agent was cancelled meanwhile)."""
    write = asyncio.ensure_future(sync_to_async(function)(*args, **kwargs))
    cancelled = False
    while not write.done():
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            cancelled = True
    return write.result(), cancelled


class TimelineRecorder:
    """Writes the agents' turns and tool calls as ToolCall rows as they start and end.

    Called from the agents' event loop; each write runs in one thread set aside for the
    database (sync_to_async, thread-sensitive), so the timeline's sequence stays ordered.
    A write always completes; a cancelled agent is told so (CancelledError) after it, and
    a step started as its agent was cancelled is ended at once.
    """

    def __init__(self, investigation):
        self.investigation = investigation

    async def cancelled(self):
        return await sync_to_async(
            Investigation.objects.filter(
                pk=self.investigation.pk, status=Investigation.Status.CANCELLED
            ).exists
        )()

    async def _started(self, agent, tool, tool_input, parent):
        call, cancelled = await _write(
            ToolCall.start, self.investigation, agent, tool, tool_input, parent=parent
        )
        if cancelled:  # the agent will never end it
            await _write(call.end, error="cancelled")
            raise asyncio.CancelledError
        return call

    async def _ended(self, call, **fields):
        _, cancelled = await _write(call.end, **fields)
        if cancelled:
            raise asyncio.CancelledError

    async def turn_started(self, agent, parent, iteration):
        return await self._started(agent, "llm_turn", {"iteration": iteration}, parent)

    async def turn_ended(self, call, answer=None, text="", error=""):
        if answer is None:
            await self._ended(call, error=error)
            return
        message = answer.message
        usage = message.usage
        cached = usage.cache_read_input_tokens or 0
        written = usage.cache_creation_input_tokens or 0
        output = {
            "model": message.model,
            "stop_reason": message.stop_reason,
            "latency_ms": answer.latency_ms,
            "attempts": answer.attempts,
            "waited_ms": answer.waited_ms,
            "usage": {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "cache_read_input_tokens": cached,
                "cache_creation_input_tokens": written,
            },
            "tool_uses": [b.name for b in message.content if b.type == "tool_use"],
        }
        await self._ended(
            call,
            output=output,
            output_text=text,
            input_tokens=usage.input_tokens + cached + written,
            output_tokens=usage.output_tokens,
        )

    async def tool_started(self, agent, parent, name, tool_input):
        return await self._started(agent, name, tool_input, parent)

    async def tool_ended(self, call, outcome):
        await self._ended(
            call,
            output=outcome.data,
            output_text=outcome.text,
            error=outcome.text if outcome.is_error else "",
        )


def agents_step(investigation):
    """The Claude team, when a key is configured; its report replaces the signals-only one.

    If the model cannot be reached (after retries) or ends without a report, the
    signals-only report stands and the reason is recorded on it and on the investigation.
    """
    if not settings.ANTHROPIC_API_KEY:
        return
    result, error = run_team(investigation)
    fields = ["model", "input_tokens", "output_tokens", "cached_tokens", "cost_usd"]
    if result is not None and result.final_input is not None:
        submitted, withheld = team.withhold_prompt_text_in(result.final_input)
        report = {"source": "agents", **submitted, "signals": investigation.report}
        if withheld:
            report["prompt_text_withheld"] = withheld
        investigation.report = report
        investigation.report_text = render_report(report)
        investigation.conversation = result.messages
        fields += ["report", "report_text", "conversation"]
    else:
        error = error or f"the agents ended without a report: {result.error or result.stop}"
        investigation.report = {**investigation.report, "agents_error": error}
        investigation.report_text += f"\n\nThe agents did not report: {error}"
        investigation.error = error
        fields += ["report", "report_text", "error"]
    investigation.save(update_fields=fields)


def run_team(investigation, question=None, parent=None):
    """Run the lead and its analysts on `investigation` (a follow-up `question` continues
    its conversation); adds their usage to its totals. Returns (AgentResult or None,
    error): None and the reason when the model could not be reached."""
    context = build_context(investigation)
    brief = team.briefing(
        context,
        investigation.suspects,
        (investigation.report or {}).get("summary", ""),
        asked=investigation.question,
    )
    budget = Budget(
        settings.ROOTLINE_LLM_TOKEN_BUDGET,
        settings.ROOTLINE_LLM_TIME_BUDGET.total_seconds(),
        settings.ROOTLINE_LLM_COMPACT_AT_TOKENS,
    )
    limits = {
        "lead_iterations": settings.ROOTLINE_LLM_LEAD_ITERATIONS,
        "specialist_iterations": settings.ROOTLINE_LLM_SPECIALIST_ITERATIONS,
    }

    async def main():
        try:
            return await team_run()
        finally:
            # The recorder's writes ran in asgiref's database thread: close its
            # connection, or it outlives the investigation.
            await sync_to_async(connections.close_all)()

    async def team_run():
        async with AsyncExitStack() as stack:
            for name, client in (
                ("loki", LokiClient.from_settings()),
                ("prometheus", PrometheusClient.from_settings()),
            ):
                if client is not None:
                    setattr(context, name, await stack.enter_async_context(client))
            llm = LLM.from_settings()
            # Its HTTP connections belong to this event loop: closed before it ends.
            stack.push_async_callback(llm.client.close)
            return await team.investigate(
                context,
                brief,
                llm=llm,
                budget=budget,
                recorder=TimelineRecorder(investigation),
                settings=limits,
                history=list(investigation.conversation) if question else None,
                question=question,
                parent=parent,
            )

    result, error = None, ""
    try:
        result = asyncio.run(main())
    except LLMUnavailable as exc:
        error = f"the agents could not run: {exc}"
    usage = budget.usage
    investigation.model = settings.ROOTLINE_LLM_MODEL
    investigation.input_tokens += usage[0] + usage[2] + usage[3]
    investigation.output_tokens += usage[1]
    investigation.cached_tokens += usage[3]
    spent = cost_usd(settings.ROOTLINE_LLM_MODEL, usage, settings.ROOTLINE_LLM_PRICES)
    investigation.cost_usd += Decimal(f"{spent:.4f}")
    return result, error


def answer_followup(investigation_id, index):
    """Answer follow-up question `index` of a completed investigation, continuing the
    lead's conversation; its steps are appended to the timeline under the question."""
    investigation = Investigation.objects.get(pk=investigation_id)
    entry = investigation.followups[index]
    if not settings.ANTHROPIC_API_KEY:
        _answered(investigation, index, error="no model is configured (ANTHROPIC_API_KEY)")
        return
    question = ToolCall.start(
        investigation, ToolCall.Agent.LEAD, "follow_up_question", {"question": entry["question"]}
    )
    try:
        result, error = run_team(investigation, question=entry["question"], parent=question)
    except Cancelled:
        question.end(error="cancelled")
        return
    if result is not None and result.final_input is not None:
        answer, _ = team.withhold_prompt_text_in(result.final_input)
        investigation.conversation = result.messages
        investigation.save(
            update_fields=[
                "conversation",
                "model",
                "input_tokens",
                "output_tokens",
                "cached_tokens",
                "cost_usd",
            ]
        )
        question.end(output=answer, output_text=answer["answer"])
        _answered(investigation, index, answer=answer["answer"], steps=answer.get("steps", []))
    else:
        error = error or f"no answer: {result.error or result.stop}"
        question.end(error=error)
        _answered(investigation, index, error=error)


def _answered(investigation, index, answer="", steps=(), error=""):
    with transaction.atomic():
        row = Investigation.objects.select_for_update().get(pk=investigation.pk)
        row.followups[index].update(
            status="failed" if error else "answered",
            answer=answer,
            steps=list(steps),
            error=error,
            answered_at=timezone.now().isoformat(),
        )
        row.save(update_fields=["followups"])


def render_report(report):
    """The agents' report as Markdown, for pages, admin and notifications; evidence cites
    its timeline steps as links (#step-N on the investigation page)."""
    root = report.get("root_cause") or {}
    lines = [
        report.get("summary", ""),
        "",
        f"**Root cause:** {root.get('service', '?')}: {root.get('description', '')}",
        "",
        f"**Confidence:** {report.get('confidence', 0):.0%}",
        "",
        "### Suspects",
        "",
        *(
            f"{n}. **{s['service']}** ({s['likelihood']:.0%}): {s['reason']}"
            for n, s in enumerate(report.get("suspects", []), 1)
        ),
        "",
        "### Evidence",
        "",
        *(f"- {e['claim']} ({step_links(e['steps'])})" for e in report.get("evidence", [])),
        "",
        "### Remediation",
        "",
        *(f"- {r}" for r in report.get("remediation", [])),
        "",
        "### Follow-up checks",
        "",
        *(f"- {c}" for c in report.get("follow_up_checks", [])),
    ]
    # What the signal scan could not read (a backend down, slow, refusing): said whatever
    # the model wrote, so a reader knows which evidence the report lacks.
    unchecked = (report.get("signals") or {}).get("unchecked") or []
    if unchecked:
        lines += ["", "### Not checked", "", *(f"- {u}" for u in unchecked)]
    if withheld := report.get("prompt_text_withheld"):
        lines += [
            "",
            f"_Rootline withheld {withheld} passage(s) of this report that copied its "
            "instructions to the agents: something the model read (a log line, a label) "
            "may have steered it. The timeline shows what the model did._",
        ]
    return "\n".join(lines).strip()


def step_links(numbers):
    """Markdown links to timeline steps: [step 3](#step-3), [step 7](#step-7)."""
    return ", ".join(f"[step {n}](#step-{n})" for n in numbers) or "no step cited"


def sweep_stale(now=None):
    """Re-queue or end investigations that no worker is running any more; returns how many.

    A worker that is killed or hangs leaves its investigation `running`. django-q2 hands
    an unacknowledged task to another worker after its retry time, and the claim takes the
    investigation over (refreshing started_at) while it has attempts left, or `run` ends it
    failed (give_up) when it has none; but a task django-q2 killed at its timeout
    is acknowledged as failed and never comes back. So an investigation still `running`
    once timeout + retry grace have passed since its start has no worker: it is queued
    again while attempts remain, else it ends `failed`, saying why.
    """
    now = now or timezone.now()
    attempts = settings.Q_CLUSTER["max_attempts"]
    timeout = settings.ROOTLINE_INVESTIGATION_TIMEOUT
    abandoned = now - timeout - settings.ROOTLINE_TASK_RETRY_GRACE - STALE_GRACE
    stale = Investigation.objects.filter(
        status=Investigation.Status.RUNNING, started_at__lt=abandoned
    )
    swept = 0
    for investigation in stale:
        if investigation.attempts < attempts:
            with transaction.atomic():
                requeued = Investigation.objects.filter(
                    pk=investigation.pk, status=Investigation.Status.RUNNING
                ).update(status=Investigation.Status.QUEUED)
                if requeued:
                    investigation.enqueue()
            log.warning("investigation %s had no worker; queued again", investigation.pk)
        else:
            give_up(investigation)
        swept += 1
    return swept


def give_up(investigation):
    """End an investigation whose last attempt's worker died or hung: failed, saying why."""
    reason = (
        f"no worker finished it: attempt {investigation.attempts} of "
        f"{settings.Q_CLUSTER['max_attempts']} stopped (its worker was killed, or ran over "
        f"ROOTLINE_INVESTIGATION_TIMEOUT={settings.ROOTLINE_INVESTIGATION_TIMEOUT}) and it "
        "is not retried"
    )
    investigation.finish(Investigation.Status.FAILED, error=reason)
    log.warning("investigation %s: %s", investigation.pk, reason)
