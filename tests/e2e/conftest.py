"""A real Alertmanager whose webhook receiver is this test's live Rootline."""

import json
import os
import shutil

import httpx
import pytest
from django.conf import settings

from tests.processes import Process, free_port, wait_ready

ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")
START_SECONDS = 15
WEBHOOK_PATH = "/webhooks/alertmanager"


def running_in_ci():
    return os.getenv("CI", "").lower() in ("1", "true", "yes")


class Alertmanager:
    """One Alertmanager process on loopback; `post_alerts` plays the part of Prometheus."""

    def __init__(self, process, url):
        self.process = process
        self.url = url

    @property
    def address(self):
        """host:port, as Prometheus' alerting configuration names it."""
        return self.url.removeprefix("http://")

    def post_alerts(self, alerts):
        response = httpx.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=5)
        assert response.status_code == 200, (response.text, self.describe())

    def describe(self):
        return self.process.describe()


@pytest.fixture
def alertmanager_binary():
    found = next(filter(None, map(shutil.which, ALERTMANAGER_BINARIES)), None)
    if found is None:
        reason = (
            "Alertmanager is not installed (Debian package prometheus-alertmanager); "
            "the end-to-end tests need it"
        )
        if running_in_ci():
            pytest.fail(f"{reason}. CI must run them: .ci/run installs it.", pytrace=False)
        pytest.skip(reason)
    return found


def receiver_config(webhook_url, token):
    """Route everything at once to the Rootline webhook (JSON is YAML)."""
    return {
        "route": {
            "receiver": "rootline",
            "group_by": ["alertname", "namespace"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "rootline",
                "webhook_configs": [
                    {
                        "url": webhook_url,
                        "send_resolved": True,
                        "http_config": {"authorization": {"type": "Bearer", "credentials": token}},
                    }
                ],
            }
        ],
    }


@pytest.fixture
def alertmanager(alertmanager_binary, live_server, tmp_path):
    """Alertmanager posting to the live server's webhook with the Rootline token.

    Loopback only, no clustering, its own storage; stopped (killed if need be) afterwards.
    """
    config = tmp_path / "alertmanager.yml"
    webhook_url = live_server.url + WEBHOOK_PATH
    config.write_text(json.dumps(receiver_config(webhook_url, settings.ROOTLINE_WEBHOOK_TOKEN)))
    storage = tmp_path / "alertmanager-data"
    storage.mkdir()
    port = free_port()
    process = Process(
        [
            alertmanager_binary,
            f"--config.file={config}",
            f"--storage.path={storage}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url=http://127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=debug",
        ],
        tmp_path / "alertmanager.log",
    )
    alertmanager = Alertmanager(process, f"http://127.0.0.1:{port}")
    try:
        wait_ready(process, alertmanager.url, START_SECONDS)
        yield alertmanager
    finally:
        process.stop()
