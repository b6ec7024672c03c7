"""Where and when to look: label matchers and time windows derived from the alerts.

The alerting service is where users feel the pain, not necessarily the cause, so the
scope bounds the search by the labels every alert shares (namespace, cluster, ...) and
keeps the services as a hint, never as a filter.
"""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings

# The stores a scope's selectors are for.
METRICS, LOGS = "metrics", "logs"
# OpenTelemetry's names for the labels Prometheus' Kubernetes discovery and
# kube-state-metrics use, as Prometheus' OTLP receiver (resource attributes promoted to
# labels) and Loki (its default index labels) store the resource attributes:
# k8s.namespace.name -> k8s_namespace_name. Where a configured label is missing and its
# OpenTelemetry name is there, that name serves (`held_name`).
OTEL_NAMES = {
    "cluster": "k8s_cluster_name",
    "namespace": "k8s_namespace_name",
    "pod": "k8s_pod_name",
    "container": "k8s_container_name",
    "deployment": "k8s_deployment_name",
    "statefulset": "k8s_statefulset_name",
    "daemonset": "k8s_daemonset_name",
    "service": "service_name",
    # Prometheus' OTLP receiver sets job from service.name (after service.namespace and a
    # slash where there is one: see NAMESPACED_LABEL); Loki has no job, but service_name.
    "job": "service_name",
    "region": "cloud_region",
    "env": "deployment_environment",
    "environment": "deployment_environment",
}
# The label that names a service and its namespace together, "<namespace>/<name>": where an
# OpenTelemetry service has a service.namespace, Prometheus' OTLP receiver and the
# collector's remote write set `job` so and keep no other resource attribute on the series
# (unless told to promote them); Promtail's and Grafana Agent's Kubernetes configurations
# name `job` so too. Where no label bounds the scope, the alerts' shared namespace does, as
# a prefix of this label (`Scope.service_namespace`).
NAMESPACED_LABEL = "job"
# OpenTelemetry's names for a service's namespace and name (Loki 3 indexes both by default).
OTEL_SERVICE_NAMESPACE, OTEL_SERVICE_NAME = "service_namespace", "service_name"


@dataclass
class Scope:
    matchers: dict[str, str]
    services: list[str]
    service_label: str | None
    baseline_start: datetime
    incident_start: datetime
    incident_end: datetime
    alertnames: list[str] = field(default_factory=list)
    # Store ("metrics", "logs") -> the matchers' label names it holds no series with (a
    # Prometheus server's external labels are on its alerts, not on its series): left out
    # of that store's selector. Set by the signal scan's check (signals.stores).
    unstored: dict[str, list[str]] = field(default_factory=dict)
    # Loki's names for labels, found by that check (its OpenTelemetry names), beside
    # ROOTLINE_LOKI_LABELS: see `loki_labels`.
    log_labels: dict[str, str] = field(default_factory=dict)
    # Where no label bounds the scope and every alert's NAMESPACED_LABEL names one and the
    # same namespace ("shop" of job="shop/web"): the selectors bound it by that prefix.
    service_namespace: str | None = None

    @property
    def selector(self):
        """The matchers as a PromQL stream selector, e.g. {namespace="shop"}, without those
        the metric store does not hold."""
        return self._selector({}, METRICS)

    def _selector(self, renamed, store):
        pairs = sorted((renamed.get(k, k), v) for k, v in self.stored_matchers(store).items())
        matchers = [f"{k}={quote(v)}" for k, v in pairs] + [self._prefix(renamed)]
        return "{" + ", ".join(m for m in matchers if m) + "}"

    def _prefix(self, renamed):
        """The matcher of `service_namespace`: a prefix of NAMESPACED_LABEL, or where the
        store names services by OpenTelemetry's service_name (Loki fed through it) its
        service_namespace, if the store holds that (`renamed` has it); else ""."""
        named = renamed.get(NAMESPACED_LABEL, NAMESPACED_LABEL)
        if not self.service_namespace:
            return ""
        if named == NAMESPACED_LABEL:
            return f"{named}=~{quote(regex_literal(self.service_namespace) + '/.+')}"
        if named == OTEL_SERVICE_NAME and OTEL_SERVICE_NAMESPACE in renamed:
            return f"{OTEL_SERVICE_NAMESPACE}={quote(self.service_namespace)}"
        return ""

    @property
    def query_selector(self):
        """`selector`, or with no shared label to bound it every series with a service
        label: a query needs at least one matcher."""
        return self._query_selector({}, METRICS)

    @property
    def loki_labels(self):
        """{label: Loki's name for it}: ROOTLINE_LOKI_LABELS, and the names the check found."""
        return {**self.log_labels, **settings.ROOTLINE_LOKI_LABELS}

    @property
    def log_selector(self):
        """`query_selector` in Loki's names for its labels (`loki_labels`), without the
        matchers Loki does not hold."""
        return self._query_selector(self.loki_labels, LOGS)

    def stored_matchers(self, store):
        """The matchers of the labels `store` holds."""
        return stored_matchers(self.matchers, self.unstored, store)

    def _query_selector(self, renamed, store):
        if self.stored_matchers(store) or self._prefix(renamed):
            return self._selector(renamed, store)
        label = self.service_label or settings.ROOTLINE_SERVICE_LABELS[0]
        return "{" + renamed.get(label, label) + '=~".+"}'

    def as_dict(self):
        return {
            "matchers": self.matchers,
            **({"service_namespace": ns} if (ns := self.service_namespace) else {}),
            "selector": self.selector,
            **({"unstored": self.unstored} if any(self.unstored.values()) else {}),
            **({"log_labels": self.log_labels} if self.log_labels else {}),
            # Where Loki names the labels otherwise (ROOTLINE_LOKI_LABELS), its selector.
            **({"log_selector": log} if (log := self.log_selector) != self.query_selector else {}),
            "services": self.services,
            "service_label": self.service_label,
            "alertnames": self.alertnames,
            "baseline_window": [self.baseline_start.isoformat(), self.incident_start.isoformat()],
            "incident_window": [self.incident_start.isoformat(), self.incident_end.isoformat()],
        }


