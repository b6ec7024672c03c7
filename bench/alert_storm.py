"""Alert storm: 10,000 alerts in 200 Alertmanager groups reach the webhook within a minute.

    .venv/bin/python bench/alert_storm.py --db sqlite,postgres --runs 3 --write-doc

What it does and how to read the figures: DOC_INTRO below (also written to the doc). The
shape of the storm (Storm) is shared with tests/faults/test_alert_storm.py, which checks
completeness and grouping on every test run; this script measures latency.
"""

import argparse
import contextlib
import datetime as dt
import os
import signal
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchdoc import git_describe, nearest_rank, replace_subsections
from private_postgres import PrivateCluster
from webhook_load import (
    CORES,
    DB_TITLES,
    ROOT,
    Phase,
    build_payload,
    database_note,
    fresh_database,
    http_request,
    load_templates,
    machine,
    measure,
    migrate,
    query,
    run_phase,
    server_environment,
    serving,
    stored,
)

DOC_PATH = ROOT / "docs" / "RELIABILITY.md"
DOC_TITLE = "## Alert storm"
TARGET_P99_MS = 100
WARMUP_DELIVERIES = 200
DOC_INTRO = """\
`bench/alert_storm.py` serves Rootline with the Procfile's gunicorn command on a fresh
database, without a qcluster worker (investigations stay queued), and posts a storm as
Alertmanager delivers one: 200 groups (groupKeys) of 50 new alerts, 10,000 alerts in all,
each group notified three times (group_wait, then group_interval twice) with its firing
alerts so far: 20, then 35 (20 again + 15 new), then 50; 600 deliveries, 21,000 alerts
received. Rounds follow one another (every group's first notification, then the second
...). *Paced*: the 600 deliveries are spread evenly over the minute, from 32 concurrent
senders, one new connection each as Alertmanager opens; *flat out*: as fast as the 32
senders go, the worst case of everything arriving at once. Latency is measured by the
client (connect to last byte) over every delivery. After each run the database is
counted: *missing* = alerts sent - stored; *investigations* started (one per group is the
grouping rule within ROOTLINE_GROUP_WINDOW); *2+* = groups with more than one. A 200-delivery
warm-up of single alerts is not counted. *Server CPU* is the gunicorn processes' CPU time
per delivery; *CPU %* the share of both cores used by gunicorn and by everything else but
the load generator (PostgreSQL, and other programs on the machine). Target: p99 < 100 ms
for the paced storm.
The PostgreSQL runs use a throwaway cluster of the same machine (bench/private_postgres.py,
default settings), not a tuned server.
"""


@dataclass(frozen=True)
class Storm:
    """An alert storm as Alertmanager delivers it: `groups` groups (groupKeys) of `alerts`
    new alerts each, notified in rounds as group_wait and group_interval do; each round
    re-sends the group's firing alerts plus those new since (`round_sizes`, cumulative,
    the last one `alerts`). Rounds follow one another: round 1 of every group, then 2..."""

    number: int
    run: int
    port: int
    starts_at: dt.datetime
    groups: int = 200
    alerts: int = 50
    round_sizes: tuple = (20, 35, 50)
    senders: int = 32
    rate: float | None = None  # deliveries per second; None: as fast as the senders go

    @property
    def namespace_prefix(self):
        return f"bench-s{self.number:02d}-g"

    @property
    def deliveries(self):
        return self.groups * len(self.round_sizes)

    @property
    def alerts_sent(self):
        return self.groups * sum(self.round_sizes)

    def distinct_episodes(self):
        return self.groups * self.alerts

    def payload(self, templates, index):
        round_, group = divmod(index, self.groups)
        first = (self.number << 40) + group * self.alerts
        numbers = range(first, first + self.round_sizes[round_])
        return build_payload(templates, group, self.namespace_prefix, numbers, self.starts_at)

    def request(self, templates, index):
        return http_request(self.port, self.payload(templates, index))


def investigations_started(db, url, storm):
    like = f'%namespace="{storm.namespace_prefix}%'
    sql = "SELECT count(*) FROM investigations_investigation WHERE group_key LIKE %s"
    return query(db, url, sql, (like,))[0][0]


def measure_storm(db, url, server, storm, templates, processes):
    load = os.getloadavg()[0]
    latencies, statuses, seconds, cpu = run_phase(storm, templates, processes, server.pid)
    latencies.sort()
    count, receipts, doubled = stored(db, url, storm)
    ok = sum(n for status, n in statuses.items() if isinstance(status, int) and status < 300)
    row = dict(run=storm.run, load1=load, seconds=seconds)
    row.update({f"p{q}": 1000 * nearest_rank(latencies, q / 100) for q in (50, 95, 99)})
    row.update(max=1000 * latencies[-1], deliveries_s=storm.deliveries / seconds)
    row.update(server_cpu_ms=1000 * cpu[0] / storm.deliveries)
    share = [100 * c / seconds / CORES for c in cpu]  # of the whole machine
    row.update(gunicorn=share[0], other=max(0.0, share[2] - share[0] - share[1]))
    row.update(missing=storm.distinct_episodes() - count, non2xx=storm.deliveries - ok)
    row.update(uncounted=storm.alerts_sent - receipts, doubled=doubled)
    row.update(investigations=investigations_started(db, url, storm))
    shown = {k: round(v, 1) if isinstance(v, float) else v for k, v in row.items()}
    print(f"  storm {shown} statuses {dict(statuses)}", flush=True)
    return row


