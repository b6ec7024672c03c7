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
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from benchdoc import git_describe, replace_subsections  # noqa: E402
from loki_stub import LogStore, serve  # noqa: E402
from webhook_load import free_port, stop  # noqa: E402

DOC_PATH = ROOT / "docs" / "BENCHMARKS.md"
VENV_BIN = Path(sys.executable).parent
TOKEN = "bench-webhook-token"  # noqa: S105 (a throwaway instance on loopback)
ADMIN_PASSWORD = "bench-admin-password"  # noqa: S105
AS_OF = "5m"
START_TIMEOUT_SECONDS = 120
CASE_TIMEOUT_SECONDS = 120
PUSH_BATCH_LINES = 5000
LOKI_READY_TIMEOUT_SECONDS = 60
SECTION = "## Root-cause accuracy (signal scan)"
DOC_INTRO = """\
`bench/rca_accuracy.py PACK_DIR` replays each incident of a case pack
(shared/data/rca-cases/README.md) through Rootline as in production: the pack's metrics in a
real Prometheus (backfilled with promtool), its logs through Loki's HTTP API
(bench/loki_stub.py unless `--loki-url` is given), gunicorn and a qcluster worker on a fresh
SQLite database, no LLM. Each case's alert is posted to the webhook; the investigation runs
as of `startsAt` + 5 minutes and reads no later data. AC@k: share of cases whose true
root-cause service is in the top k suspects; Avg@5: the mean of AC@1..AC@5. Time: the
investigation's own duration (claim to completion, scope + scan + report), mean and p95.
Published methods ran on their own inputs (traces too), not on these files: they are the
bar, not a like-for-like score (see shared/data/rca-cases/README.md).
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
    pack = json.loads((pack_dir / "pack.json").read_text())
    cases = [json.loads(line) for line in (pack_dir / "cases.jsonl").read_text().splitlines()]
    tmp = Path(tempfile.mkdtemp(prefix=f"rca-{pack['name']}-"))
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        prometheus_url = start_prometheus(stack, pack_dir, tmp)
        loki_url = None
        if "logs" in pack.get("modalities", []):
            loki_url = start_logs(stack, pack_dir / "logs.jsonl.gz", args.loki_url)
        rootline = start_rootline(stack, tmp, prometheus_url, loki_url)
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


def log(message):
    print(message, file=sys.stderr, flush=True)


def start_prometheus(stack, pack_dir, tmp):
    """Backfill the pack's metrics and serve them; returns the URL."""
    om = tmp / "metrics.om"
    with gzip.open(pack_dir / "metrics.om.gz", "rb") as source, om.open("wb") as target:
        shutil.copyfileobj(source, target)
    log("backfilling metrics with promtool ...")
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(om), str(tmp / "tsdb")],
        check=True,
        capture_output=True,
    )
    om.unlink()
    config = tmp / "prometheus.yml"
    config.write_text("global:\n  evaluation_interval: 1m\n")
    port = free_port()
    process = spawn(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            "--storage.tsdb.retention.time=100y",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        tmp / "prometheus.log",
    )
    stack.callback(stop, process)
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/-/ready", process, "prometheus")
    return url


def start_logs(stack, path, loki_url):
    if loki_url is None:
        log("serving logs with bench/loki_stub.py ...")
        server = stack.enter_context(serve(LogStore.from_jsonl_gz(path)))
        return server.url
    log(f"pushing logs to {loki_url} ...")
    push_logs(path, loki_url.rstrip("/"))
    return loki_url.rstrip("/")


def push_logs(path, loki_url):
    """Push the pack's log lines to a Loki (it must accept old samples)."""
    streams = defaultdict(list)
    with gzip.open(path, "rt") as lines:
        for line in lines:
            entry = json.loads(line)
            streams[json.dumps(entry["labels"], sort_keys=True)].append(
                [entry["ts_ns"], entry["line"]]
            )
    batch, size = [], 0
    for labels, values in streams.items():
        for start in range(0, len(values), PUSH_BATCH_LINES):
            chunk = values[start : start + PUSH_BATCH_LINES]
            batch.append({"stream": json.loads(labels), "values": chunk})
            size += len(chunk)
            if size >= PUSH_BATCH_LINES:
                post_json(f"{loki_url}/loki/api/v1/push", {"streams": batch})
                batch, size = [], 0
    if batch:
        post_json(f"{loki_url}/loki/api/v1/push", {"streams": batch})


