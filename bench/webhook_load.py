"""Load test of POST /webhooks/alertmanager, served by gunicorn as the Procfile does.

    .venv/bin/python bench/webhook_load.py --db sqlite,postgres --runs 3 --write-doc

What it does and how to read the figures: DOC_INTRO below (also written to the doc).
Everything it starts (gunicorn, sender processes) is stopped on exit, Ctrl-C included.
"""

import argparse
import asyncio
import contextlib
import copy
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import queue
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchdoc import git_describe, nearest_rank, replace_subsections  # noqa: E402

from tests.shared import FIXTURES_DIR as SHARED_FIXTURES_DIR  # noqa: E402

FIXTURES_DIR = SHARED_FIXTURES_DIR / "alertmanager"
DOC_PATH = ROOT / "docs" / "BENCHMARKS.md"
VENV_BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
POSTGRES_BENCH_DB = "rootline_bench"
TOKEN = "bench-webhook-token"  # noqa: S105 (a throwaway instance on loopback)
STARTUP_TIMEOUT_SECONDS = 60
MIGRATE_TIMEOUT_SECONDS = 300
REQUEST_TIMEOUT_SECONDS = 30
# Alertmanager's retries of a notification answered 5xx (or not at all): doubling backoff.
RETRY_BACKOFF_SECONDS = 0.1
RETRY_MAX_BACKOFF_SECONDS = 1.0
RUN_TIMEOUT_SECONDS = 900
STOP_TIMEOUT_SECONDS = 10
WARMUP_DELIVERIES = 200
DELIVERIES_PER_GROUP = 10
GROUPS_PER_SENDER = 4  # a group's deliveries are `groups` apart, so not concurrent
REPEAT_LAG_DELIVERIES = 64  # a repeat re-sends the delivery this many places earlier
FINGERPRINT_MULTIPLIER = 0x9E3779B97F4A7C15  # odd, so seq -> fingerprint is one-to-one
CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count()
TARGET_P99_MS = 50
TARGET_SINGLE_DELIVERIES_PER_SECOND = 500
TARGET_BATCH_ALERTS_PER_SECOND = 10_000
DB_TITLES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
DOC_INTRO = """\
`bench/webhook_load.py` serves Rootline with the Procfile's gunicorn command (sync workers,
access log on) against a fresh database, without the qcluster worker (investigations stay
queued; the worker takes no CPU). Concurrent senders post pre-built Alertmanager v4 payloads
shaped like the recorded fixtures (about 1.6 KB with 1 alert, 34 KB with 50), one new
connection per delivery as Alertmanager does. Every alert is a new episode (a fresh 16-hex
fingerprint), except in repeat deliveries, which re-send an earlier delivery as
`group_interval` does. Each delivery belongs to one of
max(deliveries/10, 4 x senders) groups, so investigations are both started and joined; a
group's deliveries are 4 x senders apart, so not in flight together (as from one
Alertmanager). Latency is measured by the client (connect to last byte); rates are
deliveries over the wall time of the phase, with the load generator on the same cores.
After each run the database is counted: *missing* = distinct episodes sent - stored. Cells
are the median of the runs [min-max]; a 200-delivery warm-up is not counted. *server CPU*
is the gunicorn processes' CPU time per delivery (PostgreSQL's own is not included); *CPU
busy* the share of both cores busy during the phase: gunicorn / load generator / other
(PostgreSQL, kernel, and anything else running, e.g. someone's tests). Targets: p99 < 50 ms
at 32 senders, >= 500 single-alert deliveries/s, >= 10,000 alerts/s in 50-alert deliveries.
"""


def load_templates():
    """The firing alerts of the recorded fixtures: labels, annotations, generatorURL."""
    alerts = []
    for path in sorted(FIXTURES_DIR.glob("*.json")):
        body = json.loads(path.read_text())["body"]
        alerts += [a for a in body["alerts"] if a["status"] == "firing"]
    if not alerts:
        raise SystemExit(f"no firing alerts in {FIXTURES_DIR}")
    return alerts


