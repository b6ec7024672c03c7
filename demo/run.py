"""`make demo`: Rootline investigating a real, recorded incident, end to end.

    .venv/bin/python demo/run.py [--pack DIR] [--case ID]

The incident is a case of demo/data/ (cut from the case packs of shared/data/rca-cases;
demo/data/README.md says from what, and its license). Its recorded metrics are backfilled
into a real Prometheus; its log lines are served through Loki's read API by a demo log server
(bench/loki_stub.py), or pushed to the real Loki at ROOTLINE_LOKI_URL when that is set in
the environment. Rootline's web and worker run as the Procfile has them (what `make run`
starts with honcho), each in a process group of its own, on a database of their own
(demo.sqlite3, made afresh each time), investigating as of the alert's startsAt + 5 minutes
(ROOTLINE_REPLAY_AS_OF), since the data is in the past.
The case's alert is posted to the webhook as Alertmanager would; the investigation page and
the login are printed. Ctrl-C (SIGINT), SIGTERM or SIGHUP stops everything it started.
"""

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import case_pack  # noqa: E402
from webhook_load import free_port, stop  # noqa: E402

from manage import read_local_env  # noqa: E402

DATA_DIR = ROOT / "demo" / "data" / "nezha-tt-0129-demo"
DATABASE = ROOT / "demo.sqlite3"
VENV_BIN = Path(sys.executable).parent
DEFAULT_BIND = "127.0.0.1:8000"
AS_OF = "5m"
INVESTIGATION_START_TIMEOUT_SECONDS = 60
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PROMETHEUS_BINARIES = ("prometheus", "promtool")
PROMETHEUS_PACKAGE = "prometheus"
# How the case packs name their faults (shared/data/rca-cases/README.md, cases.jsonl).
FAULTS = {
    "cpu_contention": "CPU contention",
    "cpu_consumed": "CPU consumed",
    "network_delay": "network delay",
    "return": "a wrong return value injected in code",
    "exception": "an exception injected in code",
    "cpu": "a CPU hog",
    "mem": "a memory leak",
}


class Stopped(Exception):
    """A stop signal arrived: everything the demo started is to be stopped."""


@dataclass
class Demo:
    """A running demo: where Rootline is and the investigation of the incident."""

    url: str
    token: str
    investigation_id: int
    case: dict
    processes: dict  # {"web": Popen, "worker": Popen}, as the Procfile names them
    output_dir: Path  # their output: web.log, worker.log

    @property
    def investigation_url(self):
        return f"{self.url}/investigations/{self.investigation_id}/"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", type=Path, default=DATA_DIR, help="a case pack directory")
    parser.add_argument("--case", help="the id of the case to replay (default: the first)")
    parser.add_argument("--database", type=Path, default=DATABASE, help="SQLite file to use")
    args = parser.parse_args()
    # Only what this command was given, not .env (which may point `make run` at a real Loki
    # and a real port): the demo writes its incident into this Loki and serves on this bind.
    loki_url = os.getenv("ROOTLINE_LOKI_URL") or None
    bind = os.getenv("ROOTLINE_BIND") or free_bind()
    read_local_env(ROOT / ".env")
    try:
        for signum in STOP_SIGNALS:
            signal.signal(signum, stop_on_signal)
        require_prometheus()
        with contextlib.ExitStack() as stack:
            stack.callback(say, "stopped everything the demo started.")
            tmp = Path(tempfile.mkdtemp(prefix="rootline-demo-"))
            stack.callback(shutil.rmtree, tmp, ignore_errors=True)
            demo = start(stack, tmp, args.pack, args.case, args.database, bind, loki_url)
            follow(demo)
    except Stopped:
        pass  # everything is stopped on the way out of the `with`


def stop_on_signal(signum, frame):
    for other in STOP_SIGNALS:  # stopping takes a few seconds: once is enough
        signal.signal(other, signal.SIG_IGN)
    say(f"\n{signal.Signals(signum).name}: stopping ...")
    raise Stopped