def start_rootline(stack, tmp, prometheus_url, loki_url):
    """gunicorn and qcluster on a fresh SQLite database; returns (base URL, API token)."""
    env = {
        **os.environ,
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
    manage = [sys.executable, "manage.py"]
    for command in (["migrate", "--noinput", "-v0"], ["setup_rootline"]):
        subprocess.run(manage + command, cwd=ROOT, env=env, check=True, capture_output=True)
    token = (
        subprocess.run(
            [*manage, "create_api_token", "admin"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    port = free_port()
    web = spawn(
        [str(VENV_BIN / "gunicorn"), "rca_site.wsgi", "--bind", f"127.0.0.1:{port}"],
        tmp / "gunicorn.log",
        env=env,
    )
    stack.callback(stop, web)
    worker = spawn([*manage, "qcluster"], tmp / "qcluster.log", env=env)
    stack.callback(stop, worker)
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/healthz", web, "gunicorn")
    return url, token


def investigate(rootline, cases):
    """Post every case's alert, wait for its investigation; one result per case."""
    url, token = rootline
    for case in cases:
        body = {
            "receiver": "rootline",
            "status": "firing",
            "alerts": [case["alert"]],
            "groupLabels": {"case": case["id"]},
            "commonLabels": case["alert"]["labels"],
            "commonAnnotations": case["alert"]["annotations"],
            "externalURL": "http://alertmanager.bench:9093",
            "version": "4",
            "groupKey": f'{{}}:{{case="{case["id"]}"}}',
            "truncatedAlerts": 0,
        }
        answer = post_json(
            f"{url}/webhooks/alertmanager", body, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        if answer.get("investigations_queued") != 1:
            raise SystemExit(f"case {case['id']}: the webhook answered {answer}")
    log(f"{len(cases)} alerts posted; waiting for the investigations ...")
    results = []
    for n, case in enumerate(cases, 1):
        investigation = wait_for_investigation(url, token, case)
        ranked = [s["service"] for s in investigation["suspects"]]
        seconds = (
            parse_time(investigation["finished_at"]) - parse_time(investigation["started_at"])
        ).total_seconds()
        results.append({"case": case, "ranked": ranked, "seconds": seconds})
        hit = "hit" if ranked[:1] == [case["truth"]["service"]] else "miss"
        log(f"  {n}/{len(cases)} {case['id']}: {hit} {ranked[:3]} ({seconds:.1f} s)")
    return results


def wait_for_investigation(url, token, case):
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + CASE_TIMEOUT_SECONDS
    fingerprint = case["alert"]["fingerprint"]
    while time.monotonic() < deadline:
        alerts = get_json(f"{url}/api/v1/alerts?fingerprint={fingerprint}", headers)["items"]
        if alerts and alerts[0].get("investigation"):
            investigation = get_json(
                f"{url}/api/v1/investigations/{alerts[0]['investigation']}", headers
            )
            if investigation["status"] in ("completed", "failed", "cancelled"):
                if investigation["status"] != "completed":
                    raise SystemExit(f"case {case['id']}: {investigation['error']}")
                return investigation
        time.sleep(0.5)
    raise SystemExit(f"case {case['id']}: no finished investigation in {CASE_TIMEOUT_SECONDS}s")


def score(results):
    hits = [0] * 5
    for result in results:
        truth = result["case"]["truth"]["service"]
        for k in range(5):
            hits[k] += truth in result["ranked"][: k + 1]
    ac = [h / len(results) for h in hits]
    seconds = sorted(r["seconds"] for r in results)
    return {
        "ac": ac,
        "avg5": sum(ac) / 5,
        "mean_seconds": statistics.fmean(seconds),
        "p95_seconds": seconds[min(len(seconds) - 1, round(0.95 * (len(seconds) - 1)))],
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
        "| AC@1 | AC@2 | AC@3 | AC@4 | AC@5 | Avg@5 | mean s/investigation | p95 s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        "| " + " | ".join(f"{a:.2f}" for a in ac) + f" | {summary['avg5']:.2f} | "
        f"{summary['mean_seconds']:.1f} | {summary['p95_seconds']:.1f} |",
        "",
    ]
    wrong = [r for r in results if r["ranked"][:1] != [r["case"]["truth"]["service"]]]
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


def spawn(args, log_path, env=None):
    with open(log_path, "wb") as output:
        return subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for(url, process, name):
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with {process.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:
            if answer.status == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"{name} did not answer {url} within {START_TIMEOUT_SECONDS}s")


def post_json(url, body, headers=None):
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            text = answer.read()
    except urllib.error.HTTPError as e:
        raise SystemExit(f"POST {url}: {e.code} {e.read()[:500]!r}") from None
    return json.loads(text) if text.strip() else {}


def get_json(url, headers):
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def parse_time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


if __name__ == "__main__":
    main()
