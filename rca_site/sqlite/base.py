"""SQLite with writers that queue instead of sleeping: Django's backend plus a write lock.

Every write transaction here starts with BEGIN IMMEDIATE, so only one connection at a
time can be in one. Left to SQLite, the others wait in its busy handler, which sleeps 1,
2, 5, 10, ... up to 100 ms between tries: under a burst of webhook deliveries a writer
routinely sleeps well after the lock came free, and the cores sit idle. Here a writer
first takes an exclusive flock on a file beside the database, polled every 50 us to 1
ms, and holds it until commit or rollback; SQLite's own lock is then free almost every
time. Writes outside a transaction (autocommit) skip the flock and keep SQLite's busy
timeout, so nothing can deadlock on it. An in-memory database has no file and no lock.
"""

import fcntl
import os
import time

from django.db import OperationalError
from django.db.backends.sqlite3 import base

FIRST_WAIT_SECONDS = 0.00005
LONGEST_WAIT_SECONDS = 0.001


class DatabaseWrapper(base.DatabaseWrapper):
    _write_lock_fd = None
    _write_locked = False

    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        if not self.is_in_memory_db():
            name = str(self.settings_dict["NAME"]).removeprefix("file:").partition("?")[0]
            path = f"{name}-writelock"
            self._write_lock_fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return connection

    def _start_transaction_under_autocommit(self):
        self._take_write_lock()
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._release_write_lock()
            raise

    def _commit(self):
        try:
            super()._commit()
        finally:
            self._release_write_lock()

    def _rollback(self):
        try:
            super()._rollback()
        finally:
            self._release_write_lock()

    def _close(self):
        try:
            super()._close()
        finally:
            self._release_write_lock()
            if self._write_lock_fd is not None:
                os.close(self._write_lock_fd)
                self._write_lock_fd = None

    def _take_write_lock(self):
        if self._write_lock_fd is None or self._write_locked:
            return
        deadline = time.monotonic() + self.settings_dict["OPTIONS"].get("timeout", 5)
        wait = FIRST_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(self._write_lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise OperationalError("database is locked (write lock)") from None
                time.sleep(wait)
                wait = min(wait * 2, LONGEST_WAIT_SECONDS)
            else:
                self._write_locked = True
                return

    def _release_write_lock(self):
        if self._write_locked:
            fcntl.flock(self._write_lock_fd, fcntl.LOCK_UN)
            self._write_locked = False