def require_prometheus():
    missing = [name for name in PROMETHEUS_BINARIES if shutil.which(name) is None]
    if missing:
        raise SystemExit(
            f"The demo serves the incident's metrics with a real Prometheus, and "
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed. "
            f"Install the Debian package "
            f"{PROMETHEUS_PACKAGE} (it has both):\n\n"
            f"    sudo apt-get install {PROMETHEUS_PACKAGE}\n\nthen run `make demo` again."
        )


def free_bind():
    """127.0.0.1:8000 (as `make run`) when it is free, else another free loopback port."""
    host, port = DEFAULT_BIND.split(":")
    with socket.socket() as sock:
        # As gunicorn binds: a port a finished run left in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, int(port)))
        except OSError:
            return f"{host}:{free_port()}"
    return DEFAULT_BIND


def start(stack, tmp, pack_dir, case_id, database, bind, loki_url=None, environ=None):
    """The demo's set-up, up to the investigation's start; `stack` stops all it started.

    `environ` (default: this process's) is the base environment of Rootline's processes;
    the demo's own settings override it.
    """
    environ = dict(os.environ if environ is None else environ)
    pack, cases = case_pack.load(pack_dir)
    case = next((c for c in cases if c["id"] == case_id), None) if case_id else cases[0]
    if case is None:
        raise SystemExit(f"no case {case_id} in {pack_dir}")
    describe_incident(pack, case)

    prometheus_url = case_pack.start_prometheus(stack, pack_dir, tmp)
    say(f"  metrics   Prometheus at {prometheus_url}, the incident's recorded metrics")
    settings = {
        "DATABASE_URL": f"sqlite:///{Path(database).resolve()}",
        "ROOTLINE_PROMETHEUS_URL": prometheus_url,
        "ROOTLINE_PROMETHEUS_API_PREFIX": "/api/v1",
        "ROOTLINE_REPLAY_AS_OF": AS_OF,
        "ROOTLINE_BIND": bind,
        "ROOTLINE_LOKI_URL": "",
        **case_pack.service_settings(pack),
    }
    if case_pack.has_logs(pack):
        settings["ROOTLINE_LOKI_URL"] = case_pack.start_logs(stack, pack_dir, loki_url)
        if loki_url is None:
            settings["ROOTLINE_LOKI_API_PREFIX"] = "/loki/api/v1"
            say(
                f"  logs      demo log server at {settings['ROOTLINE_LOKI_URL']}: the "
                f"incident's recorded log lines through Loki's read API (bench/loki_stub.py; "
                f"set ROOTLINE_LOKI_URL to use a real Loki)"
            )
        else:
            say(f"  logs      the incident's recorded log lines pushed to the Loki at {loki_url}")
    for name in ("SECRET_KEY", "ROOTLINE_WEBHOOK_TOKEN"):  # .env has them after `make`
        if not environ.get(name):
            settings[name] = secrets.token_urlsafe(32)

    for path in (database, *(f"{database}-{suffix}" for suffix in ("wal", "shm"))):
        Path(path).unlink(missing_ok=True)
    password = environ.get("ROOTLINE_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
    setup = {**environ, **settings, "ROOTLINE_ADMIN_PASSWORD": password}
    case_pack.manage("collectstatic", "--noinput", "-v0", env=setup)
    token = case_pack.prepare_database(setup)

    url, processes = start_rootline(stack, tmp, environ, settings)
    outputs = ", ".join(f"{name}.log" for name in processes)
    say(f"  Rootline  {url}/  {' and '.join(processes)} (output: {tmp}/{outputs})")
    say(f"  report    {report_kind(environ)}")
    case_pack.post_alert(url, setup["ROOTLINE_WEBHOOK_TOKEN"], case)
    investigation_id = case_pack.investigation_of(
        url, token, case, INVESTIGATION_START_TIMEOUT_SECONDS
    )
    demo = Demo(url, token, investigation_id, case, processes, tmp)
    login = "from ROOTLINE_ADMIN_PASSWORD" if environ.get("ROOTLINE_ADMIN_PASSWORD") else password
    say(
        f"\nThe alert was posted to the webhook as Alertmanager would. Watch the "
        f"investigation:\n\n    {demo.investigation_url}\n\n"
        f"    log in as admin, password {login}\n"
    )
    return demo


def start_rootline(stack, tmp, environ, settings):
    """The Procfile's processes (what `make run` starts with honcho), each in a process
    group of its own with the demo's settings, so that stopping one reaches all of its
    children; returns (URL, {name: process}) once the web answers."""
    env = {**environ, **settings, "PATH": f"{VENV_BIN}{os.pathsep}{environ.get('PATH', '')}"}
    processes = {}
    for name, command in procfile(ROOT / "Procfile").items():
        # exec: the server itself leads its group and gets the SIGTERM of `stop`.
        process = case_pack.spawn(["sh", "-c", f"exec {command}"], tmp / f"{name}.log", env=env)
        stack.callback(stop, process)
        processes[name] = process
    host, port = settings["ROOTLINE_BIND"].rsplit(":", 1)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"  # noqa: S104
    case_pack.wait_for(f"{url}/healthz", processes["web"], "the web process", tmp / "web.log")
    return url, processes


def procfile(path):
    """{process type: command} of a Procfile."""
    entries = (
        line.split(":", 1)
        for line in path.read_text().splitlines()
        if ":" in line and not line.lstrip().startswith("#")
    )
    return {name.strip(): command.strip() for name, command in entries}


def describe_incident(pack, case):
    alert = case["alert"]
    repo = pack.get("source", {}).get("repo")
    origin = (
        f"a real incident of {pack['system']}, from the dataset at {repo} "
        f"({pack['license']} license; see demo/data/README.md)"
        if repo
        else f"an incident of {pack['system']}, from pack {pack['name']} (no dataset named)"
    )
    say(
        f"Rootline demo: {origin}\n"
        f"  alert     {alert['labels']['alertname']} on {alert['labels']['service']}, "
        f"firing since {alert['startsAt']}"
    )


def report_kind(environ):
    if environ.get("ANTHROPIC_API_KEY") or environ.get("ANTHROPIC_API_KEY_FILE"):
        return "the Claude agents investigate after the signal scan (ANTHROPIC_API_KEY is set)"
    return (
        "signals-only (the deterministic scan, no LLM); set ANTHROPIC_API_KEY to have the "
        "Claude agents investigate"
    )


def follow(demo):
    """Say how the investigation ended, then keep everything running until stopped."""
    try:
        investigation = case_pack.wait_until_finished(demo.url, demo.token, demo.investigation_id)
    except OSError as e:
        fail(demo, "web", f"Rootline stopped answering ({e})")
    say(outcome(investigation, demo.case))
    say(f"\n{demo.investigation_url} stays up until you press Ctrl-C.")
    while True:
        for name, process in demo.processes.items():
            if process.poll() is not None:
                fail(demo, name, f"Rootline's {name} process exited with {process.returncode}")
        time.sleep(1)


def outcome(investigation, case):
    truth = case["truth"]
    fault = FAULTS.get(truth["fault"], truth["fault"])
    if investigation["status"] != "completed":
        text = f"The investigation {investigation['status']}: {investigation['error']}"
    else:
        took = case_pack.parse_time(investigation["finished_at"]) - case_pack.parse_time(
            investigation["started_at"]
        )
        report = investigation["report"] or {}
        kind = "the Claude agents' report" if report.get("source") == "agents" else "signals-only"
        if report.get("agents_error"):
            kind += f"; {report['agents_error']}"
        named = (report.get("root_cause") or {}).get("service") or "(none)"
        suspects = ", ".join(s["service"] for s in report.get("suspects", [])) or "(none)"
        text = (
            f"The investigation completed in {took.total_seconds():.1f} s ({kind}): root "
            f"cause {named}; suspects {suspects}."
        )
    return (
        f"{text}\nThe dataset's recorded root cause, which Rootline was not told: "
        f"{truth['service']}, {fault}, injected at {truth['inject_time']}."
    )


def fail(demo, name, message):
    raise SystemExit(message + case_pack.tail(demo.output_dir / f"{name}.log"))


def say(message):
    print(message, flush=True)


if __name__ == "__main__":
    main()