def bench(db, args, templates, postgres_admin_url, pace_seconds):
    rows = []
    with tempfile.TemporaryDirectory(prefix="rootline-storm-") as tmpdir:
        url = fresh_database(db, tmpdir, postgres_admin_url)
        env = server_environment(url, args.workers, args.log_level)
        migrate(env)
        log_path = Path(tmpdir) / "gunicorn.log"
        with serving(env, args.workers, log_path) as (server, port):
            now = dt.datetime.now(dt.UTC)
            warmup = Phase(0, 0, 1, WARMUP_DELIVERIES, args.senders, 0, port, now)
            measure(db, url, server, warmup, templates, args.sender_processes)
            for run in range(1, args.runs + 1):
                storm = Storm(run, run, port, dt.datetime.now(dt.UTC), senders=args.senders)
                if pace_seconds:
                    storm = Storm(**{**storm.__dict__, "rate": storm.deliveries / pace_seconds})
                rows.append(measure_storm(db, url, server, storm, templates, args.sender_processes))
        tracebacks = log_path.read_text().count("Traceback")
        note = f"{database_note(db, url)}; gunicorn tracebacks: {tracebacks}"
    return rows, note, storm


def section(db, args, rows, note, storm, pace_seconds, started):
    how = f"paced over {pace_seconds} s" if pace_seconds else "flat out"
    median = {k: statistics.median(r[k] for r in rows) for k in ("p50", "p95", "p99")}
    lines = [
        f"### {DB_TITLES[db]}, {how}\n",
        "`.venv/bin/python bench/alert_storm.py " + " ".join(sys.argv[1:]) + "`\n",
        f"- {started}; commit {git_describe()}; {machine()}; {note}",
        f"- gunicorn: {args.workers} sync workers; {storm.senders} senders in "
        f"{args.sender_processes} processes; {storm.deliveries} deliveries of "
        f"{'/'.join(map(str, storm.round_sizes))} alerts, {storm.alerts_sent:,} alerts received, "
        f"{storm.distinct_episodes():,} distinct, {storm.groups} groups\n",
        "| run | load1 | seconds | p50 ms | p95 ms | p99 ms | max ms | deliveries/s "
        "| server CPU ms/delivery | CPU % gunicorn/other "
        "| missing | non-2xx | uncounted | investigations | 2+ |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['run']} | {r['load1']:.2f} | {r['seconds']:.1f} | {r['p50']:.1f} "
            f"| {r['p95']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | {r['deliveries_s']:.0f} "
            f"| {r['server_cpu_ms']:.1f} | {r['gunicorn']:.0f}/{r['other']:.0f} "
            f"| {r['missing']} | {r['non2xx']} | {r['uncounted']} | {r['investigations']} "
            f"| {r['doubled']} |"
        )
    complete = all(r["missing"] == r["non2xx"] == r["uncounted"] == 0 for r in rows)
    grouped = all(r["investigations"] == storm.groups and not r["doubled"] for r in rows)
    target = " (no target: the worst case)"
    if pace_seconds:
        met = "pass" if median["p99"] < TARGET_P99_MS else "miss"
        target = f" (target < {TARGET_P99_MS} ms: **{met}**)"
    verdicts = [
        f"- median of the runs: p50 {median['p50']:.1f} ms, p95 {median['p95']:.1f} ms, "
        f"p99 {median['p99']:.1f} ms{target}",
        f"- every alert stored and counted: **{'pass' if complete else 'miss'}**; "
        f"one investigation per group: **{'pass' if grouped else 'miss'}**",
    ]
    return "\n".join([*lines, "", *verdicts]) + "\n"


def order(names):
    """SQLite, then PostgreSQL, paced before flat out; hand-written subsections last."""
    titles = list(DB_TITLES.values())

    def key(name):
        db = next((i for i, t in enumerate(titles) if name.startswith(f"{t}, ")), len(titles))
        return db, "flat out" in name, name

    return sorted(names, key=key)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    csv = lambda kind: lambda text: [kind(x) for x in text.split(",")]  # noqa: E731
    parser.add_argument("--db", type=csv(str), default=["sqlite"], help="sqlite,postgres")
    parser.add_argument(
        "--seconds", type=csv(int), default=[60, 0], help="spread each storm over; 0: flat out"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--senders", type=int, default=32, help="concurrent senders in all")
    parser.add_argument("--sender-processes", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn WEB_CONCURRENCY")
    parser.add_argument("--log-level", default="INFO", help="ROOTLINE_LOG_LEVEL")
    parser.add_argument("--write-doc", action="store_true", help=f"update {DOC_PATH.name}")
    args = parser.parse_args()
    if set(args.db) - set(DB_TITLES):
        parser.error("--db: sqlite and/or postgres")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so that `finally` stops gunicorn
    signal.signal(signal.SIGINT, signal.default_int_handler)
    templates, sections = load_templates(), {}
    with contextlib.ExitStack() as stack:
        admin_url = None
        if "postgres" in args.db:
            admin_url = stack.enter_context(PrivateCluster()).admin_url
        for db in args.db:
            for pace_seconds in args.seconds:
                started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
                print(f"{db}, storm paced over {pace_seconds or 'no'} s", flush=True)
                rows, note, storm = bench(db, args, templates, admin_url, pace_seconds)
                text = section(db, args, rows, note, storm, pace_seconds, started)
                print(text, flush=True)
                sections[text.split("\n", 1)[0].removeprefix("### ")] = text
    if args.write_doc:
        replace_subsections(DOC_PATH, DOC_TITLE, DOC_INTRO, sections, order)
        print(f"updated {DOC_PATH}")


if __name__ == "__main__":
    main()