def build_payload(templates, group, namespace_prefix, numbers, starts_at):
    """The webhook body of one notification of `group`: firing alerts numbered `numbers`
    (unique across the whole run; the same number gives the same episode)."""
    base = templates[group % len(templates)]["labels"]
    namespace = f"{namespace_prefix}{group:05d}"
    alerts = []
    for i, number in enumerate(numbers):
        alert = copy.deepcopy(templates[(group + i) % len(templates)])
        pod = f"{alert['labels'].get('pod', 'pod')}-{number % 2**40}"
        alert["labels"].update(alertname=base["alertname"], namespace=namespace, pod=pod)
        alert["annotations"]["description"] = f"{pod} restarted {i + 1} times"
        when = starts_at + dt.timedelta(milliseconds=i)
        alert.update(
            startsAt=when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            endsAt="0001-01-01T00:00:00Z",
            fingerprint=format((number * FINGERPRINT_MULTIPLIER) % 2**64, "016x"),
        )
        alerts.append(alert)
    group_labels = {"alertname": base["alertname"], "namespace": namespace}
    return {
        "receiver": "rootline",
        "status": "firing",
        "alerts": alerts,
        "groupLabels": group_labels,
        "commonLabels": dict(set.intersection(*(set(a["labels"].items()) for a in alerts))),
        "commonAnnotations": alerts[0]["annotations"] if len(alerts) == 1 else {},
        "externalURL": "http://alertmanager.bench:9093",
        "version": "4",
        "groupKey": "{}:{" + ", ".join(f'{k}="{v}"' for k, v in group_labels.items()) + "}",
        "truncatedAlerts": 0,
    }


