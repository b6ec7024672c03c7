"""Loki or Prometheus down, slow or answering 500: the investigation completes, and its
report says which evidence is missing.

Whole investigations through the runner, over real HTTP on loopback: the healthy backend
is a real Prometheus (the metric scan's scenario of tests/investigations/signals/
test_metric_scan.py, where `db` is the cause) or bench/loki_stub.py serving `db`'s new
errors; the faulty one is a closed port, a server that answers only after
ROOTLINE_<B>_TIMEOUT, or one that answers 500. Signals-only, and with the agents (the
scripted Messages-API server through the real SDK), whose tools meet the same fault.
"""

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta
from http.server import BaseHTTPRequestHandler

import pytest
import scripted_messages as scripted
from background_server import BackgroundServer
from loki_stub import LogStore
from loki_stub import serve as serve_loki

from investigations import runner
from investigations.signals.report import clock
from investigations.telemetry.backend import RETRY_ATTEMPTS
from tests.factories import make_alert, make_investigation
from tests.investigations.agents.scripts import full_script
from tests.investigations.signals.test_metric_scan import ALERT, NOW, ONSET, openmetrics
from tests.processes import free_port
from tests.realprometheus import prometheus_fixture

pytestmark = [pytest.mark.slow, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

TIMEOUT = timedelta(milliseconds=500)
SLOW_SECONDS = 3  # well past TIMEOUT; the server's thread sleeps it out on its own
LAG = timedelta(minutes=3)  # how far behind the lagging store is
FAILURE = b'{"status": "error", "errorType": "internal", "error": "injected fault"}'
# The backend, the evidence it gives (as the report names it), its analyst's first tool.
BACKENDS = {
    "PROMETHEUS": ("metrics", "Prometheus", "discover_metrics"),
    "LOKI": ("logs", "Loki", "log_patterns"),
}
# What the last attempt's error says, by fault.
FAULTS = {"down": "ConnectError", "slow": "ReadTimeout", "500": "HTTP 500: injected fault"}


class FaultyHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.count()
        if self.server.fault == "slow":
            time.sleep(SLOW_SECONDS)
            status, body = 200, b'{"status": "success", "data": []}'
        elif self.server.fault == "range queries fail" and "/query_range" not in self.path:
            status, body = self.relay()
        elif self.server.fault == "behind":
            status, body = self.relay()
            if "/query_range" in self.path and status == 200:
                body = behind(body, self.path)
        else:
            status, body = 500, FAILURE
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up waiting, as it should
            pass

    def relay(self):
        """The healthy backend's answer to this request: (status, body)."""
        try:
            with urllib.request.urlopen(self.server.upstream + self.path, timeout=10) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as refused:
            return refused.code, refused.read()

    def log_request(self, code="-", size="-"):
        """Quiet."""


def behind(body, path):
    """A range query's answer as from a store LAG behind: no point in its last LAG."""
    [end] = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)["end"]
    answer = json.loads(body)
    for series in answer["data"]["result"]:
        series["values"] = [p for p in series["values"] if p[0] <= float(end) - LAG.seconds]
    answer["data"]["result"] = [s for s in answer["data"]["result"] if s["values"]]
    return json.dumps(answer).encode()


class FaultyBackend(BackgroundServer):
    """A backend that is slow (`fault` "slow") or fails ("500") on every request, or
    relays them to `upstream` but fails its range queries ("range queries fail"), or
    answers them as a store that lags LAG behind would ("behind")."""

    thread_name = "faulty-backend"

    def __init__(self, fault, upstream=""):
        super().__init__(("127.0.0.1", 0), FaultyHandler)
        self.fault = fault
        self.upstream = upstream
        self.requests = 0
        self._lock = threading.Lock()

    def count(self):
        with self._lock:
            self.requests += 1


prometheus_url = prometheus_fixture(openmetrics)


@pytest.fixture(scope="module")
def loki_url():
    """`db` logs errors new to the incident; `web` logs its usual few."""

    def at(moment):
        return int(moment.timestamp() * 10**9)

    entries = [
        (
            {"namespace": "shop", "service": "web"},
            at(ONSET - timedelta(minutes=m)),
            f"ERROR slow {m}",
        )
        for m in range(5, 50, 5)
    ]
    entries += [
        (
            {"namespace": "shop", "service": "db"},
            at(ONSET + timedelta(seconds=10 * n)),
            f"FATAL could not open relation {n}: out of memory",
        )
        for n in range(20)
    ]
    with serve_loki(LogStore(entries)) as stub:
        yield stub.url


@pytest.fixture
def faulty_url(request):
    """The URL of a backend with `fault`: a closed port, or a FaultyBackend."""

    def start(fault, upstream=""):
        if fault == "down":
            return f"http://127.0.0.1:{free_port()}"  # nothing listens there
        server = FaultyBackend(fault, upstream).start()
        request.addfinalizer(server.close)
        return server.url

    return start


