"""An alert storm: 10,000 alerts in 200 groups of 50, as Alertmanager batches them
(bench/alert_storm.py's Storm: each group notified three times, with 20, 35 and 50 of its
firing alerts), posted as fast as 32 senders go to a real gunicorn on the test database.

Every alert is stored once and every receipt counted, and the grouping rule bounds the
investigations: one per group key (they all fall within ROOTLINE_GROUP_WINDOW; a group
seen again after it is tests/alerts/test_webhook.py's). The webhook's latency under the
storm is measured by bench/alert_storm.py, not asserted here (docs/RELIABILITY.md).
"""

import asyncio

import pytest
from alert_storm import Storm
from django.db.models import Count, Sum
from django.utils import timezone
from django_q.models import OrmQ
from webhook_load import TOKEN, load_templates, send_all, serving

from alerts.models import Alert
from investigations.models import Investigation
from tests.conftest import worker_environment

pytestmark = [pytest.mark.slow, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

WORKERS = 2
SENDERS = 32
RETRY_SECONDS = 60  # Alertmanager would retry a 503 (the database busy) for longer


def test_an_alert_storm_is_stored_whole_and_starts_one_investigation_per_group(tmp_path):
    environment = worker_environment(ROOTLINE_WEBHOOK_TOKEN=TOKEN, WEB_CONCURRENCY=str(WORKERS))
    with serving(environment, WORKERS, tmp_path / "gunicorn.log") as (_, port):
        storm = Storm(1, 1, port, timezone.now(), senders=SENDERS)
        templates = load_templates()
        requests = [storm.request(templates, i) for i in range(storm.deliveries)]
        _, statuses, *_ = asyncio.run(
            send_all(port, requests, storm.senders, retry_seconds=RETRY_SECONDS)
        )
    log = (tmp_path / "gunicorn.log").read_text()

    assert storm.distinct_episodes() == 10_000 and storm.groups == 200
    assert set(statuses) <= {202, 503}, (statuses, log[-3000:])
    assert statuses[202] == storm.deliveries == 600, statuses
    alerts = Alert.objects.filter(group_key__contains=storm.namespace_prefix)
    assert alerts.count() == storm.distinct_episodes()
    assert alerts.aggregate(received=Sum("receive_count"))["received"] == storm.alerts_sent
    investigations = Investigation.objects.annotate(n=Count("alerts"))
    assert investigations.count() == storm.groups
    assert investigations.values("group_key").distinct().count() == storm.groups
    assert {i.n for i in investigations} == {storm.alerts}
    assert OrmQ.objects.count() == storm.groups
    assert "Traceback" not in log
