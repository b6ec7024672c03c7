"""Log compaction: realistic log lines compacted to the 2,000-token budget.

    .venv/bin/python bench/log_compaction.py --sizes 10000,50000,100000 --runs 5 --write-doc

What it does and how to read the figures: DOC_INTRO below (also written to the doc).
"""

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import uuid
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Compaction names a line's service by the settings' service labels, as in production.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rca_site.settings")
os.environ.setdefault("SECRET_KEY", "bench-secret-key-" + "x" * 40)

import django  # noqa: E402

django.setup()

from benchdoc import nearest_rank, replace_section  # noqa: E402

from investigations.tools.compaction import (  # noqa: E402
    DEFAULT_BUDGET_TOKENS,
    compact_logs,
    estimate_tokens,
)
from investigations.tools.log_templates import LogEntry  # noqa: E402

DOC_PATH = ROOT / "docs" / "BENCHMARKS.md"
SECTION_TITLE = "## Log compaction\n"
WINDOW_SECONDS = 30 * 60
INCIDENT_START_SECONDS = 20 * 60
START_NS = 1_795_577_340 * 10**9
SERVICES = ["checkout", "payment-api", "orders-db", "inventory", "gateway", "auth"]
VERBS = [
    "handled",
    "cached",
    "queued",
    "served",
    "indexed",
    "synced",
    "loaded",
    "flushed",
    "validated",
    "scheduled",
    "rendered",
    "published",
    "received",
    "merged",
]
OBJECTS = [
    "request",
    "session",
    "invoice",
    "order",
    "profile",
    "report",
    "webhook",
    "batch",
    "cart",
    "token refresh",
    "price list",
    "shipment",
    "coupon",
    "search page",
]
# (constant phrase that must survive, line format); each appears 1-20 times.
ERROR_TEMPLATES = [
    (
        "could not connect to server: Connection refused",
        "json",
        "could not connect to server: Connection refused (host=orders-db.production.svc port=5432)",
    ),
    (
        "HikariPool-1 - Connection is not available",
        "json",
        "HikariPool-1 - Connection is not available, request timed out after 30000ms",
    ),
    (
        "Out of memory: Killed process",
        "plain",
        "Out of memory: Killed process {pid} (postgres) total-vm:{kb}kB, anon-rss:{kb}kB",
    ),
    (
        "invalid memory address or nil pointer dereference",
        "plain",
        "panic: runtime error: invalid memory address or nil pointer dereference",
    ),
    (
        "x509: certificate has expired",
        "logfmt",
        "x509: certificate has expired or is not yet valid: current time {ts} is after {ts}",
    ),
    ("deadlock detected", "logfmt", "deadlock detected while updating table orders row {id}"),
    (
        "Not enough in-sync replicas",
        "json",
        "failed to publish to topic payments.v1: Broker: Not enough in-sync replicas",
    ),
    ("disk quota exceeded", "plain", "write /var/lib/data/segment-{id}.log: disk quota exceeded"),
]
DOC_INTRO = """\
`bench/log_compaction.py` generates realistic log lines and compacts them with
`investigations.tools.compaction.compact_logs` to the default budget of 2,000 tokens
(characters / 4). Lines come from 6 services over a 30-minute window in three formats (JSON,
logfmt, plain text with a timestamp prefix); 196 ordinary info/debug/warn templates with
variable fields (ids, durations, IPs, UUIDs, trace ids), drawn with Zipf-like frequencies;
and 8 rare error templates, each appearing 1-20 times in the last 10 minutes (the incident
window), half of them labelled `detected_level=error`, half found only from the text.
Data are generated (seeded, different per run) before timing; the time is one
`compact_logs` call: drain3 template mining with masking, level detection, ranking,
redaction of what is shown, rendering. *Error templates surviving* is the share of the
distinct error templates whose constant phrase appears in the rendered text (target: all,
while they fit). Cells are the median [p95 by nearest rank] over the runs. Where the time
goes (cProfile, 20,000 lines): about a third in drain3's tree search and template update, a
quarter in its masking (five regex substitutions a line), a sixth in finding the message of
JSON and logfmt lines; the cost is linear in lines for a given number of templates."""


def _fields(rng):
    return {
        "id": rng.randrange(10**6),
        "ms": rng.randrange(1, 2000),
        "ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
        "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "trace": f"{rng.getrandbits(128):032x}",
        "user": f"user{rng.randrange(5000)}",
    }


