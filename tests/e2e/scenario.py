"""The incident the end-to-end tests live through, in the `shop` namespace: orders-db runs
out of connections, then checkout, which needs it, fails.

`Outage` says what every series reads at any moment, so the same story is told by the
hour of history backfilled with promtool (`history`), by the `ScenarioExporter` that
Prometheus scrapes live, and by the log lines (`log_entries`) a Loki stub serves:

    history_end - 90 s   orders-db's active connections start climbing (in the history)
    history_end - 30 s   orders-db logs "too many clients" (and leaks a key pair)
    fail_checkout()      checkout's 5xx jump; it logs its failures, secrets and an injection
    recover()            checkout and orders-db are back to normal
"""

import math
import time
from http.server import BaseHTTPRequestHandler

from background_server import BackgroundServer

from tests.e2e.hostile import INJECTION_LINE, SECRET_LINES

NAMESPACE = "shop"
JOB = "scenario"
HISTORY_SECONDS = 65 * 60
HISTORY_STEP_SECONDS = 15
SATURATION_LEAD_SECONDS = 90
SATURATION_PER_SECOND = 1.0
IDLE_CONNECTIONS = 22
MAX_CONNECTIONS = 100
# Requests per second: (normal, while checkout fails).
CHECKOUT_OK_RATE = (40.0, 24.0)
CHECKOUT_ERROR_RATE = (0.05, 16.0)
CART_RATE = 12.0
# How long after a moment the generated log lines go on (a stub serves them as time
# passes them, as Loki would once they were pushed).
LOGS_AHEAD_SECONDS = 120
NS = 10**9

# The alert rule a real Prometheus evaluates against the live series.
ALERT_RULES = [
    {
        "name": "checkout",
        "rules": [
            {
                "alert": "CheckoutErrorRateHigh",
                "expr": (
                    'sum by (namespace, service) (rate(http_requests_total{service="checkout", '
                    'code=~"5.."}[5s])) / sum by (namespace, service) '
                    '(rate(http_requests_total{service="checkout"}[5s])) > 0.05'
                ),
                "for": "0s",
                "labels": {"severity": "critical"},
                "annotations": {
                    "summary": "checkout fails {{ $value | humanizePercentage }} of requests",
                    "runbook_url": "https://runbooks.example/checkout-errors",
                },
            }
        ],
    }
]


class Outage:
    """The series of the shop namespace as functions of time (unix seconds)."""

    def __init__(self, history_end):
        self.history_end = history_end
        self.origin = history_end - HISTORY_SECONDS
        self.saturation_from = history_end - SATURATION_LEAD_SECONDS
        self.failing_since = None
        self.recovered_at = None

    def fail_checkout(self, at=None):
        self.failing_since = time.time() if at is None else at
        return self.failing_since

    def recover(self, at=None):
        self.recovered_at = time.time() if at is None else at
        return self.recovered_at

    def _failing_seconds(self, t):
        """How long checkout had been failing by `t`."""
        if self.failing_since is None or t <= self.failing_since:
            return 0.0
        return min(t, self.recovered_at or math.inf) - self.failing_since

    def _requests(self, t, rates):
        normal, failing = rates
        return normal * (t - self.origin) + (failing - normal) * self._failing_seconds(t)

    def connections(self, t):
        idle = IDLE_CONNECTIONS + 2 * math.sin(t / 13)
        if t < self.saturation_from or (self.recovered_at and t >= self.recovered_at):
            return idle
        return min(idle + SATURATION_PER_SECOND * (t - self.saturation_from), MAX_CONNECTIONS - 2)

    def samples(self, t):
        """[(metric, type, labels, value)] at `t`."""
        shop = {"namespace": NAMESPACE}
        return [
            (
                "http_requests_total",
                "counter",
                {**shop, "service": "checkout", "code": "200"},
                self._requests(t, CHECKOUT_OK_RATE),
            ),
            (
                "http_requests_total",
                "counter",
                {**shop, "service": "checkout", "code": "500"},
                self._requests(t, CHECKOUT_ERROR_RATE),
            ),
            (
                "http_requests_total",
                "counter",
                {**shop, "service": "cart", "code": "200"},
                CART_RATE * (t - self.origin),
            ),
            (
                "pg_stat_activity_count",
                "gauge",
                {**shop, "service": "orders-db", "state": "active"},
                self.connections(t),
            ),
            (
                "pg_settings_max_connections",
                "gauge",
                {**shop, "service": "orders-db"},
                MAX_CONNECTIONS,
            ),
        ]


