"""A real Prometheus scrapes a live Rootline's /metrics with the bearer token, as
docs/deploy.md configures it, and sees the counters move when Alertmanager delivers."""

import json

import httpx
import pytest

from tests.conftest import WEBHOOK_URL
from tests.processes import wait_until
from tests.realprometheus import serving_prometheus
from tests.shared import alertmanager_body

METRICS_TOKEN = "test-metrics-token"
DEADLINE_SECONDS = 30

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def scrape_config(target):
    """Scrape `target` every second with the token (JSON is YAML)."""
    return json.dumps(
        {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {
                    "job_name": "rootline",
                    "metrics_path": "/metrics",
                    "authorization": {"type": "Bearer", "credentials": METRICS_TOKEN},
                    "static_configs": [{"targets": [target]}],
                }
            ],
        }
    )


def query(prometheus, promql):
    """The instant vector's values by their labels but __name__, job and instance."""
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert answer["status"] == "success", answer
    hidden = ("__name__", "job", "instance")
    return {
        tuple(sorted((k, v) for k, v in r["metric"].items() if k not in hidden)): float(
            r["value"][1]
        )
        for r in answer["data"]["result"]
    }


def target_health(prometheus):
    targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=5).json()["data"]
    return [(t["health"], t["lastError"]) for t in targets["activeTargets"]]


def test_prometheus_sees_the_webhook_counters_move(live_server, settings, tmp_path):
    settings.ROOTLINE_METRICS_TOKEN = METRICS_TOKEN
    target = live_server.url.removeprefix("http://")
    accepted = 'rootline_webhook_deliveries_total{job="rootline", outcome="accepted"}'

    with serving_prometheus(scrape_config(target), tmp_path) as prometheus:
        wait_until(
            lambda: query(prometheus, accepted) == {(("outcome", "accepted"),): 0.0},
            DEADLINE_SECONDS,
            lambda: f"no scrape of {target}: {target_health(prometheus)}",
        )

        delivered = httpx.post(
            live_server.url + WEBHOOK_URL,
            json=alertmanager_body("firing_single_payment_api"),
            headers={"Authorization": f"Bearer {settings.ROOTLINE_WEBHOOK_TOKEN}"},
            timeout=10,
        )
        assert delivered.status_code == 202, delivered.text

        wait_until(
            lambda: query(prometheus, f"increase({accepted}[1m]) > 0"),
            DEADLINE_SECONDS,
            lambda: f"the counter did not move: {query(prometheus, accepted)}",
        )
        assert query(prometheus, accepted) == {(("outcome", "accepted"),): 1.0}
        assert query(prometheus, 'rootline_investigations{status="queued"}') == {
            (("status", "queued"),): 1.0
        }
        assert query(prometheus, 'rootline_queue_tasks{state="waiting"}') == {
            (("state", "waiting"),): 1.0
        }
        assert query(prometheus, 'up{job="rootline"}') == {(): 1.0}


def test_prometheus_without_the_token_is_refused(live_server, settings, tmp_path):
    settings.ROOTLINE_METRICS_TOKEN = "another-token"
    target = live_server.url.removeprefix("http://")

    with serving_prometheus(scrape_config(target), tmp_path) as prometheus:
        health = wait_until(
            lambda: [h for h in target_health(prometheus) if h[0] == "down"],
            DEADLINE_SECONDS,
            lambda: f"the scrape was not refused: {target_health(prometheus)}",
        )

    assert "401" in health[0][1]
