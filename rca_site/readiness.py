"""What GET /readyz checks: can this Rootline take an alert and investigate it now?

- database: it answers.
- queue: django-q2's queue table can be read, a worker ran the scheduler recently (see
  rca_site/taskqueue.py: the only heartbeat that crosses machines), and no task has waited
  for a worker longer than ROOTLINE_QUEUE_MAX_WAIT.
- loki, prometheus: each configured backend answers a cheap authenticated API call
  (labels of the last five minutes; the query `1`) within READY_TIMEOUT_SECONDS, once,
  not cached. A backend that is not configured passes.

The answer is for anyone who can reach the URL (probes carry no credentials), so it names
each check and what failed but no URL, host or server detail that could hold a secret:
the full error goes to the log.
"""

import asyncio
import logging
from dataclasses import replace
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from investigations.telemetry import (
    BackendConfig,
    BackendUnavailable,
    LokiClient,
    PrometheusClient,
    QueryError,
    TelemetryError,
)
from investigations.tools.redaction import redact
from rca_site.taskqueue import queue_state

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 3.0
# The sweep is due every minute and a running qcluster runs the scheduler every 30 s.
SCHEDULER_SILENCE_SECONDS = 180
MAX_DETAIL_CHARS = 200
LOKI_LABELS_WINDOW = timedelta(minutes=5)


def database_error():
    """None when the database answers `SELECT 1`, else the DatabaseError it raised."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        return exc
    return None


def readiness():
    """(ready, {check name: {"ok": bool, ...}}); a failed check says why in "error"."""
    checks = {"database": check_database(), "queue": check_queue()}
    checks.update(asyncio.run(check_backends()))
    return all(check["ok"] for check in checks.values()), checks


def check_database():
    exc = database_error()
    if exc is None:
        return {"ok": True}
    log.warning("readiness: the database did not answer: %s", exc)
    return failed(f"the database did not answer ({type(exc).__name__})")


def check_queue():
    try:
        state = queue_state()
    except DatabaseError as exc:
        log.warning("readiness: the task queue could not be read: %s", exc)
        return failed(f"the task queue could not be read ({type(exc).__name__})")
    problems = []
    lag = state.scheduler_lag_seconds
    if lag is None:
        problems.append("the sweep is not scheduled: run `manage.py migrate`")
    elif lag > SCHEDULER_SILENCE_SECONDS:
        problems.append(
            f"no worker has run the scheduler for {lag:.0f}s: is a `manage.py qcluster` running?"
        )
    max_wait = settings.ROOTLINE_QUEUE_MAX_WAIT.total_seconds()
    if state.oldest_wait_seconds > max_wait:
        problems.append(
            f"a task has waited {state.oldest_wait_seconds:.0f}s for a worker, more than "
            f"ROOTLINE_QUEUE_MAX_WAIT ({max_wait:.0f}s): the workers are not keeping up"
        )
    numbers = {
        "waiting": state.waiting,
        "claimed": state.claimed,
        "oldest_wait_seconds": round(state.oldest_wait_seconds, 1),
        "scheduler_lag_seconds": None if lag is None else round(lag, 1),
    }
    if problems:
        return {**failed("; ".join(problems)), **numbers}
    return {"ok": True, **numbers}


async def check_backends():
    names = list(PROBES)
    results = await asyncio.gather(*(check_backend(name) for name in names))
    return dict(zip(names, results, strict=True))


async def check_backend(name):
    client_type, probe = PROBES[name]
    config = BackendConfig.from_settings(client_type.settings_name)
    if config is None:
        return {"ok": True, "configured": False}
    timeout = min(config.timeout_seconds, READY_TIMEOUT_SECONDS)
    client = client_type(
        replace(config, timeout_seconds=timeout), retry_attempts=1, cache_seconds=0
    )
    try:
        async with client, asyncio.timeout(READY_TIMEOUT_SECONDS):
            await probe(client)
    except TimeoutError:
        return failed(f"no answer within {READY_TIMEOUT_SECONDS:g}s")
    except TelemetryError as exc:
        log.warning("readiness: %s", exc)
        return failed(backend_failure(exc))
    return {"ok": True}


def backend_failure(exc):
    """What went wrong, without the backend's URL; the server's words cut short."""
    if isinstance(exc, BackendUnavailable):
        detail = f"no answer: {exc.last_error}"
    elif isinstance(exc, QueryError):
        detail = f"refused the check with HTTP {exc.status}: {exc.message}"
    else:
        detail = "answered, but not as its API does: check the URL and API prefix"
    detail = redact(detail).text
    return detail if len(detail) <= MAX_DETAIL_CHARS else detail[:MAX_DETAIL_CHARS] + " [...]"


def failed(error):
    return {"ok": False, "error": error}


async def loki_probe(loki):
    now = timezone.now()
    await loki.labels(now - LOKI_LABELS_WINDOW, now)


async def prometheus_probe(prometheus):
    await prometheus.query("1")


PROBES = {"loki": (LokiClient, loki_probe), "prometheus": (PrometheusClient, prometheus_probe)}
