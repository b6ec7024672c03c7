import json
import os
import sys

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import override_settings

from investigations.telemetry import clear_cache
from tests.processes import Process, database_url

WEBHOOK_URL = "/webhooks/alertmanager"


@pytest.fixture(autouse=True)
def fresh_cache():
    """Each test starts with no cached telemetry answers. The cache is per process and
    keyed by URL: a test's Loki or Prometheus may get the port an earlier test's had, and
    with the same windows asked the same question, be answered with the other's data."""
    clear_cache()
    yield
    clear_cache()


@pytest.fixture(autouse=True, scope="session")
def plain_static_storage():
    """Tests render pages without running collectstatic first: plain static names, even
    where `make run` left a manifest of hashed names in staticfiles/. Through
    override_settings, so that a static storage made while the tests were collected (a
    test module that builds the WSGI application) is made anew: one that read the
    manifest would name files the live server cannot serve."""
    override = override_settings(
        STORAGES={
            **django_settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }
    )
    override.enable()
    yield
    override.disable()


@pytest.fixture
def webhook_token():
    return django_settings.ROOTLINE_WEBHOOK_TOKEN


@pytest.fixture
def post_webhook(client, webhook_token):
    """POST a body (dict, str or bytes) to the webhook, with the right token unless told."""

    def post(body, token=webhook_token, content_type="application/json", **headers):
        if isinstance(body, dict | list):
            body = json.dumps(body)
        if token is not None:
            headers.setdefault("Authorization", f"Bearer {token}")
        return client.post(WEBHOOK_URL, body, content_type=content_type, headers=headers)

    return post


def worker_environment(**extra):
    """The environment of a worker that reads and writes this test's database."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "rca_site.settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "SECRET_KEY": django_settings.SECRET_KEY,  # tasks are signed with it
        "ROOTLINE_WEBHOOK_TOKEN": django_settings.ROOTLINE_WEBHOOK_TOKEN,
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


@pytest.fixture
def start_qcluster(transactional_db, tmp_path):
    """Start `manage.py qcluster` on the test database; it is stopped before the flush."""
    started = []

    def start(**environment):
        process = Process(
            [sys.executable, "manage.py", "qcluster"],
            tmp_path / f"qcluster-{len(started)}.log",
            name="manage.py qcluster",
            cwd=django_settings.BASE_DIR,
            env=worker_environment(**environment),
        )
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop(timeout=15)
