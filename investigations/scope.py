"""Where and when to look: label matchers and time windows derived from the alerts.

The alerting service is where users feel the pain, not necessarily the cause, so the
scope bounds the search by the labels every alert shares (namespace, cluster, ...) and
keeps the services as a hint, never as a filter.
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings


@dataclass
class Scope:
    matchers: dict[str, str]
    services: list[str]
    service_label: str | None
    baseline_start: datetime
    incident_start: datetime
    incident_end: datetime
    alertnames: list[str] = field(default_factory=list)

    @property
    def selector(self):
        """The matchers as a PromQL/LogQL stream selector, e.g. {namespace="shop"}."""
        pairs = ", ".join(f"{k}={quote(v)}" for k, v in sorted(self.matchers.items()))
        return "{" + pairs + "}"

    @property
    def query_selector(self):
        """`selector`, or with no shared label to bound it every series with a service
        label: a query needs at least one matcher."""
        if self.matchers:
            return self.selector
        return "{" + (self.service_label or settings.ROOTLINE_SERVICE_LABELS[0]) + '=~".+"}'

    def as_dict(self):
        return {
            "matchers": self.matchers,
            "selector": self.selector,
            "services": self.services,
            "service_label": self.service_label,
            "alertnames": self.alertnames,
            "baseline_window": [self.baseline_start.isoformat(), self.incident_start.isoformat()],
            "incident_window": [self.incident_start.isoformat(), self.incident_end.isoformat()],
        }


def quote(value):
    """A label value as a double-quoted PromQL/LogQL string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def derive_scope(alerts, now):
    """The scope of an investigation of `alerts`, as seen at `now`.

    The incident window opens ROOTLINE_INCIDENT_LOOKBACK before the first alert started
    (a fault precedes its alert by the rule's `for:` and the evaluation interval) and
    closes at `now`, or when the last alert resolved if all have. The baseline window is
    the ROOTLINE_BASELINE_WINDOW before it.
    """
    if not alerts:
        raise ValueError("an alert scope needs at least one alert")
    shared = dict(alerts[0].labels)
    for alert in alerts[1:]:
        shared = {k: v for k, v in shared.items() if alert.labels.get(k) == v}
    matchers = {k: shared[k] for k in settings.ROOTLINE_SCOPE_LABELS if k in shared}

    service_label = next(
        (
            name
            for name in settings.ROOTLINE_SERVICE_LABELS
            if any(name in a.labels for a in alerts)
        ),
        None,
    )
    services = sorted({a.labels[service_label] for a in alerts if service_label in a.labels})

    incident_start = min(a.starts_at for a in alerts) - settings.ROOTLINE_INCIDENT_LOOKBACK
    ends = [a.ends_at for a in alerts]
    incident_end = now
    if all(ends):
        incident_end = min(now, max(ends))
    incident_end = max(incident_end, incident_start)
    return Scope(
        matchers=matchers,
        services=services,
        service_label=service_label,
        baseline_start=incident_start - settings.ROOTLINE_BASELINE_WINDOW,
        incident_start=incident_start,
        incident_end=incident_end,
        alertnames=sorted({a.alertname for a in alerts if a.alertname}),
    )