def http_request(port, payload):
    """A whole webhook POST of `payload` as Alertmanager sends it, as bytes."""
    body = json.dumps(payload).encode()
    head = (
        f"POST /webhooks/alertmanager HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\n"
        f"User-Agent: Alertmanager/0.25.0\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


@dataclass(frozen=True)
class Phase:
    """A fixed number of deliveries of one size; `number` makes its alerts and groups unique."""

    number: int
    run: int  # 0 for the warm-up
    alerts: int
    deliveries: int
    senders: int
    repeat_percent: float
    port: int
    starts_at: dt.datetime

    groups_wanted: int | None = None  # default: one per DELIVERIES_PER_GROUP, enough apart
    rate: float | None = None  # deliveries per second; None: as fast as the senders go

    @property
    def groups(self):
        if self.groups_wanted:
            return self.groups_wanted
        return max(self.deliveries // DELIVERIES_PER_GROUP, GROUPS_PER_SENDER * self.senders)

    @property
    def namespace_prefix(self):
        return f"bench-p{self.number:02d}-g"

    def is_repeat(self, index):
        """Every so often a delivery re-sends an earlier one, as group_interval does."""
        if self.repeat_percent <= 0 or index < REPEAT_LAG_DELIVERIES:
            return False
        return index % round(100 / self.repeat_percent) == 0

    def distinct_episodes(self):
        return self.alerts * sum(not self.is_repeat(i) for i in range(self.deliveries))

    def payload(self, templates, index):
        """The webhook body of original delivery `index`: new episodes of one group."""
        first = (self.number << 40) + index * self.alerts
        numbers = range(first, first + self.alerts)
        return build_payload(
            templates, index % self.groups, self.namespace_prefix, numbers, self.starts_at
        )

    def request(self, templates, index):
        """The whole HTTP request of delivery `index`, as bytes."""
        while self.is_repeat(index):
            index -= REPEAT_LAG_DELIVERIES
        return http_request(self.port, self.payload(templates, index))


async def post(port, request):
    """Send one pre-built request on a new connection; the HTTP status."""
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        writer.write(request)
        await writer.drain()
        status_line = await reader.readline()
        await reader.read()  # the server closes the connection after the answer
        return int(status_line.split(b" ", 2)[1])
    finally:
        writer.close()


def retried(status):
    """Whether Alertmanager sends a notification again after this answer: a 5xx, or none."""
    return not isinstance(status, int) or status >= 500


async def send_all(port, requests, concurrency, offsets=None, retry_seconds=0):
    """Post `requests` from `concurrency` senders, each request once, and not before its
    offset (seconds after the start) when `offsets` are given. With `retry_seconds`, a
    request answered 5xx or not at all is sent again as Alertmanager does, after a doubling
    backoff, until it is accepted or that many seconds have passed since its first try.
    Returns (latency of every attempt, statuses of every attempt, start, end, CPU seconds).
    """
    latencies, statuses, pending = [], Counter(), iter(enumerate(requests))

    async def sender():
        for index, request in pending:  # one shared iterator: each request is sent once
            if offsets:
                await asyncio.sleep(first + offsets[index] - time.perf_counter())
            give_up, backoff = time.perf_counter() + retry_seconds, RETRY_BACKOFF_SECONDS
            while True:
                started = time.perf_counter()
                try:
                    status = await asyncio.wait_for(post(port, request), REQUEST_TIMEOUT_SECONDS)
                except TimeoutError:
                    status = "timeout"
                except (OSError, ValueError, IndexError) as exc:
                    status = type(exc).__name__
                latencies.append(time.perf_counter() - started)
                statuses[status] += 1
                if not retried(status) or time.perf_counter() + backoff > give_up:
                    break
                await asyncio.sleep(backoff)
                backoff = min(2 * backoff, RETRY_MAX_BACKOFF_SECONDS)

    first, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return latencies, statuses, first, time.perf_counter(), time.process_time() - cpu


def sender_process(phase, templates, proc_index, processes, barrier, results):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    indexes = range(proc_index, phase.deliveries, processes)
    requests = [phase.request(templates, i) for i in indexes]  # built before timing
    offsets = [i / phase.rate for i in indexes] if phase.rate else None
    concurrency = phase.senders // processes + (proc_index < phase.senders % processes)
    barrier.wait(timeout=RUN_TIMEOUT_SECONDS)
    results.put(asyncio.run(send_all(phase.port, requests, concurrency, offsets)))


def run_phase(phase, templates, processes, server_pgid):
    """Post a phase from `processes` processes: latencies, statuses, seconds, and the CPU
    seconds of gunicorn, of the senders and of the whole machine while it ran."""
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(processes + 1), ctx.Queue()
    args = [(phase, templates, i, processes, barrier, results) for i in range(processes)]
    procs = [ctx.Process(target=sender_process, args=a) for a in args]
    parts, deadline = [], time.monotonic() + RUN_TIMEOUT_SECONDS
    try:
        for proc in procs:
            proc.start()
        barrier.wait(timeout=RUN_TIMEOUT_SECONDS)  # the payloads are built
        before = group_cpu_seconds(server_pgid), machine_cpu_seconds()
        while len(parts) < processes:
            try:
                parts.append(results.get(timeout=1))
            except queue.Empty:
                if time.monotonic() > deadline or any(p.exitcode for p in procs):
                    raise SystemExit("a sender process failed or timed out") from None
        server_cpu = group_cpu_seconds(server_pgid) - before[0]
        machine_cpu = machine_cpu_seconds() - before[1]
    finally:
        for proc in procs:
            proc.join(timeout=STOP_TIMEOUT_SECONDS if len(parts) == processes else 0)
            if proc.is_alive():
                proc.kill()
    latencies = sorted(x for part in parts for x in part[0])
    statuses = sum((part[1] for part in parts), Counter())
    seconds = max(p[3] for p in parts) - min(p[2] for p in parts)
    return latencies, statuses, seconds, (server_cpu, sum(p[4] for p in parts), machine_cpu)


def group_cpu_seconds(pgid):
    """CPU time (user + system) of the live processes of a process group."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS_PER_SECOND


def machine_cpu_seconds():
    """CPU time spent busy (not idle, not waiting for I/O) by all cores since boot."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLOCK_TICKS_PER_SECOND


def free_port():
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def fresh_database(db, tmpdir, postgres_admin_url=POSTGRES_ADMIN_URL):
    """The URL of a new, empty database: a SQLite file in `tmpdir`, or POSTGRES_BENCH_DB
    (dropped first) on the PostgreSQL server of `postgres_admin_url`."""
    if db == "sqlite":
        return f"sqlite:///{tmpdir}/rootline.sqlite3"
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {POSTGRES_BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {POSTGRES_BENCH_DB}")
    return postgres_admin_url.rsplit("/", 1)[0] + "/" + POSTGRES_BENCH_DB


def server_environment(url, workers, log_level="INFO"):
    """The environment of a Rootline serving the database at `url` with the bench token."""
    env = dict(os.environ, DATABASE_URL=url, SECRET_KEY="bench-" + "x" * 50)
    env.update(ROOTLINE_WEBHOOK_TOKEN=TOKEN, WEB_CONCURRENCY=str(workers))
    env.update(ROOTLINE_LOG_LEVEL=log_level, PATH=f"{VENV_BIN}:{env['PATH']}")
    return env


def migrate(env):
    command = [sys.executable, "manage.py", "migrate", "--noinput", "-v0"]
    subprocess.run(command, cwd=ROOT, env=env, check=True, timeout=MIGRATE_TIMEOUT_SECONDS)


@contextlib.contextmanager
def serving(env, workers, log_path):
    """gunicorn with `env` on a free port, writing to `log_path`: yields (process, port),
    stopped on the way out."""
    port = free_port()
    with Path(log_path).open("w") as log:
        server = start_server(env, workers, port, log)
        try:
            yield server, port
        finally:
            stop(server)


def database_note(db, url):
    """The database's version and durability settings, for the doc."""
    if db == "postgres":
        sql = "SELECT version(), current_setting('synchronous_commit')"
        version, sync = query(db, url, sql)[0]
        return f"{version.split(' on ')[0]}, synchronous_commit={sync}"
    return f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=FULL)"


def query(db, url, sql, params=()):
    if db == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite:///"), timeout=60) as conn:
            return conn.execute(sql.replace("%s", "?"), params).fetchall()
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def stored(db, url, phase):
    """Episodes stored, receipts counted, and groups with more than one investigation."""
    like = f'%namespace="{phase.namespace_prefix}%'
    alerts = "SELECT count(*), coalesce(sum(receive_count), 0) FROM alerts_alert"
    (count, receipts), *_ = query(db, url, alerts + " WHERE group_key LIKE %s", (like,))
    doubled = (
        "SELECT count(*) FROM (SELECT group_key FROM investigations_investigation"
        " WHERE group_key LIKE %s GROUP BY group_key HAVING count(*) > 1) AS d"
    )
    return count, receipts, query(db, url, doubled, (like,))[0][0]


def start_server(env, workers, port, log):
    command = [
        str(VENV_BIN / "gunicorn"),
        "rca_site.wsgi",
        *("--bind", f"{LOOPBACK}:{port}", "--workers", str(workers)),
        *("--access-logfile", "-", "--forwarded-allow-ips=127.0.0.1"),
    ]
    server = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
    stop(server)
    raise SystemExit(f"gunicorn did not answer /healthz; see {log.name}")


def stop(server):
    """SIGTERM to the server alone, so that it stops its own children in order (SIGTERM to
    its whole group can leave qcluster waiting for ever on a child that died first), then
    SIGKILL to whatever is left of its process group once it has exited, or after
    STOP_TIMEOUT_SECONDS."""
    if server.poll() is None:
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=STOP_TIMEOUT_SECONDS)
    with contextlib.suppress(ProcessLookupError):  # nothing of the group is left
        os.killpg(server.pid, signal.SIGKILL)
    server.wait()


def measure(db, url, server, phase, templates, processes):
    load = os.getloadavg()[0]
    latencies, statuses, seconds, cpu = run_phase(phase, templates, processes, server.pid)
    count, receipts, doubled = stored(db, url, phase)
    ok = sum(n for status, n in statuses.items() if isinstance(status, int) and status < 300)
    n = phase.deliveries
    row = dict(db=db, run=phase.run, alerts=phase.alerts, deliveries=n, load1=load)
    row.update({f"p{q}": 1000 * nearest_rank(latencies, q / 100) for q in (50, 95, 99)})
    row.update(deliveries_s=n / seconds, alerts_s=n * phase.alerts / seconds)
    row.update(server_cpu_ms=1000 * cpu[0] / n)
    share = [100 * c / seconds / CORES for c in cpu]  # of the whole machine
    other = max(0.0, share[2] - share[0] - share[1])  # noise can make it slightly negative
    row.update(busy=share[2], gunicorn=share[0], loadgen=share[1], other=other)
    row.update(missing=phase.distinct_episodes() - count, non2xx=n - ok)
    row.update(uncounted=ok * phase.alerts - receipts, doubled=doubled)
    shown = {k: round(v, 1) if isinstance(v, float) else v for k, v in row.items()}
    print(f"  {'run' if phase.run else 'warm-up'} {shown} statuses {dict(statuses)}", flush=True)
    return row


def bench_database(db, args, templates):
    rows, notes = [], []
    with tempfile.TemporaryDirectory(prefix="rootline-bench-") as tmpdir:
        url = fresh_database(db, tmpdir)
        env = server_environment(url, args.workers, args.log_level)
        migrate(env)
        log_path = Path(tmpdir) / "gunicorn.log"
        with serving(env, args.workers, log_path) as (server, port):
            plan = [(0, args.alerts_per_delivery[0], WARMUP_DELIVERIES)]
            for size, count in zip(args.alerts_per_delivery, args.deliveries, strict=True):
                plan += [(run, size, count) for run in range(1, args.runs + 1)]
            for number, (run, size, count) in enumerate(plan):
                starts_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)
                args_ = (number, run, size, count, args.senders, args.repeat_percent, port)
                phase = Phase(*args_, starts_at, args.groups)
                row = measure(db, url, server, phase, templates, args.sender_processes)
                if run:
                    rows.append(row)
        tracebacks = log_path.read_text().count("Traceback")
        doubled = sum(r["doubled"] for r in rows)
        notes.append(f"groups with 2+ investigations: {doubled}; gunicorn tracebacks: {tracebacks}")
        notes.append(database_note(db, url))
    return rows, notes


