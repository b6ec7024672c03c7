"""Which of the scope's labels each store holds, checked before the scans read anything.

An alert carries labels that no stored series has: Prometheus adds its configuration's
`global.external_labels` (cluster, region, replica) to each alert it sends, and a rule may
add labels of its own. Bounded by such a label, a scan reads nothing and finds nothing
changed. So each matcher's label is looked up in each store over the scan's time:

- held, with the matcher's value: kept;
- held by no series: left out of that store's selector, since the store can only be
  about the matcher's value, unless the Prometheus server's external labels give that
  label another value (the alerts came from another server, whose data this store does
  not hold: kept, and said; kept in a Loki that holds no such label too, which is taken
  for the metric store's cluster, see `settle`). Loki labels streams as its agents do: a Loki fed
  OpenTelemetry (OTLP) names them as it indexes resource attributes, `k8s_namespace_name`
  for `namespace`, and where it holds such a name but not the plain one the scans read it
  so (LOKI_NAMES, unless ROOTLINE_LOKI_LABELS names the label; and the other way round
  for a scope in OpenTelemetry's names, a Loki fed by Promtail). A Loki that holds
  none of the scope's labels even so is not read at all: read without them, its scans
  would mix every namespace;
- held with other values only: kept (nothing in scope is there), and said, with some of
  the values the store has.

A store that holds no label at all in that time (nothing reached it, or it keeps nothing
that old) leaves every matcher as it is: its labels are not what is missing.
"""

import asyncio
import difflib
from dataclasses import dataclass, field

from investigations.scope import LOGS, METRICS, OTEL_NAMES, quote
from investigations.telemetry.errors import QueryError, UnexpectedAnswer

HELD, UNSTORED, ELSEWHERE, OTHER = "held", "unstored", "elsewhere", "other"
# Loki's names for the scope's labels besides their own: the OpenTelemetry names of the
# resource attributes it indexes by default from OTLP (k8s_namespace_name for
# namespace), and, for a scope in those names (alerts raised on OpenTelemetry's series),
# the names a log agent such as Promtail or Alloy gives them (the first plain name of
# each: `env` for deployment_environment).
LOKI_NAMES = {
    **{otel: name for name, otel in reversed(OTEL_NAMES.items())},
    **OTEL_NAMES,
}
# Values of a label the store has, quoted where the matcher's is not among them.
MAX_VALUES_SHOWN = 5
# Loki's label names, listed where it holds none of the scope's.
MAX_LABELS_SHOWN = 12


@dataclass
class LabelCheck:
    label: str  # the scope's name for it
    stored_as: str  # the store's name for it
    value: str
    state: str = HELD
    values: list[str] = field(default_factory=list)  # some the store has (OTHER)
    external: str | None = None  # the server's external label's value (ELSEWHERE)

    def as_dict(self):
        return {
            "label": self.label,
            **({"stored_as": self.stored_as} if self.stored_as != self.label else {}),
            "value": self.value,
            "state": self.state,
            **({"values": self.values} if self.values else {}),
            **({"external": self.external} if self.external is not None else {}),
        }


@dataclass
class StoreCheck:
    store: str  # METRICS or LOGS
    labels: list[LabelCheck]
    store_labels: list[str] = field(default_factory=list)  # Loki's, where one is unstored
    empty: bool = False  # the store holds nothing at all in the time checked
    renamed: dict[str, str] = field(default_factory=dict)  # OpenTelemetry names found

    @property
    def backend(self):
        """The store as the messages name it."""
        return "Prometheus" if self.store == METRICS else "Loki"

    @property
    def unstored(self):
        """The scope's names of the labels this store's selector leaves out (none where it
        holds nothing at all: the labels are not what is missing)."""
        return [] if self.empty else [c.label for c in self.labels if c.state == UNSTORED]

    @property
    def skipped(self):
        """Whether the store is not read: a Loki that holds none of the scope's labels."""
        return self.store == LOGS and bool(self.labels) and len(self.unstored) == len(self.labels)

    def as_dict(self):
        return {
            "labels": [c.as_dict() for c in self.labels],
            **({"store_labels": self.store_labels} if self.store_labels else {}),
            **({"empty": True} if self.empty else {}),
            **({"renamed": self.renamed} if self.renamed else {}),
            "read": not self.skipped,
        }

    def summary(self):
        """One line for the timeline."""
        if self.empty:
            return f"{self.backend}: holds nothing at all in that time"
        said = []
        unit = "stream" if self.store == LOGS else "series"
        for c in self.labels:
            matcher = f"{c.stored_as}={quote(c.value)}"
            if c.state == HELD:
                said.append(f"{matcher} held")
            elif c.state == UNSTORED and self.skipped:
                said.append(f"no {unit} has {c.stored_as}")
            elif c.state == UNSTORED:
                said.append(f"no {unit} has {c.stored_as}: read without {matcher}")
            elif c.state == ELSEWHERE and self.store == LOGS:
                said.append(f"no {unit} has {c.stored_as}: kept, as the metric store's")
            elif c.state == ELSEWHERE:
                said.append(
                    f"the server's own {c.label} is {quote(c.external)}, not {quote(c.value)}"
                )
            else:
                said.append(f"{matcher} not held ({_values(c)})")
        return f"{self.backend}: " + "; ".join(said)

    def gaps(self, window):
        """The report's "Not checked" lines: what the scope's labels kept this store from
        reading. `window` is the (start, end) checked, datetimes."""
        span = f"between {window[0]:%H:%M} and {window[1]:%H:%M} UTC"
        if self.empty:
            return [
                f"{self.store}: {self.backend} holds nothing at all {span} (nothing reached it "
                "then, or it keeps nothing that old)"
            ]
        if self.skipped:
            names = ", ".join(self.store_labels[:MAX_LABELS_SHOWN]) or "none"
            return [
                f"{self.store}: {self.backend} holds none of the scope's labels "
                f"({', '.join(c.stored_as for c in self.labels)}) {span}, so its streams were "
                f"not read; its labels are: {names}. ROOTLINE_LOKI_LABELS maps a label to "
                "Loki's name for it (e.g. namespace=k8s_namespace_name)"
            ]
        gaps = []
        for c in self.labels:
            if c.state == ELSEWHERE and self.store == LOGS:
                gaps.append(
                    f"{self.store}: {self.backend} holds no {c.stored_as}, so it is taken for "
                    f"the same {c.label} as the metric store ({quote(c.external)}, not the "
                    f"alerts' {quote(c.value)}): no stream matched"
                )
            elif c.state == ELSEWHERE:
                gaps.append(
                    f"{self.store}: the alerts are from {c.label}={quote(c.value)}, but the "
                    f"{self.backend} server Rootline reads is {c.label}={quote(c.external)} "
                    "(its external labels) and holds nothing of the other: point "
                    f"ROOTLINE_{self.backend.upper()}_URL at a store that holds both (a "
                    "Thanos or Mimir querier)"
                )
            elif c.state == OTHER:
                gaps.append(
                    f"{self.store}: {self.backend} has nothing with "
                    f"{c.stored_as}={quote(c.value)} {span} ({_values(c)})"
                )
        return gaps


