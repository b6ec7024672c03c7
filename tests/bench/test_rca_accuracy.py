"""bench/rca_accuracy.py's scoring and its report, on made-up results; and the whole bench
on made-up packs that lie elsewhere and name their services by a label Rootline would not
guess, one with its fault in the metrics, one with it only in the logs."""

import gzip
import json
import random
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import rca_accuracy

from tests.realprometheus import require_prometheus

BENCH = Path(rca_accuracy.__file__).resolve().parent


def result(truth, ranked, seconds=1.0):
    case = {"id": f"case-{truth}-{len(ranked)}", "truth": {"service": truth, "fault": "cpu"}}
    return {"case": case, "ranked": ranked, "seconds": seconds, "scan_seconds": seconds / 2}


def test_ac_at_k_and_avg_at_5():
    results = [
        result("a", ["a", "b", "c"]),  # rank 1
        result("b", ["a", "b", "c"]),  # rank 2
        result("c", ["x", "y", "z", "w", "c"], seconds=3.0),  # rank 5
        result("d", ["a", "b"]),  # missing
    ]

    summary = rca_accuracy.score(results)

    assert summary["ac"] == [0.25, 0.5, 0.5, 0.5, 0.75]
    assert summary["avg5"] == pytest.approx(0.5)
    assert summary["mean_seconds"] == pytest.approx(1.5)
    assert summary["p95_seconds"] == 3.0
    assert summary["scan_mean_seconds"] == pytest.approx(0.75)
    assert summary["scan_p95_seconds"] == 1.5


def test_the_report_counts_the_cases_where_nothing_changed_clearly():
    pack = {"name": "p", "system": "S"}
    args = type("Args", (), {"pack": "p", "loki_url": None})()
    led = [result("a", ["a", "b"]), result("b", ["a", "b"]), result("c", ["c"])]
    led[0]["alert_led"] = led[1]["alert_led"] = True
    text = rca_accuracy.describe(pack, args, rca_accuracy.score(led), led, 1.0, False)
    assert (
        "Nothing changed clearly in 2 of 3 cases (the alerting service led on its alert "
        "alone; right in 1)." in text
    )
    plain = rca_accuracy.describe(pack, args, rca_accuracy.score(led[2:]), led[2:], 1.0, False)
    assert "Nothing changed clearly" not in plain


def test_the_doc_section_of_one_pack_is_replaced_and_the_others_kept(tmp_path, monkeypatch):
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\n## Webhook ingest\n\nfigures\n")
    monkeypatch.setattr(rca_accuracy, "DOC_PATH", doc)

    rca_accuracy.write_doc("pack-b", "### pack-b\n\nfirst")
    rca_accuracy.write_doc("pack-a", "### pack-a\n\nonly")
    rca_accuracy.write_doc("pack-b", "### pack-b\n\nsecond")

    text = doc.read_text()
    assert text.count(rca_accuracy.SECTION) == 1
    assert "## Webhook ingest\n\nfigures" in text
    assert "first" not in text and "second" in text and "only" in text
    assert text.index("### pack-a") < text.index("### pack-b")