@pytest.mark.parametrize("model", ["signals-only", "agents"])
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_backend_fault_leaves_a_completed_investigation_that_names_the_missing_evidence(
    settings, prometheus_url, loki_url, faulty_url, backend, fault, model
):
    evidence, name, analyst_tool = BACKENDS[backend]
    healthy = {"PROMETHEUS": prometheus_url, "LOKI": loki_url}
    for each, url in healthy.items():
        setattr(settings, f"ROOTLINE_{each}_URL", url)
        setattr(settings, f"ROOTLINE_{each}_TIMEOUT", TIMEOUT)
    broken = faulty_url(fault)
    setattr(settings, f"ROOTLINE_{backend}_URL", broken)
    alert = make_alert(namespace="shop", service="api", starts_at=ALERT)
    investigation = make_investigation(alert, as_of=NOW)

    if model == "agents":
        with scripted.serve(full_script()) as server:
            settings.ANTHROPIC_API_KEY = "test-key"
            settings.ANTHROPIC_BASE_URL = server.url
            runner.run(investigation.pk)
        assert server.protocol_errors == 0
    else:
        runner.run(investigation.pk)

    investigation.refresh_from_db()
    steps = list(investigation.steps.order_by("sequence"))
    described = [(s.sequence, s.agent, s.tool, s.status, s.error[:200]) for s in steps]
    assert investigation.status == "completed", (investigation.error, described)
    assert [s for s in steps if s.finished_at is None] == [], described
    scans = {s.tool: s for s in steps if s.agent == "signals"}
    failed_scan = scans[f"scan_{evidence}"]
    assert failed_scan.status == "error"
    said = f"{name} at {broken}"
    assert said in failed_scan.error
    assert f"tried {RETRY_ATTEMPTS} times and failed: " in failed_scan.error
    assert FAULTS[fault] in failed_scan.error
    other = "logs" if evidence == "metrics" else "metrics"
    assert scans[f"scan_{other}"].status == "ok", described

    # The report: the other backend's evidence names the cause; the missing kind is named.
    signals = investigation.report if model == "signals-only" else investigation.report["signals"]
    assert signals["root_cause"]["service"] == "db", signals
    # Loki gives two kinds of evidence: error-like lines and request paths.
    kinds = [evidence, "request paths"] if backend == "LOKI" else [evidence]
    assert [u.split(":")[0] for u in signals["unchecked"]] == kinds, signals["unchecked"]
    for missing in signals["unchecked"]:
        assert said in missing and FAULTS[fault] in missing
    if model == "signals-only":
        assert f"Not checked: {evidence}: {said}" in investigation.report_text
    else:
        assert investigation.report["source"] == "agents", investigation.report
        assert f"### Not checked\n\n- {evidence}: {said}" in investigation.report_text
        # The analyst's tool met the same fault, and was told so instead of failing.
        [tool_step] = [s for s in steps if s.tool == analyst_tool]
        assert tool_step.status == "error" and name in tool_step.error, described


def investigate(settings, prometheus, loki):
    """A signals-only investigation of the scenario's alert, run through the runner with
    these backends: (the investigation, its scan_metrics step)."""
    settings.ROOTLINE_PROMETHEUS_URL, settings.ROOTLINE_LOKI_URL = prometheus, loki
    investigation = make_investigation(
        make_alert(namespace="shop", service="api", starts_at=ALERT), as_of=NOW
    )

    runner.run(investigation.pk)

    investigation.refresh_from_db()
    assert investigation.status == "completed", investigation.error
    return investigation, investigation.steps.get(tool="scan_metrics")


def test_prometheus_failing_only_its_range_queries_is_named_as_missing_evidence(
    settings, prometheus_url, loki_url, faulty_url
):
    # Series are found, but every range query fails (as heavy ones do on a loaded store):
    # the scan "succeeds" with no metric read, and the report must say so.
    settings.ROOTLINE_PROMETHEUS_TIMEOUT = TIMEOUT
    prometheus = faulty_url("range queries fail", prometheus_url)
    investigation, scan = investigate(settings, prometheus, loki_url)

    assert scan.output["metrics"] == 4 and scan.output["top"] == []
    assert "4 metric(s) could not be read" in scan.output_text
    assert investigation.report["root_cause"]["service"] == "db"  # from the logs
    [missing] = investigation.report["unchecked"]
    assert missing.startswith("metrics: 4 of 4 metrics could not be read")
    assert "HTTP 500: injected fault" in missing
    assert f"Not checked: {missing}" in investigation.report_text


def test_a_store_that_lags_is_not_read_as_every_service_going_silent(
    settings, prometheus_url, faulty_url
):
    # A remote-write queue that backs up, an ingester that lags: the store has nothing of
    # the last three minutes, for any series. Judged against "now", every steady series
    # stopped and every service went silent at once; judged against the newest sample
    # there is, nothing stopped, and the report says which minutes it could not see.
    investigation, scan = investigate(settings, faulty_url("behind", prometheus_url), loki="")

    newest = (NOW - LAG).timestamp()
    assert newest - 60 < scan.output["newest"] <= newest, scan.output
    assert scan.output["stopped"] == {}, scan.output
    assert f"no sample after {clock(scan.output['newest'])}" in scan.output_text
    assert all(e["kind"] != "silence" for s in investigation.suspects for e in s["evidence"])
    assert investigation.report["root_cause"]["service"] == "db"  # changed at ONSET
    [lag] = investigation.report["unchecked"][1:]
    after = clock(scan.output["newest"])
    assert lag.startswith(f"metrics: no series in scope has a sample after {after}, ")
    assert f"Not checked: {lag}" in investigation.report_text
