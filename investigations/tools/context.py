"""The alert context tool, and building a ToolContext from an investigation."""

from pydantic import BaseModel

from investigations.scope import METRICS, NAMESPACED_LABEL, stored_matchers
from investigations.telemetry import TelemetryError
from investigations.tools.base import Tool, ToolContext, ToolResult
from investigations.tools.compaction import estimate_tokens

MAX_RELATED_ALERTS = 20
MAX_EXPRESSION_CHARS = 500


class NoInput(BaseModel):
    pass


def alert_dict(alert):
    """An Alert row as the tools and the timeline show it."""
    return {
        "fingerprint": alert.fingerprint,
        "status": alert.status,
        "starts_at": alert.starts_at.isoformat(),
        "ends_at": alert.ends_at.isoformat() if alert.ends_at else None,
        "labels": alert.labels,
        "annotations": alert.annotations,
        "generator_url": alert.generator_url,
        "expression": alert.expression,
        "receive_count": alert.receive_count,
    }


def build_context(investigation, *, loki=None, prometheus=None, budget_tokens=None):
    """A ToolContext for `investigation`, whose scope step has run (sync: reads the DB).

    Related alerts are the other episodes of the same Alertmanager group seen within the
    baseline and incident windows.
    """
    from django.conf import settings

    from alerts.models import Alert

    alerts = list(investigation.alerts.order_by("starts_at"))
    related = []
    if investigation.group_key:
        related = list(
            Alert.objects.filter(
                group_key=investigation.group_key,
                starts_at__gte=investigation.baseline_start,
                starts_at__lte=investigation.incident_end,
            )
            .exclude(pk__in=[a.pk for a in alerts])
            .order_by("-starts_at")[:MAX_RELATED_ALERTS]
        )
    return ToolContext(
        now=investigation.incident_end,
        incident=(investigation.incident_start, investigation.incident_end),
        baseline=(investigation.baseline_start, investigation.incident_start),
        scope=investigation.scope,
        alerts=[alert_dict(a) for a in alerts],
        related_alerts=[alert_dict(a) for a in related],
        loki=loki,
        prometheus=prometheus,
        budget_tokens=budget_tokens or settings.ROOTLINE_TOOL_BUDGET_TOKENS,
    )


async def alert_context(context, params):
    scope = context.scope or {}
    in_loki = f" (in Loki: {scope['log_selector']})" if scope.get("log_selector") else ""
    lines = [
        f"Scope {scope.get('selector', '{}')}{in_loki}; services: "
        f"{', '.join(scope.get('services') or []) or 'none named'}",
        f"Baseline {context.baseline[0]:%Y-%m-%d %H:%M}..{context.baseline[1]:%H:%M} UTC, "
        f"incident {context.incident[0]:%Y-%m-%d %H:%M}..{context.incident[1]:%H:%M} UTC",
        f"{len(context.alerts)} alert(s) of this investigation:",
    ]
    lines += [_alert_line(a) for a in context.alerts]
    if context.related_alerts:
        lines.append(f"{len(context.related_alerts)} other alert(s) of the same group:")
        lines += [_alert_line(a) for a in context.related_alerts]
    firing_now = []
    if context.prometheus is not None:
        try:
            firing_now = [
                a for a in await context.prometheus.alerts() if _in_scope(a.labels, scope)
            ]
        except TelemetryError as exc:
            lines.append(f"(Prometheus rule alerts could not be read: {exc})")
    if firing_now:
        lines.append(f"{len(firing_now)} alert(s) the metric store's rules hold now, in scope:")
        lines += [
            f"- {a.labels.get('alertname', '?')} {a.state} since {a.active_at:%H:%M} "
            f"{_compact_labels(a.labels)}"
            for a in firing_now
        ]
    text = "\n".join(lines)
    while estimate_tokens(text) > context.budget_tokens and len(lines) > 4:
        lines.pop()
        text = "\n".join([*lines, "[more alerts not shown]"])
    return ToolResult(
        text=text,
        data={
            "scope": scope,
            "alerts": context.alerts,
            "related_alerts": context.related_alerts,
            "rule_alerts": [
                {"labels": a.labels, "state": a.state, "value": a.value} for a in firing_now
            ],
        },
    )


def _alert_line(alert):
    labels = dict(alert["labels"])
    name = labels.pop("alertname", "?")
    annotations = alert.get("annotations") or {}
    about = annotations.get("summary") or annotations.get("description") or ""
    line = (
        f"- {name} [{alert['status']}] since {alert['starts_at'][:19]}Z {_compact_labels(labels)}"
    )
    line = f"{line}: {about[:200]}" if about else line
    expression = alert.get("expression")
    return f"{line} (rule: {expression[:MAX_EXPRESSION_CHARS]})" if expression else line


def _compact_labels(labels):
    return "{" + ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname") + "}"


def _in_scope(labels, scope):
    """Whether an alert the metric store's rules hold is in scope: the store's alerts lack
    the labels its series lack (its external labels), which the scope leaves out."""
    matchers = stored_matchers(scope.get("matchers") or {}, scope.get("unstored") or {}, METRICS)
    namespace = scope.get("service_namespace")
    if namespace and not labels.get(NAMESPACED_LABEL, "").startswith(f"{namespace}/"):
        return False
    return all(labels.get(k) == v for k, v in matchers.items())


TOOLS = [
    Tool(
        name="alert_context",
        description=(
            "The alerts this investigation is about: labels, annotations (summary, "
            "description, runbook), the PromQL of the rule that raised each, start times and "
            "status, the other alerts of the same "
            "Alertmanager group, and alerts the metric store's rules hold now in the same "
            "scope; plus the scope's label matchers and the baseline and incident windows. "
            "Start here."
        ),
        input_model=NoInput,
        run=alert_context,
    ),
]
