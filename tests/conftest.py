import json

import pytest
from django.conf import settings as django_settings

WEBHOOK_URL = "/webhooks/alertmanager"


@pytest.fixture(autouse=True, scope="session")
def plain_static_storage():
    """Tests render admin pages without running collectstatic first."""
    django_settings.STORAGES = {
        **django_settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


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
