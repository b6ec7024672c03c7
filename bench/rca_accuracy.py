"""How often the signal scan names the true root cause, on a case pack of real incidents.

    .venv/bin/python bench/rca_accuracy.py PACK_DIR [--loki-url URL] [--write-doc]

PACK_DIR is in the format of shared/data/rca-cases/README.md. The pack's metrics are
backfilled with promtool into a temporary TSDB served by a real Prometheus; its logs (if
any) are pushed to the Loki at --loki-url, or served by bench/loki_stub.py. Rootline runs
as in production (gunicorn and a qcluster worker, a fresh SQLite database, no LLM), each
investigation as of the alert's startsAt + 5 minutes (ROOTLINE_REPLAY_AS_OF). Each case's
alert is posted to the webhook as Alertmanager would, in a group of its own; the suspects
are read back through the JSON API. The last line printed is exactly
`AC@1=<x> AC@3=<x> Avg@5=<x> cases=<n>`.
"""

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import case_pack  # noqa: E402
from benchdoc import git_describe, nearest_rank, replace_subsections  # noqa: E402
from case_pack import log, parse_time, spawn, wait_for  # noqa: E402
from webhook_load import free_port, stop  # noqa: E402

DOC_PATH = ROOT / "docs" / "BENCHMARKS.md"
VENV_BIN = Path(sys.executable).parent
TOKEN = "bench-webhook-token"  # noqa: S105 (a throwaway instance on loopback)
ADMIN_PASSWORD = "bench-admin-password"  # noqa: S105
AS_OF = "5m"
CASE_TIMEOUT_SECONDS = 120
SECTION = "## Root-cause accuracy (signal scan)"
DOC_INTRO = """\
`bench/rca_accuracy.py PACK_DIR` replays each incident of a case pack
(shared/data/rca-cases/README.md) through Rootline as in production: the pack's metrics in a
real Prometheus (backfilled with promtool), its logs through Loki's HTTP API
(bench/loki_stub.py unless `--loki-url` is given), gunicorn and a qcluster worker on a fresh
SQLite database, no LLM. Each case's alert is posted to the webhook; the investigation runs
as of `startsAt` + 5 minutes and reads no later data. AC@k: share of cases whose true
root-cause service is in the top k suspects; Avg@5: the mean of AC@1..AC@5. Time: the
investigation's own duration (claim to completion, scope + scan + report), mean and p95
(nearest rank). Published methods ran on their own inputs (traces too), not on these files:
they are the bar, not a like-for-like score (see shared/data/rca-cases/README.md).
"""
PUBLISHED = {
    "nezha-ob": "best published (Nezha, FSE 2023, metrics+logs+traces): AC@1 0.93, AC@3 0.96;"
    " MicroRCA (metrics) AC@1 0.16; plain robust z over all metrics AC@1 0.45",
    "nezha-tt-0129": "best published (Nezha, TrainTicket, both days): AC@1 0.87, AC@3 0.98;"
    " plain robust z AC@1 0.04; counting error-like log lines AC@1 0.25",
    "sockshop-rcd": "best published (BARO, RCAEval ASE 2024): Avg@5 0.99; NSigma 0.98-0.99;"
    " plain robust z AC@1 1.00",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pack", type=Path, help="a case pack directory")
    parser.add_argument("--loki-url", help="a Loki to push the pack's logs to and read from")
    parser.add_argument("--write-doc", action="store_true", help=f"update {DOC_PATH.name}")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    pack_dir = args.pack.resolve()
    pack, cases = case_pack.load(pack_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f"rca-{pack['name']}-"))
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        prometheus_url = case_pack.start_prometheus(stack, pack_dir, tmp)
        loki_url = None
        if case_pack.has_logs(pack):
            log(
                f"pushing logs to {args.loki_url} ..."
                if args.loki_url
                else "serving logs with bench/loki_stub.py ..."
            )
            loki_url = case_pack.start_logs(stack, pack_dir, args.loki_url)
        rootline = start_rootline(stack, tmp, pack, prometheus_url, loki_url)
        results = investigate(rootline, cases)
    elapsed = time.monotonic() - started
    summary = score(results)
    report = describe(pack, args, summary, results, elapsed, loki_url is not None)
    print(report)
    if args.write_doc:
        write_doc(pack["name"], report)
        print(f"updated {DOC_PATH}")
    print(
        f"AC@1={summary['ac'][0]:.2f} AC@3={summary['ac'][2]:.2f} "
        f"Avg@5={summary['avg5']:.2f} cases={len(results)}"
    )


def start_rootline(stack, tmp, pack, prometheus_url, loki_url):
    """gunicorn and qcluster on a fresh SQLite database; returns (base URL, API token)."""
    env = {
        **os.environ,
        **case_pack.service_settings(pack),
        "DATABASE_URL": f"sqlite:///{tmp / 'rootline.sqlite3'}",
        "SECRET_KEY": "bench-secret-key-" + "x" * 40,
        "ROOTLINE_WEBHOOK_TOKEN": TOKEN,
        "ROOTLINE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "ROOTLINE_PROMETHEUS_URL": prometheus_url,
        "ROOTLINE_LOKI_URL": loki_url or "",
        "ROOTLINE_REPLAY_AS_OF": AS_OF,
        "ROOTLINE_LOG_LEVEL": "WARNING",
        "ANTHROPIC_API_KEY": "",
    }
    token = case_pack.prepare_database(env)
    port = free_port()
    web = spawn(
        [str(VENV_BIN / "gunicorn"), "rca_site.wsgi", "--bind", f"127.0.0.1:{port}"],
        tmp / "gunicorn.log",
        env=env,
    )
    stack.callback(stop, web)
    worker = spawn([sys.executable, "manage.py", "qcluster"], tmp / "qcluster.log", env=env)
    stack.callback(stop, worker)
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/healthz", web, "gunicorn")
    return url, token


