"""Replaying a case pack of real incidents (shared/data/rca-cases/README.md) through a
running Rootline: the pack's metrics in a real Prometheus, its logs through Loki's read
API, each case's alert posted to the webhook as Alertmanager would, the investigation read
back through the JSON API.

The accuracy benchmark (bench/rca_accuracy.py) and `make demo` (demo/run.py) both replay
packs this way. Standard library only, besides the bench helpers it imports.
"""

import contextlib
import gzip
import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from loki_stub import LogStore, serve
from webhook_load import free_port, stop

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_SECONDS = 120
PUSH_BATCH_LINES = 5000
POLL_SECONDS = 0.5
LOG_TAIL_LINES = 40
FINISHED = ("completed", "failed", "cancelled")
# No Alertmanager sends the replayed alerts: this names the replay as their source.
REPLAY_EXTERNAL_URL = "http://alertmanager.replay:9093"
# Scrapes nothing: the backfilled blocks are all the data there is.
PROMETHEUS_CONFIG = "global:\n  evaluation_interval: 1m\n"


def load(pack_dir):
    """(pack.json as a dict, the cases of cases.jsonl in order)."""
    pack_dir = Path(pack_dir)
    pack = json.loads((pack_dir / "pack.json").read_text())
    cases = [json.loads(line) for line in (pack_dir / "cases.jsonl").read_text().splitlines()]
    return pack, cases


def has_logs(pack):
    return "logs" in pack.get("modalities", [])


def service_settings(pack):
    """Rootline's settings for the pack's labels: the label that names a service is the
    one pack.json names (every series, stream and alert of the pack carries it), not
    Rootline's default list of likely names."""
    return {"ROOTLINE_SERVICE_LABELS": pack.get("service_label") or "service"}


def start_prometheus(stack, pack_dir, tmp):
    """Backfill the pack's metrics with promtool into a TSDB under `tmp` and serve it on a
    free loopback port until `stack` closes; returns the URL."""
    om = tmp / "metrics.om"
    with gzip.open(Path(pack_dir) / "metrics.om.gz", "rb") as source, om.open("wb") as target:
        shutil.copyfileobj(source, target)
    log("backfilling metrics with promtool ...")
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(om), str(tmp / "tsdb")],
        check=True,
        capture_output=True,
    )
    om.unlink()
    config = tmp / "prometheus.yml"
    config.write_text(PROMETHEUS_CONFIG)
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
    wait_for(f"{url}/-/ready", process, "prometheus", tmp / "prometheus.log")
    return url


def start_logs(stack, pack_dir, loki_url=None):
    """The pack's log lines pushed to the Loki at `loki_url` or, without one, served by
    bench/loki_stub.py until `stack` closes; returns the base URL to read them from."""
    path = Path(pack_dir) / "logs.jsonl.gz"
    if loki_url is None:
        server = stack.enter_context(serve(LogStore.from_jsonl_gz(path)))
        return server.url
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


def prepare_database(env):
    """Migrate the database of `env`'s DATABASE_URL, create the admin user as
    `setup_rootline` does, and return a new API token of it."""
    manage("migrate", "--noinput", "-v0", env=env)
    manage("setup_rootline", env=env)
    return manage("create_api_token", "admin", env=env).strip().splitlines()[-1]


def manage(*args, env):
    """Run `manage.py ARGS` and return what it printed; SystemExit with its output if it
    fails."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def post_alert(url, webhook_token, case):
    """POST the case's alert to the webhook as Alertmanager would, in a group of its own;
    fails unless it started an investigation."""
    body = {
        "receiver": "rootline",
        "status": "firing",
        "alerts": [case["alert"]],
        "groupLabels": {"case": case["id"]},
        "commonLabels": case["alert"]["labels"],
        "commonAnnotations": case["alert"]["annotations"],
        "externalURL": REPLAY_EXTERNAL_URL,
        "version": "4",
        "groupKey": f'{{}}:{{case="{case["id"]}"}}',
        "truncatedAlerts": 0,
    }
    answer = post_json(
        f"{url}/webhooks/alertmanager", body, headers={"Authorization": f"Bearer {webhook_token}"}
    )
    if answer.get("investigations_queued") != 1:
        raise SystemExit(f"case {case['id']}: the webhook answered {answer}")


def investigation_of(url, token, case, timeout_seconds):
    """The id of the investigation the case's alert started."""
    fingerprint = case["alert"]["fingerprint"]
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        alerts = get_json(f"{url}/api/v1/alerts?fingerprint={fingerprint}", headers)["items"]
        if alerts and alerts[0].get("investigation"):
            return alerts[0]["investigation"]
        time.sleep(POLL_SECONDS)
    raise SystemExit(f"case {case['id']}: no investigation in {timeout_seconds}s")


def wait_until_finished(url, token, investigation_id, timeout_seconds=None):
    """The investigation as the API gives it once it has finished (whatever its status);
    SystemExit after `timeout_seconds`, if given."""
    headers = {"Authorization": f"Bearer {token}"}
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    while deadline is None or time.monotonic() < deadline:
        investigation = get_json(f"{url}/api/v1/investigations/{investigation_id}", headers)
        if investigation["status"] in FINISHED:
            return investigation
        time.sleep(POLL_SECONDS)
    raise SystemExit(f"investigation {investigation_id} did not finish in {timeout_seconds}s")


def spawn(args, log_path, env=None):
    """A process in its own process group (so `stop` ends its children too), its output
    in `log_path`."""
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


def wait_for(url, process, name, log_path=None):
    """Wait until `url` answers 200; SystemExit if `process` exits first or it never does,
    with the end of its output when `log_path` is given."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with {process.returncode}{tail(log_path)}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:
            if answer.status == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"{name} did not answer {url} within {START_TIMEOUT_SECONDS}s{tail(log_path)}")


def tail(log_path, lines=LOG_TAIL_LINES):
    """The last lines of a process's output, to end an error message with ("" without)."""
    if log_path is None:
        return ""
    last = Path(log_path).read_text(errors="replace").splitlines()[-lines:]
    return f". The end of its output ({log_path}):\n" + "\n".join(last)


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


def log(message):
    print(message, file=sys.stderr, flush=True)