def summarize(rows):
    """A Markdown table, median of runs [min-max] per (db, size), and the target verdicts."""
    table = [
        "| database | alerts/delivery | runs x deliveries | p50 ms | p95 ms | p99 ms "
        "| deliveries/s | alerts/s | server CPU ms/delivery | CPU busy % (gunicorn/load-gen/other) "
        "| missing | non-2xx |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    for db, size in dict.fromkeys((r["db"], r["alerts"]) for r in rows):
        runs = [r for r in rows if (r["db"], r["alerts"]) == (db, size)]
        numbers = [k for k, v in runs[0].items() if isinstance(v, int | float)]
        median = {k: statistics.median(r[k] for r in runs) for k in numbers}

        def cell(name, fmt, runs=runs, median=median):
            low, high = min(r[name] for r in runs), max(r[name] for r in runs)
            return f"{median[name]:{fmt}} [{low:{fmt}}-{high:{fmt}}]"

        missing, non2xx = sum(r["missing"] for r in runs), sum(r["non2xx"] for r in runs)
        cells = [cell(k, ".1f") for k in ("p50", "p95", "p99")]
        cells += [cell(k, ".0f") for k in ("deliveries_s", "alerts_s")]
        cells.append(cell("server_cpu_ms", ".1f"))
        cells.append(
            cell("busy", ".0f") + " ({gunicorn:.0f}/{loadgen:.0f}/{other:.0f})".format(**median)
        )
        table.append(
            f"| {DB_TITLES[db]} | {size} | {len(runs)} x {runs[0]['deliveries']} | "
            + " | ".join(cells)
            + f" | {missing} | {non2xx} |"
        )
        checks = [(f"p99 < {TARGET_P99_MS} ms", median["p99"] < TARGET_P99_MS)]
        if size == 1:
            target = TARGET_SINGLE_DELIVERIES_PER_SECOND
            checks.append((f">= {target} deliveries/s", median["deliveries_s"] >= target))
        if size == 50:
            target = TARGET_BATCH_ALERTS_PER_SECOND
            checks.append((f">= {target:,} alerts/s", median["alerts_s"] >= target))
        checks.append(("0 missing, 0 non-2xx", missing == 0 and non2xx == 0))
        said = ", ".join(f"{name}: {'**pass**' if ok else '**miss**'}" for name, ok in checks)
        verdicts.append(f"- {DB_TITLES[db]}, {size} alert(s)/delivery: {said}")
    return table, verdicts


def write_doc(sections):
    """Replace the run databases' subsections of "Webhook ingest", keeping everything else."""

    def order(names):  # results per database first, then any hand-written subsection
        titles = [t for t in DB_TITLES.values() if t in names]
        return titles + [t for t in names if t not in titles]

    replace_subsections(DOC_PATH, "## Webhook ingest", DOC_INTRO, sections, order)


def machine():
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((x.split(":", 1)[1].strip() for x in lines if "model name" in x), "?")
    return f"{CORES} cores ({cpu}), Python {platform.python_version()}"


def section(db, args, rows, notes, table, verdicts, started):
    command = ".venv/bin/python bench/webhook_load.py " + " ".join(sys.argv[1:])
    commit = git_describe()
    lines = [
        f"### {DB_TITLES[db]}\n",
        f"`{command}`\n",
        f"- {started}; commit {commit}; {machine()}; {notes[-1]}",
        f"- gunicorn: {args.workers} sync workers (WEB_CONCURRENCY={args.workers}); no qcluster",
        f"- {args.senders} senders in {args.sender_processes} processes; "
        f"{args.repeat_percent:g}% repeat deliveries; {notes[0]}",
        "- 1-minute load average before each run (trails the previous run): "
        + ", ".join(f"{r['load1']:.2f}" for r in rows)
        + "\n",
        *table,
        "",
        *verdicts,
    ]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    csv = lambda kind: lambda text: [kind(x) for x in text.split(",")]  # noqa: E731
    parser.add_argument("--db", type=csv(str), default=["sqlite"], help="sqlite,postgres")
    parser.add_argument("--senders", type=int, default=32, help="concurrent senders in all")
    parser.add_argument("--sender-processes", type=int, default=2)
    parser.add_argument("--deliveries", type=csv(int), default=[3000, 800], help="per size")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--alerts-per-delivery", type=csv(int), default=[1, 50])
    parser.add_argument("--repeat-percent", type=float, default=10, help="repeat deliveries")
    parser.add_argument("--groups", type=int, help="distinct groupKeys per phase (default: many)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn WEB_CONCURRENCY")
    parser.add_argument("--log-level", default="INFO", help="ROOTLINE_LOG_LEVEL")
    parser.add_argument("--write-doc", action="store_true", help=f"update {DOC_PATH.name}")
    args = parser.parse_args()
    if len(args.deliveries) == 1:
        args.deliveries *= len(args.alerts_per_delivery)
    if len(args.deliveries) != len(args.alerts_per_delivery) or set(args.db) - set(DB_TITLES):
        parser.error("--deliveries: one count, or one per size; --db: sqlite and/or postgres")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so that `finally` stops gunicorn
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    templates, sections = load_templates(), {}
    for db in args.db:
        started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        print(f"{db}: {args.workers} gunicorn workers, {args.senders} senders", flush=True)
        rows, notes = bench_database(db, args, templates)
        table, verdicts = summarize(rows)
        print("\n".join(table + verdicts + notes), flush=True)
        sections[DB_TITLES[db]] = section(db, args, rows, notes, table, verdicts, started)
    if args.write_doc:
        write_doc(sections)
        print(f"updated {DOC_PATH}")


if __name__ == "__main__":
    main()