def _ordinary_line(rng, kind, ts):
    """One line of ordinary template number `kind` (a verb, an object and a format)."""
    verb, obj = VERBS[kind % len(VERBS)], OBJECTS[kind // len(VERBS) % len(OBJECTS)]
    level = "debug" if kind % 7 == 0 else "warn" if kind % 23 == 0 else "info"
    f = _fields(rng)
    message = f"{verb} {obj} for {f['user']} in {f['ms']}ms"
    stamp = dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")
    match kind % 3:
        case 0:
            line = json.dumps(
                {
                    "ts": stamp,
                    "level": level,
                    "msg": message,
                    "request_id": f["uuid"],
                    "client_ip": f["ip"],
                    "trace_id": f["trace"],
                }
            )
        case 1:
            line = (
                f'ts={stamp} level={level} msg="{message}" order_id={f["id"]} '
                f"duration={f['ms']}ms trace_id={f['trace']}"
            )
        case _:
            line = f"{stamp} {level.upper():5} [worker-{kind % 8}] {message} from {f['ip']}"
    return line, level


def _error_line(rng, template, ts):
    _, form, text = template
    f = _fields(rng)
    stamp = dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")
    message = text.format(pid=rng.randrange(30000), kb=rng.randrange(10**7), ts=stamp, id=f["id"])
    if form == "json":
        return json.dumps({"level": "error", "msg": message, "trace_id": f["trace"]})
    if form == "logfmt":
        return f'ts={stamp} level=error msg="{message}" trace_id={f["trace"]}'
    return message


def generate(lines, seed):
    """(entries, error phrases that appear): ordinary traffic plus rare errors, shuffled."""
    rng = random.Random(seed)
    kinds = len(VERBS) * len(OBJECTS)
    weights = [1 / (rank + 1) for rank in range(kinds)]
    errors = [(t, rng.randint(1, 20)) for t in ERROR_TEMPLATES]
    ordinary = lines - sum(n for _, n in errors)
    entries = []
    for kind in rng.choices(range(kinds), weights, k=ordinary):
        ts = START_NS / 1e9 + rng.random() * WINDOW_SECONDS
        line, level = _ordinary_line(rng, kind, ts)
        service = SERVICES[kind % len(SERVICES)]
        entries.append(LogEntry(int(ts * 1e9), line, {"service": service, "detected_level": level}))
    for i, (template, count) in enumerate(errors):
        for _ in range(count):
            ts = START_NS / 1e9 + INCIDENT_START_SECONDS + rng.random() * 600
            labels = {"service": SERVICES[i % len(SERVICES)]}
            if i % 2 == 0:
                labels["detected_level"] = "error"
            entries.append(LogEntry(int(ts * 1e9), _error_line(rng, template, ts), labels))
    rng.shuffle(entries)
    return entries, [template[0] for template, _ in errors]


def run(lines, seed):
    entries, phrases = generate(lines, seed)
    started = time.perf_counter()
    result = compact_logs(
        entries,
        budget_tokens=DEFAULT_BUDGET_TOKENS,
        incident_start_ns=START_NS + INCIDENT_START_SECONDS * 10**9,
        window_ns=(START_NS, START_NS + WINDOW_SECONDS * 10**9),
    )
    elapsed_ms = (time.perf_counter() - started) * 1000
    survived = sum(phrase in result.text for phrase in phrases)
    return {
        "ms_per_10k": elapsed_ms / (lines / 10_000),
        "survival": survived / len(phrases),
        "templates": len(result.data),
        "tokens": estimate_tokens(result.text),
    }


def machine():
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "drain3": version("drain3"),
        "commit": commit + ("-dirty" if dirty else ""),
    }


def render(rows, facts, loads):
    command = "`.venv/bin/python bench/log_compaction.py " + " ".join(sys.argv[1:]) + "`"
    lines = [
        SECTION_TITLE.strip(),
        "",
        DOC_INTRO,
        "",
        command,
        "",
        f"- {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; commit {facts['commit']}; "
        f"{facts['cores']} cores ({facts['cpu']}), Python {facts['python']}, "
        f"drain3 {facts['drain3']}",
        f"- 1-minute load average before each size: {', '.join(f'{x:.2f}' for x in loads)} "
        "(the benchmark uses one core; another benchmark may share the machine)",
        "",
        "| lines | runs | templates found | ms per 10k lines | error templates surviving |"
        " output tokens |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for size, results in rows:
        per_10k = [r["ms_per_10k"] for r in results]
        survival = [r["survival"] for r in results]
        templates = [r["templates"] for r in results]
        lines.append(
            f"| {size:,} | {len(results)} | {statistics.median(templates):.0f}"
            f" | {statistics.median(per_10k):.0f} [{nearest_rank(per_10k, 0.95):.0f}]"
            f" | {statistics.median(survival):.0%} [min {min(survival):.0%}]"
            f" | {max(r['tokens'] for r in results):,} (max) |"
        )
    every = all(r["survival"] == 1 for _, results in rows for r in results)
    lines += ["", f"- all error templates survive in every run: **{'pass' if every else 'miss'}**"]
    return "\n".join(lines) + "\n"


def write_doc(section):
    """Replace the "Log compaction" section of the doc, keeping every other section."""
    replace_section(DOC_PATH, SECTION_TITLE, section)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes", default="10000,50000,100000", help="lines per run, comma-separated"
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--write-doc", action="store_true", help=f"update {DOC_PATH.name}")
    args = parser.parse_args()
    rows, loads = [], []
    for size in (int(s) for s in args.sizes.split(",")):
        loads.append(os.getloadavg()[0])
        results = [run(size, args.seed + size + i) for i in range(args.runs)]
        rows.append((size, results))
        per_10k = [r["ms_per_10k"] for r in results]
        survival = [r["survival"] for r in results]
        print(
            f"{size:>7,} lines: {statistics.median(per_10k):.0f} ms per 10k lines "
            f"(p95 {nearest_rank(per_10k, 0.95):.0f}); error templates surviving "
            f"{', '.join(f'{s:.0%}' for s in survival)}; load {loads[-1]:.2f}"
        )
    section = render(rows, machine(), loads)
    print(section)
    if args.write_doc:
        write_doc(section)
        print(f"updated {DOC_PATH}")


if __name__ == "__main__":
    main()
