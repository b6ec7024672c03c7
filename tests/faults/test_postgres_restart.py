"""PostgreSQL restarted during a burst of webhooks: refused with 503, none lost, none doubled.

A real gunicorn serves Rootline on a private, throwaway PostgreSQL cluster
(bench/private_postgres.py; never the machine's own). 40 groups of Alertmanager
notifications of 5 new alerts each arrive at a steady rate; two seconds in, the cluster
is shut down (fast: every session ended; or immediate, as a crash: no checkpoint, WAL
recovery on start), stays down a few seconds, and starts again.
Deliveries meanwhile must get 503 (Alertmanager retries), never a 202 for alerts not
stored, nor a 500 or no answer. The senders retry every 503 as Alertmanager does;
afterwards every alert sent is in the database exactly once, and each group has one
investigation.
"""

import asyncio
import threading
import time

import private_postgres
import pytest
from django.utils import timezone
from webhook_load import Phase, load_templates, migrate, send_all, server_environment, serving
from webhook_load import query as sql

from tests.e2e.conftest import running_in_ci

pytestmark = [pytest.mark.slow, pytest.mark.faults]

WORKERS = 2
GROUPS = 40  # one sender each: Alertmanager retries a group's notification in turn
DELIVERIES = 800
ALERTS_PER_DELIVERY = 5
RATE = 100  # deliveries per second: the burst lasts 8 s
DOWN_AFTER_SECONDS = 2
DOWN_SECONDS = 3
RETRY_SECONDS = 60


@pytest.fixture(scope="module")
def cluster():
    """A private cluster with Rootline's database, migrated: (cluster, database URL)."""
    reason = private_postgres.missing()
    if reason:
        if running_in_ci():
            pytest.fail(f"{reason}; CI must run the PostgreSQL restart test", pytrace=False)
        pytest.skip(reason)
    with private_postgres.PrivateCluster() as cluster:
        url = cluster.create_database("rootline")
        migrate(server_environment(url, WORKERS))
        yield cluster, url


def restart_after(cluster, mode, failures):
    """Stop the cluster DOWN_AFTER_SECONDS from now and start it DOWN_SECONDS later."""
    try:
        time.sleep(DOWN_AFTER_SECONDS)
        cluster.stop(mode)
        time.sleep(DOWN_SECONDS)
        cluster.start()
    except Exception as exc:  # shown by the test, which must not pass without its outage
        failures.append(exc)


@pytest.mark.parametrize(("number", "mode"), [(1, "fast"), (2, "immediate")])
def test_deliveries_while_postgresql_restarts_are_refused_then_stored_exactly_once(
    cluster, tmp_path, number, mode
):
    cluster, url = cluster
    templates = load_templates()
    environment = server_environment(url, WORKERS)
    with serving(environment, WORKERS, tmp_path / "gunicorn.log") as (_, port):
        shape = (ALERTS_PER_DELIVERY, DELIVERIES, GROUPS, 0, port, timezone.now(), GROUPS, RATE)
        burst = Phase(number, 1, *shape)
        requests = [burst.request(templates, i) for i in range(DELIVERIES)]
        offsets = [i / RATE for i in range(DELIVERIES)]
        failures = []
        restart = threading.Thread(target=restart_after, args=(cluster, mode, failures))
        restart.start()
        _, statuses, *_ = asyncio.run(
            send_all(port, requests, GROUPS, offsets, retry_seconds=RETRY_SECONDS)
        )
        restart.join()
    log = (tmp_path / "gunicorn.log").read_text()

    assert not failures, f"{failures}\n{cluster.log()[-3000:]}"
    assert statuses[503] > 0, "no delivery met the outage"
    assert set(statuses) == {202, 503}, (statuses, log[-3000:])
    assert statuses[202] == DELIVERIES  # every delivery accepted once in the end
    like = f'%namespace="{burst.namespace_prefix}%'
    [(stored, distinct, receipts)] = sql(
        "postgres",
        url,
        "SELECT count(*), count(DISTINCT (fingerprint, starts_at)), sum(receive_count) "
        "FROM alerts_alert WHERE group_key LIKE %s",
        (like,),
    )
    assert stored == distinct == burst.distinct_episodes() == DELIVERIES * ALERTS_PER_DELIVERY
    # Each 202 counted its alerts (more only if a 503 went to a delivery whose commit had
    # gone through as the connection died: Alertmanager's retry is then counted too).
    assert receipts >= DELIVERIES * ALERTS_PER_DELIVERY
    investigations = sql(
        "postgres",
        url,
        "SELECT group_key, count(*) FROM investigations_investigation WHERE group_key LIKE %s "
        "GROUP BY group_key",
        (like,),
    )
    assert sorted(n for _, n in investigations) == [1] * GROUPS
    print(
        f"{mode}: statuses {dict(statuses)}; alerts stored {stored}, receipts {receipts}; "
        f"investigations {len(investigations)}; 503 lines in the log: {log.count(' 503 ')}"
    )
