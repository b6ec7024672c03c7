"""A throwaway PostgreSQL cluster on loopback, for fault tests and benchmarks that stop and
restart their database: never the machine's own PostgreSQL, which others use.

    with PrivateCluster() as cluster:   # initdb in a new folder, then start
        url = cluster.create_database("rootline")
        cluster.stop()    # fast shutdown: sessions are ended, new connections refused
        cluster.start()

It lives in a new folder of the system's temporary directory (the user it runs as must
reach it: a test's tmp_path is private to root), listens on 127.0.0.1 on a free port (and
on a socket in that folder), trusts local connections as `postgres`, and is stopped
(immediate shutdown) and deleted on exit. initdb and the server refuse to run as root; as
root they run as the `postgres` user.
`missing()` says why no cluster can be made here, or returns None.
"""

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

SERVER_USER = "postgres"
START_TIMEOUT_SECONDS = 60
COMMAND_TIMEOUT_SECONDS = 120


def binaries():
    """The folder of initdb and pg_ctl: on PATH, else the newest Debian install, or None."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    return Path(versions[-1]).parent if versions else None


def _version(path):
    return int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0


def missing():
    """Why no private cluster can run here (a sentence), or None when one can."""
    if binaries() is None:
        return "PostgreSQL's initdb and pg_ctl are not installed (Debian package postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return f"running as root and there is no {SERVER_USER!r} user to run PostgreSQL as"
    return None


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateCluster:
    """One cluster; `init()` makes its folder (`directory`)."""

    def __init__(self, port=None):
        self.directory = None
        self.port = port or _free_port()
        self._bin = binaries()

    @property
    def data(self):
        return self.directory / "data"

    @property
    def log_path(self):
        return self.directory / "server.log"

    @property
    def admin_url(self):
        return self.url("postgres")

    def url(self, database):
        return f"postgres://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args):
        command = [str(self._bin / args[0]), *map(str, args[1:])]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
        return done

    def init(self):
        self.directory = Path(tempfile.mkdtemp(prefix="rootline-postgres-"))
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(self.directory, user.pw_uid, user.pw_gid)
        self._run(
            "initdb", "-D", self.data, "-U", SERVER_USER, "--auth=trust", "-E", "UTF8", "--no-sync"
        )
        return self

    def start(self):
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory}"
        self._run(
            "pg_ctl", "start", "-w", "-t", START_TIMEOUT_SECONDS, "-D", self.data,
            "-l", self.log_path, "-o", options,
        )  # fmt: skip
        return self

    def stop(self, mode="fast"):
        """Stop the server: "fast" ends every session (as a restart does), "immediate"
        kills it without a checkpoint (as a crash does)."""
        self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", self.data)

    def create_database(self, name):
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log(self):
        exists = self.directory is not None and self.log_path.exists()
        return self.log_path.read_text(errors="replace") if exists else ""

    def __enter__(self):
        self.init()
        try:
            return self.start()
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise

    def __exit__(self, *exc_info):
        with contextlib.suppress(RuntimeError):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)