def investigate(rootline, cases):
    """Post every case's alert, wait for its investigation; one result per case."""
    url, token = rootline
    for case in cases:
        case_pack.post_alert(url, TOKEN, case)
    log(f"{len(cases)} alerts posted; waiting for the investigations ...")
    results = []
    for n, case in enumerate(cases, 1):
        investigation = case_pack.wait_until_finished(
            url,
            token,
            case_pack.investigation_of(url, token, case, CASE_TIMEOUT_SECONDS),
            CASE_TIMEOUT_SECONDS,
        )
        if investigation["status"] != "completed":
            raise SystemExit(f"case {case['id']}: {investigation['error']}")
        ranked = [s["service"] for s in investigation["suspects"]]
        seconds = (
            parse_time(investigation["finished_at"]) - parse_time(investigation["started_at"])
        ).total_seconds()
        results.append(
            {
                "case": case,
                "ranked": ranked,
                # Nothing changed clearly: the alerting service leads on its alert alone.
                "alert_led": any(s.get("alert_score") for s in investigation["suspects"]),
                "seconds": seconds,
                "scan_seconds": scan_seconds(url, token, investigation["id"]),
            }
        )
        hit = "hit" if first_right(results[-1]) else "miss"
        log(f"  {n}/{len(cases)} {case['id']}: {hit} {ranked[:3]} ({seconds:.1f} s)")
    return results


def scan_seconds(url, token, investigation_id):
    """How long the signal scan took, from its timeline: the first `signals` step's start
    to the last one's end (the three scans run at once, then the ranking)."""
    steps = case_pack.get_json(
        f"{url}/api/v1/investigations/{investigation_id}/steps?after=0",
        {"Authorization": f"Bearer {token}"},
    )["items"]
    scan = [s for s in steps if s["agent"] == "signals"]
    return (
        max(parse_time(s["finished_at"]) for s in scan)
        - min(parse_time(s["started_at"]) for s in scan)
    ).total_seconds()


def first_right(result):
    """Whether a result's first suspect is its case's true root cause."""
    return result["ranked"][:1] == [result["case"]["truth"]["service"]]


def score(results):
    hits = [0] * 5
    for result in results:
        truth = result["case"]["truth"]["service"]
        for k in range(5):
            hits[k] += truth in result["ranked"][: k + 1]
    ac = [h / len(results) for h in hits]
    seconds = [r["seconds"] for r in results]
    scans = [r["scan_seconds"] for r in results]
    return {
        "ac": ac,
        "avg5": sum(ac) / 5,
        "mean_seconds": statistics.fmean(seconds),
        "p95_seconds": nearest_rank(seconds, 0.95),
        "scan_mean_seconds": statistics.fmean(scans),
        "scan_p95_seconds": nearest_rank(scans, 0.95),
    }


def describe(pack, args, summary, results, elapsed, with_logs):
    ac = summary["ac"]
    logs = "no logs in the pack"
    if with_logs:
        logs = f"logs from {'the Loki at ' + args.loki_url if args.loki_url else 'loki_stub'}"
    command = f"python bench/rca_accuracy.py {args.pack}"
    if args.loki_url:
        command += f" --loki-url {args.loki_url}"
    lines = [
        f"### {pack['name']}",
        "",
        f"`{command} --write-doc`",
        "",
        f"- {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; commit {git_describe()}; {pack['system']}, "
        f"{len(results)} cases; {logs}; whole run {elapsed:.0f} s",
        f"- {PUBLISHED.get(pack['name'], 'no published baseline recorded for this pack')}",
        "",
        "| AC@1 | AC@2 | AC@3 | AC@4 | AC@5 | Avg@5 | mean s/investigation | p95 s "
        "| scan: mean s | scan: p95 s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        "| " + " | ".join(f"{a:.2f}" for a in ac) + f" | {summary['avg5']:.2f} | "
        f"{summary['mean_seconds']:.1f} | {summary['p95_seconds']:.1f} | "
        f"{summary['scan_mean_seconds']:.1f} | {summary['scan_p95_seconds']:.1f} |",
        "",
    ]
    led = [r for r in results if r.get("alert_led")]
    if led:
        found = sum(map(first_right, led))
        lines += [
            f"Nothing changed clearly in {len(led)} of {len(results)} cases (the alerting "
            f"service led on its alert alone; right in {found}).",
            "",
        ]
    wrong = [r for r in results if not first_right(r)]
    if wrong:
        lines.append(f"Wrong at rank 1 ({len(wrong)}): case, fault, true service -> top 3")
        lines.append("")
        for r in wrong:
            truth = r["case"]["truth"]
            lines.append(
                f"- {r['case']['id']}, {truth['fault']}, {truth['service']} -> "
                f"{', '.join(r['ranked'][:3]) or '(none)'}"
            )
        lines.append("")
    return "\n".join(lines)


def write_doc(name, section):
    """Replace this pack's subsection of the accuracy section, keeping everything else."""
    replace_subsections(DOC_PATH, SECTION, DOC_INTRO, {name: section.strip() + "\n"}, sorted)


if __name__ == "__main__":
    main()