def settle(checks):
    """Make the stores' checks ({store: StoreCheck}) agree: a label whose value the metric
    store's own external labels place elsewhere stays in Loki's selector too where Loki
    holds no such label, since a Loki that does not tell clusters apart is taken for the
    metric store's. Otherwise this cluster's logs would be read for another's alerts."""
    if METRICS not in checks or LOGS not in checks:
        return
    elsewhere = {c.label: c.external for c in checks[METRICS].labels if c.state == ELSEWHERE}
    for c in checks[LOGS].labels:
        if c.state == UNSTORED and c.label in elsewhere:
            c.state, c.external = ELSEWHERE, elsewhere[c.label]


def _values(check):
    """Some of the values the store has, those most like the matcher's (a typo) first."""
    close = difflib.get_close_matches(check.value, check.values, n=MAX_VALUES_SHOWN)
    values = [*close, *(v for v in check.values if v not in close)]
    shown = ", ".join(quote(v) for v in values[:MAX_VALUES_SHOWN])
    more = len(values) - MAX_VALUES_SHOWN
    return f"it has {shown}" + (f" and {more} more" if more > 0 else "")


async def check_store(client, store, matchers, start, end, *, renamed=None):
    """A StoreCheck of `matchers` (the scope's {label: value}) in `client`'s store between
    `start` and `end`; `renamed` maps the scope's label names to the store's."""
    renamed = renamed or {}
    checks = [LabelCheck(name, renamed.get(name, name), value) for name, value in matchers.items()]
    await _look_up(client, checks, start, end)
    check = StoreCheck(store, checks)
    if not check.unstored:
        return check
    names = await client.labels(start, end)
    if not names:
        check.empty = True
        return check
    if store == LOGS:
        other = {
            name: loki
            for name, loki in LOKI_NAMES.items()
            if name not in renamed and name not in names and loki in names
        }
        found = [c for c in checks if c.state == UNSTORED and c.label in other]
        # Only a scope label found so makes the rest (pods, services) read so too: Loki 3
        # adds `service_name` to every stream, whatever its agent named.
        check.renamed = other if found else {}
        for c in found:
            c.stored_as = other[c.label]
        await _look_up(client, found, start, end)
    if store == METRICS:
        external = await external_labels(client)
        for c in checks:
            if c.state == UNSTORED and external.get(c.label, c.value) != c.value:
                c.state, c.external = ELSEWHERE, external[c.label]
    elif check.skipped:
        check.store_labels = sorted(names)
    return check


async def _look_up(client, checks, start, end):
    """Set each LabelCheck's state from the values the store holds of its label."""
    answers = await asyncio.gather(*(client.label_values(c.stored_as, start, end) for c in checks))
    for c, values in zip(checks, answers, strict=True):
        c.state = HELD if c.value in values else OTHER if values else UNSTORED
        c.values = [] if c.state == HELD else sorted(values)


async def external_labels(prometheus):
    """The server's external labels, {} where it does not show its configuration (Thanos
    and Mimir queriers do not; they hold such labels on the series)."""
    try:
        return await prometheus.external_labels()
    except (QueryError, UnexpectedAnswer):
        return {}