def stored_matchers(matchers, unstored, store):
    """`matchers` ({label: value}) but those of the labels `store` does not hold
    (`unstored`, as Scope's: {store: [label, ...]})."""
    left_out = unstored.get(store, ())
    return {k: v for k, v in matchers.items() if k not in left_out}


def regex_literal(text):
    """`text` as a literal in a PromQL/LogQL (RE2) regular expression."""
    return re.sub(r"[\\.+*?()|\[\]{}^$]", lambda m: "\\" + m.group(0), text)


def quote(value):
    """A label value as a double-quoted PromQL/LogQL string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=(?!~)\s*(?:"((?:[^"\\]|\\.)*)"|([^,"]*))\s*')
MAX_MATCHERS = 10
MAX_QUESTION_WINDOW = timedelta(days=7)
MIN_QUESTION_WINDOW = timedelta(minutes=1)
# Unix time 0: no metric or log store holds anything earlier, and a window (or its
# baseline) reckoned back from year 1 is not a date Python can hold.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


class ScopeError(ValueError):
    """A question's scope that cannot be investigated; the message says why."""


def parse_matchers(text):
    """`namespace="shop", service=cart` (braces optional) as {"namespace": "shop", ...}.

    Only equality: the scope bounds every query, and a regex or negative matcher there
    would hide from the investigators what it leaves out.
    """
    text = text.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    matchers = {}
    position = 0
    while position < len(text):
        match = MATCHER.match(text, position)
        if match is None or not match.group(0).strip():
            raise ScopeError(
                f"cannot read the label matchers from {text[position:][:40]!r}: only equality "
                'matchers are supported, name="value" pairs separated by commas, e.g. '
                'namespace="shop", service="cart"'
            )
        name, quoted, bare = match.groups()
        value = unescape(quoted) if quoted is not None else bare.strip()
        matchers[name] = value
        position = match.end()
        if position < len(text):
            if text[position] != ",":
                raise ScopeError(
                    f"expected a comma after {name}=…, found {text[position:][:20]!r} "
                    '(only equality matchers, name="value", are supported)'
                )
            position += 1
    return check_matchers(matchers)