def _labels(labels):
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def exposition(outage, t):
    """The Prometheus text format an exporter answers at `t`."""
    lines, typed = [], set()
    for name, kind, labels, value in outage.samples(t):
        if name not in typed:
            lines.append(f"# TYPE {name} {kind}")
            typed.add(name)
        lines.append(f"{name}{_labels(labels)} {value:.3f}")
    return "\n".join(lines) + "\n"


def history(outage, target_labels):
    """The hour before `history_end` in OpenMetrics, for promtool to backfill.

    The samples carry the `job` and `instance` labels the scrape will add, so the history
    and the live scrapes are one series each.
    """
    families = {}
    t = outage.origin
    while t < outage.history_end:
        for name, kind, labels, value in outage.samples(t):
            family = name.removesuffix("_total")
            lines = families.setdefault(family, [f"# TYPE {family} {kind}"])
            lines.append(f"{name}{_labels({**labels, **target_labels})} {value:.3f} {t:.3f}")
        t += HISTORY_STEP_SECONDS
    return "\n".join([*(line for lines in families.values() for line in lines), "# EOF", ""])


class _Metrics(BaseHTTPRequestHandler):
    def do_GET(self):
        body = exposition(self.server.outage, time.time()).encode()
        self.server.scrapes += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code="-", size="-"):
        """Quiet: Prometheus scrapes every second."""


class ScenarioExporter(BackgroundServer):
    """/metrics of an Outage, on loopback; `scrapes` counts the answers."""

    thread_name = "scenario-exporter"

    def __init__(self, outage):
        super().__init__(("127.0.0.1", 0), _Metrics)
        self.outage = outage
        self.scrapes = 0

    @property
    def address(self):
        host, port = self.server_address[:2]
        return f"{host}:{port}"

    @property
    def target_labels(self):
        """The labels Prometheus adds to what it scrapes here."""
        return {"job": JOB, "instance": self.address}


def _every(start, end, seconds):
    t = start
    while t < end:
        yield t
        t += seconds


def log_entries(outage):
    """(labels, ts_ns, line) for the Loki stub: an hour of ordinary lines, orders-db's
    refusals once it saturates, and, once checkout fails, its errors with the hostile
    lines (tests.e2e.hostile) among them."""
    end = (outage.failing_since or outage.history_end) + LOGS_AHEAD_SECONDS
    entries = []

    def log(service, t, line):
        entries.append(({"namespace": NAMESPACE, "service": service}, int(t * NS), line))

    for n, t in enumerate(_every(outage.origin, end, 20)):
        log("checkout", t, f'level=info msg="POST /api/checkout 200" duration_ms={80 + n % 17}')
        log("cart", t + 3, f'level=info msg="GET /api/cart 200" items={n % 7}')
        if n % 15 == 0:
            log("checkout", t + 7, 'level=warn msg="payment provider slow" err="i/o timeout"')
        if n % 3 == 0:
            log("orders-db", t + 11, f"LOG:  checkpoint complete: wrote {100 + n % 50} buffers")
    refusing_from = outage.saturation_from + SATURATION_LEAD_SECONDS * 2 / 3
    for t in _every(refusing_from, end, 0.5):
        log("orders-db", t, "FATAL:  sorry, too many clients already")
    secrets_at = refusing_from + 5
    for service, line in SECRET_LINES:
        if service != "checkout":
            log(service, secrets_at, line)
            secrets_at += 1
    if outage.failing_since is not None:
        for t in _every(outage.failing_since, end, 1):
            log(
                "checkout",
                t,
                'level=error msg="POST /api/checkout 500" err="pq: sorry, too many clients '
                'already" upstream=orders-db',
            )
        hostile = [line for service, line in SECRET_LINES if service == "checkout"]
        for n, line in enumerate([*hostile, INJECTION_LINE, INJECTION_LINE]):
            log("checkout", outage.failing_since + 0.1 * (n + 1), line)
    return entries