def write_pack(path, service_label, with_logs=False):
    """A one-case pack in the format of shared/data/rca-cases/README.md whose services are
    named by `service_label`; every series and stream also carries a `service` label with
    one value for all (a decoy: a bench that ignored pack.json would see a single service).
    The fault: db's CPU, or, `with_logs`, a new error in cache's logs and no change in any
    metric."""
    path.mkdir()
    start = datetime(2024, 3, 1, 12, 0, tzinfo=UTC).timestamp()
    alert_at = start + 70 * 60
    rng = random.Random(7)
    lines = []
    for metric in ("requests_per_second", "cpu_usage_ratio"):
        lines += [f"# HELP {metric} made up", f"# TYPE {metric} gauge"]
        for service in ("web", "db", "cache"):
            labels = (
                f'namespace="tiny",{service_label}="{service}",service="shop",pod="{service}-0"'
            )
            for minute in range(80):
                at = start + minute * 60
                value = 10 + rng.gauss(0, 0.5)
                faulty = service == "db" and metric == "cpu_usage_ratio" and not with_logs
                if faulty and at >= alert_at - 60:
                    value += 40  # the fault, injected a minute before the alert
                lines.append(f"{metric}{{{labels}}} {value:.4f} {at:.3f}")
    lines.append("# EOF")
    with gzip.open(path / "metrics.om.gz", "wt") as metrics:
        metrics.write("\n".join(lines) + "\n")
    if with_logs:
        write_logs(path, service_label, start, alert_at)
    pack = {
        "name": path.name,
        "namespace": "tiny",
        "service_label": service_label,
        "cases": 1,
        "modalities": ["metrics", "logs"] if with_logs else ["metrics"],
        "system": "made up",
        "notes": "",
    }
    (path / "pack.json").write_text(json.dumps(pack))
    stamp = datetime.fromtimestamp(alert_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    labels = {
        "alertname": "HighLatency",
        "namespace": "tiny",
        service_label: "web",
        "severity": "critical",
    }
    case = {
        "id": "tiny-1",
        "alert": {
            "status": "firing",
            "labels": labels,
            "annotations": {"summary": "slow"},
            "startsAt": stamp,
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": "0123456789abcdef",
        },
        "truth": {
            "service": "cache" if with_logs else "db",
            "fault": "exception" if with_logs else "cpu",
            "inject_time": stamp,
        },
        "window": {"start": stamp, "end": stamp},
    }
    (path / "cases.jsonl").write_text(json.dumps(case) + "\n")


def write_logs(path, service_label, start, alert_at):
    """logs.jsonl.gz: every service logs a request a minute and, now and then, a timeout;
    from a minute before the alert cache also fails every few seconds, as it never did."""
    rng = random.Random(11)
    entries = []
    for service in ("web", "db", "cache"):
        labels = {
            "namespace": "tiny",
            service_label: service,
            "service": "shop",
            "pod": f"{service}-0",
            "container": service,
        }
        for minute in range(80):
            at = start + minute * 60 + rng.uniform(0, 50)
            entries.append((at, labels, f"INFO handled GET /items/{rng.randint(1, 999)} in 12ms"))
            if minute % 9 == 4:
                entries.append((at + 1, labels, "WARN upstream call timed out, retrying"))
        if service == "cache":
            for second in range(-60, 300, 5):
                entries.append(
                    (alert_at + second, labels, "ERROR connection refused by 10.0.0.7:6379")
                )
    entries.sort(key=lambda entry: entry[0])
    with gzip.open(path / "logs.jsonl.gz", "wt") as logs:
        for at, labels, line in entries:
            logs.write(json.dumps({"labels": labels, "ts_ns": str(int(at * 1e9)), "line": line}))
            logs.write("\n")


def run_bench(pack_dir):
    """The bench as a subprocess on `pack_dir`, run from the pack's parent directory."""
    done = subprocess.run(
        [sys.executable, str(BENCH / "rca_accuracy.py"), str(pack_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=pack_dir.parent,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.mark.slow
def test_a_pack_anywhere_with_its_own_service_label_runs_end_to_end(tmp_path):
    require_prometheus()
    write_pack(tmp_path / "tiny", service_label="workload")
    done = run_bench(tmp_path / "tiny")
    assert done.stdout.splitlines()[-1] == "AC@1=1.00 AC@3=1.00 Avg@5=1.00 cases=1"


@pytest.mark.slow
def test_a_pack_anywhere_whose_fault_shows_only_in_its_logs_runs_end_to_end(tmp_path):
    # The logs go through bench/loki_stub.py; the metrics are noise alike in every
    # service, so only the logs can rank cache first.
    require_prometheus()
    write_pack(tmp_path / "tiny-logs", service_label="workload", with_logs=True)
    done = run_bench(tmp_path / "tiny-logs")
    assert "logs from loki_stub" in done.stdout
    assert done.stdout.splitlines()[-1] == "AC@1=1.00 AC@3=1.00 Avg@5=1.00 cases=1"


@pytest.mark.slow
def test_a_made_up_namespace_pack_is_in_the_format_and_runs_end_to_end(tmp_path):
    # bench/scale_pack.py, small: six services of three pods, about 600 series, six
    # cases (the fifth a crash, the sixth a slower version rolled out), the server latency
    # as a histogram. promtool takes its metrics as they are; every case's true service has
    # series, its alert fires on frontend a minute after the injection; the bench runs it,
    # finds the service that stopped reporting, and ranks the one rolled out.
    require_prometheus()
    pack = tmp_path / "namespace"
    options = ["--series", "600", "--services", "6", "--cases", "6", "--histograms"]
    options += ["--crashes", "--rollouts"]
    subprocess.run(
        [sys.executable, str(BENCH / "scale_pack.py"), str(pack), *options],
        check=True,
        capture_output=True,
        timeout=120,
    )
    meta = json.loads((pack / "pack.json").read_text())
    cases = [json.loads(line) for line in (pack / "cases.jsonl").read_text().splitlines()]
    assert meta["name"] == "namespace" and meta["cases"] == len(cases) == 6
    with gzip.open(pack / "metrics.om.gz", "rt") as metrics:
        text = metrics.read()
    assert text.endswith("# EOF\n")
    services = set(re.findall(r'service="([^"]+)"', text))
    assert len(services) == 6 and "frontend" in services
    series = {line.rsplit(" ", 2)[0] for line in text.splitlines() if "{" in line}
    assert len(series) >= 600 and f"{len(series)} series" in meta["system"]
    buckets = {s for s in series if s.startswith("http_server_request_duration_seconds_bucket{")}
    # Six services of three pods, and three new pods of the one rolled out.
    assert len(buckets) == (6 * 3 + 3) * 15 and all('le="' in s for s in buckets)
    for case in cases:
        assert case["truth"]["service"] in services - {"frontend"}
        assert case["alert"]["labels"]["service"] == "frontend"
        fired = datetime.fromisoformat(case["alert"]["startsAt"].replace("Z", "+00:00"))
        injected = datetime.fromisoformat(case["truth"]["inject_time"].replace("Z", "+00:00"))
        assert (fired - injected).total_seconds() == 60
    crash = cases[4]
    assert crash["truth"]["fault"] == "crash"
    down = crash["truth"]["service"]
    injected = datetime.fromisoformat(crash["truth"]["inject_time"].replace("Z", "+00:00"))
    quiet = {injected.timestamp() + 30 * n for n in range(8 * 2)}  # its eight minutes
    samples = [line.split() for line in text.splitlines() if f'service="{down}"' in line]
    # Nothing while it is down but Prometheus' `up`, at 0.
    assert samples and all(float(t) not in quiet for name, _, t in samples if name[:3] != "up{")
    assert {v for name, v, t in samples if name[:3] == "up{" and float(t) in quiet} == {"0"}
    rollout = cases[5]
    assert rollout["truth"]["fault"] == "rollout"
    rolled = rollout["truth"]["service"]
    rolled_at = datetime.fromisoformat(rollout["truth"]["inject_time"].replace("Z", "+00:00"))
    lives = {}  # pod: (first, last sample)
    for line in text.splitlines():
        if f'service="{rolled}"' in line:
            pod, t = re.search(r'pod="([^"]+)"', line)[1], float(line.rsplit(" ", 1)[1])
            first, last = lives.get(pod, (t, t))
            lives[pod] = (min(first, t), max(last, t))
    assert sorted(last < rolled_at.timestamp() for _, last in lives.values()) == [0, 0, 0, 1, 1, 1]
    assert sorted(first == rolled_at.timestamp() for first, _ in lives.values()) == [
        0,
        0,
        0,
        1,
        1,
        1,
    ]
    done = run_bench(pack)
    assert re.fullmatch(
        r"AC@1=\d\.\d\d AC@3=\d\.\d\d Avg@5=\d\.\d\d cases=6", done.stdout.splitlines()[-1]
    )
    assert re.search(rf"{crash['id']}: hit \['{down}',", done.stderr)
    # The rolled service is in the top three (second in this small pack, behind a caller:
    # its pods' latencies are drawn apart, so the old ones' pooled baseline is wide).
    assert re.search(rf"{rollout['id']}: (hit|miss) \[[^]]*'{rolled}'", done.stderr)