def unescape(quoted):
    """The value of a double-quoted PromQL/LogQL string (the inverse of `quote`)."""
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), quoted)


def check_matchers(matchers):
    """`matchers` if each is a label name with a non-empty value, else ScopeError."""
    if len(matchers) > MAX_MATCHERS:
        raise ScopeError(f"at most {MAX_MATCHERS} label matchers, got {len(matchers)}")
    for name, value in matchers.items():
        if not isinstance(name, str) or not LABEL_NAME.fullmatch(name):
            raise ScopeError(f"{name!r} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)")
        if not isinstance(value, str) or not value:
            raise ScopeError(f"label {name} needs a non-empty value")
        if "\x00" in value:
            raise ScopeError(f"label {name}'s value must not contain a NUL character")
    return dict(matchers)


def check_window(start, end, now):
    """(start, end) of a question, checked: in order, not in the future, at most a week."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ScopeError("start and end need a time zone (e.g. 2026-11-25T10:00:00Z)")
    if start < EARLIEST:
        raise ScopeError(f"start is before {EARLIEST:%Y-%m-%d}: no store holds data that old")
    if end > now + MIN_QUESTION_WINDOW:
        raise ScopeError(f"end ({end:%Y-%m-%d %H:%M} UTC) is in the future")
    if end - start < MIN_QUESTION_WINDOW:
        raise ScopeError("start must be at least a minute before end")
    if end - start > MAX_QUESTION_WINDOW:
        raise ScopeError("the time range may span at most 7 days")
    return start, min(end, now)


def question_scope(matchers, start, end):
    """The scope of a question without alerts: the user's matchers over [start, end],
    the baseline the ROOTLINE_BASELINE_WINDOW before it."""
    service_label = next(iter(held_names(settings.ROOTLINE_SERVICE_LABELS, matchers)), None)
    return Scope(
        matchers=dict(matchers),
        services=[matchers[service_label]] if service_label else [],
        service_label=service_label,
        baseline_start=start - settings.ROOTLINE_BASELINE_WINDOW,
        incident_start=start,
        incident_end=end,
    )


def held_name(name, held):
    """`name`, or its OpenTelemetry name (OTEL_NAMES) where `held` (label names) has that
    and not `name`; None where it has neither."""
    if name in held:
        return name
    return OTEL_NAMES[name] if OTEL_NAMES.get(name) in held else None


def label_value(labels, name):
    """`labels`' value of `name`; of NAMESPACED_LABEL where they have none but are
    OpenTelemetry's (Loki's service_name, service_namespace), the job OpenTelemetry's
    Prometheus exporters give that service: "<service_namespace>/<service_name>", or the
    name alone. Else None."""
    if labels.get(name) or name != NAMESPACED_LABEL or not labels.get(OTEL_SERVICE_NAME):
        return labels.get(name) or None
    namespace = labels.get(OTEL_SERVICE_NAMESPACE)
    return f"{namespace}/{labels[OTEL_SERVICE_NAME]}" if namespace else labels[OTEL_SERVICE_NAME]


def held_names(names, held):
    """Each of `names` as `held` holds it (held_name), in order, those it lacks left out."""
    return list(dict.fromkeys(n for n in (held_name(name, held) for name in names) if n))


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
    # Alerts raised on OpenTelemetry's series carry its names (k8s_namespace_name).
    matchers = {k: shared[k] for k in held_names(settings.ROOTLINE_SCOPE_LABELS, shared)}
    named = set().union(*(a.labels for a in alerts))
    service_label = next(iter(held_names(settings.ROOTLINE_SERVICE_LABELS, named)), None)
    services = sorted({a.labels[service_label] for a in alerts if service_label in a.labels})
    namespace = None
    if not matchers and service_label == NAMESPACED_LABEL:
        namespace = shared_namespace([a.labels.get(service_label, "") for a in alerts])

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
        service_namespace=namespace,
    )


def shared_namespace(values):
    """The namespace that every one of `values` ("<namespace>/<name>") names, None where
    one names none or they differ."""
    namespaces = {value.partition("/")[0] if value.partition("/")[2] else "" for value in values}
    if len(namespaces) != 1:
        return None
    return namespaces.pop() or None
