"""demo/run.py (`make demo`): the demo's incident through a real Prometheus, the demo log
server and a live Rootline ends in a report that names its real root cause, the page says
it is signals-only, and stopping leaves nothing running."""

import contextlib
import os
import re
import signal
import sys
import uuid
from pathlib import Path

import case_pack
import httpx
import pytest

from demo import run
from tests.processes import Process, free_port, wait_until
from tests.realprometheus import require_prometheus

PASSWORD = "demo-test-password"
DEMO_SECONDS = 240
STOP_SECONDS = 60


def running_with(marker):
    """Pids of the processes whose command line or environment holds `marker`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):  # gone meanwhile, or a zombie
            if marker.encode() in (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes():
                found.append(int(proc.name))
    return found


def log_in(client):
    form = client.get("/accounts/login/").text
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)[1]
    client.post(
        "/accounts/login/",
        data={"username": "admin", "password": PASSWORD, "csrfmiddlewaretoken": csrf},
    )


@pytest.mark.slow
def test_the_demo_incident_is_found_and_everything_stops(tmp_path, capsys):
    require_prometheus()
    _, [case] = case_pack.load(run.DATA_DIR)
    truth = case["truth"]["service"]
    environ = {**os.environ, "ANTHROPIC_API_KEY": "", "ROOTLINE_ADMIN_PASSWORD": PASSWORD}
    bind = f"127.0.0.1:{free_port()}"

    with contextlib.ExitStack() as stack:
        demo = run.start(
            stack, tmp_path, run.DATA_DIR, None, tmp_path / "demo.sqlite3", bind, None, environ
        )
        investigation = case_pack.wait_until_finished(
            demo.url, demo.token, demo.investigation_id, DEMO_SECONDS
        )
        with httpx.Client(base_url=demo.url, timeout=30, follow_redirects=True) as client:
            log_in(client)
            page = client.get(f"/investigations/{demo.investigation_id}/").text

    assert investigation["status"] == "completed", investigation["error"]
    assert investigation["report"]["source"] == "signals"
    assert truth in [s["service"] for s in investigation["report"]["suspects"]]
    assert investigation["suspects"][0]["service"] == truth
    assert "Signals-only report" in page and "set <code>ANTHROPIC_API_KEY</code>" in page
    assert "Timeline" in page and truth in page
    printed = capsys.readouterr().out
    assert demo.investigation_url in printed and f"password {PASSWORD}" not in printed
    assert "demo log server at http://127.0.0.1:" in printed
    assert running_with(str(tmp_path)) == []


@pytest.mark.slow
def test_ctrl_c_stops_everything_the_demo_started(tmp_path):
    require_prometheus()
    marker = f"rootline-demo-test-{uuid.uuid4()}"
    env = {
        **os.environ,
        "ANTHROPIC_API_KEY": "",
        "ROOTLINE_BIND": f"127.0.0.1:{free_port()}",
        "PYTHONUNBUFFERED": "1",
        "ROOTLINE_DEMO_TEST": marker,
    }
    env.pop("ROOTLINE_LOKI_URL", None)
    demo = Process(
        [sys.executable, "demo/run.py", "--database", str(tmp_path / "demo.sqlite3")],
        tmp_path / "demo.log",
        name="demo/run.py",
        cwd=run.ROOT,
        env=env,
    )
    try:
        wait_until(
            lambda: "until you press Ctrl-C" in demo.log() or not demo.running,
            DEMO_SECONDS,
            demo.describe,
        )
        assert demo.running, demo.describe()
        assert len(running_with(marker)) > 5  # Prometheus, gunicorn, qcluster and their workers
        temporary = Path(re.search(r"output: (\S+)/web\.log", demo.log())[1])
        assert temporary.is_dir()

        os.killpg(demo.popen.pid, signal.SIGINT)  # as Ctrl-C in a terminal
        demo.popen.wait(STOP_SECONDS)
    finally:
        demo.stop()

    output = demo.log_path.read_text()
    assert demo.popen.returncode == 0, output
    assert "SIGINT: stopping" in output and "stopped everything" in output
    assert running_with(marker) == []
    assert not temporary.exists()


def test_without_prometheus_it_names_the_package_to_install(monkeypatch):
    monkeypatch.setattr(run.shutil, "which", lambda name: None)

    with pytest.raises(SystemExit) as stopped:
        run.require_prometheus()

    assert "apt-get install prometheus" in str(stopped.value)
    assert "prometheus and promtool are not installed" in str(stopped.value)


def test_a_pack_of_no_dataset_is_not_called_a_real_incident(capsys):
    # bench/scale_pack.py's packs are made up: their source names a generator, no dataset.
    case = {"alert": {"labels": {"alertname": "A", "service": "frontend"}, "startsAt": "t"}}
    made_up = {"name": "ns", "system": "made up", "license": "generated", "source": {}}
    recorded = {**made_up, "license": "MIT", "source": {"repo": "https://example.org/d"}}

    run.describe_incident(made_up, case)
    run.describe_incident(recorded, case)

    made_up_said, recorded_said = capsys.readouterr().out.split("Rootline demo: ")[1:]
    assert made_up_said.startswith("an incident of made up, from pack ns (no dataset named)")
    assert recorded_said.startswith("a real incident of made up, from the dataset at https://")
    assert "A on frontend, firing since t" in made_up_said


@pytest.mark.parametrize(
    ("report", "said"),
    [
        ({"source": "signals"}, "(signals-only)"),
        ({"source": "agents"}, "(the Claude agents' report)"),
        (
            {"source": "signals", "agents_error": "the model API could not be reached"},
            "(signals-only; the model API could not be reached)",
        ),
    ],
)
def test_the_outcome_says_which_report_and_the_recorded_root_cause(report, said):
    suspects = [{"service": "ts-basic-service"}, {"service": "ts-travel-service"}]
    investigation = {
        "status": "completed",
        "started_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:00:06.5Z",
        "report": {**report, "root_cause": {"service": "ts-basic-service"}, "suspects": suspects},
    }
    _, [case] = case_pack.load(run.DATA_DIR)

    text = run.outcome(investigation, case)

    assert f"completed in 6.5 s {said}: root cause ts-basic-service;" in text
    assert "suspects ts-basic-service, ts-travel-service." in text
    assert text.endswith(
        "recorded root cause, which Rootline was not told: ts-basic-service, a wrong return "
        "value injected in code, injected at 2023-01-29T09:03:53Z."
    )
