"""Real processes for end-to-end tests: start them, wait on them, always stop them.

Plain helpers (not fixtures) so tests anywhere in the suite can use them.
"""

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

POLL_SECONDS = 0.1
LOG_TAIL_CHARS = 6000


def wait_until(condition, timeout, describe):
    """Poll `condition()` until it returns something truthy, and return that.

    After `timeout` seconds the test fails with "not within ...: <describe()>"; `describe`
    is called only then, so it can show logs and the rows as they are at that moment.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout}s: {describe()}", pytrace=False)
        time.sleep(POLL_SECONDS)


def free_port():
    """A TCP port free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url(settings_dict):
    """A DATABASE_URL that makes another process (qcluster, gunicorn) open this database.

    Give it `django.db.connection.settings_dict` inside a test to point a subprocess at
    the test database. An in-memory SQLite database cannot be shared, so it is refused.
    """
    engine = settings_dict["ENGINE"]
    name = str(settings_dict["NAME"])
    if engine in ("django.db.backends.sqlite3", "rca_site.sqlite"):
        if name == ":memory:" or "mode=memory" in name:
            raise ValueError(f"SQLite database {name!r} is in memory; no other process can open it")
        return f"sqlite:///{Path(name).resolve()}"
    if engine == "django.db.backends.postgresql":
        user = quote(settings_dict.get("USER") or "", safe="")
        password = settings_dict.get("PASSWORD") or ""
        credentials = f"{user}:{quote(password, safe='')}" if password else user
        host = quote(settings_dict.get("HOST") or "", safe="")  # a socket directory is a path
        port = settings_dict.get("PORT")
        netloc = f"{credentials}@{host}" if credentials else host
        if port:
            netloc += f":{port}"
        return f"postgres://{netloc}/{quote(name, safe='')}"
    raise ValueError(f"no DATABASE_URL for database engine {engine}")


def is_ready(url):
    """True when `url`/-/ready answers 200 (Prometheus and Alertmanager both have it)."""
    try:
        return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def wait_ready(process, url, timeout):
    """Wait until the process at `url` is ready; fail the test if it exits or never is."""
    wait_until(
        lambda: not process.running or is_ready(url),
        timeout,
        lambda: f"{process.name} did not get ready. {process.describe()}",
    )
    if not process.running:
        pytest.fail(f"{process.name} exited at start. {process.describe()}", pytrace=False)


class Process:
    """A subprocess in its own process group, with stdout and stderr in a log file."""

    def __init__(self, args, log_path, name=None, **popen_kwargs):
        self.name = name or Path(args[0]).name
        self.log_path = Path(log_path)
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **popen_kwargs,
        )

    @property
    def running(self):
        return self.popen.poll() is None

    def log(self, tail=LOG_TAIL_CHARS):
        """The end of what the process wrote, for assertion messages."""
        self._log.flush()
        text = self.log_path.read_text(errors="replace")
        return text if len(text) <= tail else "...\n" + text[-tail:]

    def describe(self):
        state = "running" if self.running else f"exited with {self.popen.returncode}"
        return f"{self.name} ({state}) wrote:\n{self.log()}"

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL to the whole group after `timeout` seconds.

        Children it leaves behind (qcluster's workers) are killed with the group.
        """
        try:
            if self.running:
                self.popen.send_signal(signal.SIGTERM)
                try:
                    self.popen.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._kill_group()
                    self.popen.wait(timeout)
            self._kill_group()
        finally:
            self._log.close()

    def kill(self):
        """SIGKILL to the whole group at once, as when a machine or container dies."""
        self._kill_group()
        self.popen.wait(10)

    def _kill_group(self):
        with contextlib.suppress(ProcessLookupError):  # nothing of the group is left
            os.killpg(self.popen.pid, signal.SIGKILL)
