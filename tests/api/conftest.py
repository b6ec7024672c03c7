import pytest
from django.contrib.auth.models import User

from accounts.models import ApiToken


@pytest.fixture
def sre():
    return User.objects.create_user("sre")


@pytest.fixture
def api_token(sre):
    """A token in clear, as `manage.py create_api_token sre` prints it."""
    return ApiToken.issue(sre, name="tests")[1]


@pytest.fixture
def api_get(client, api_token):
    """GET an API path with the token unless told otherwise; query parameters as kwargs."""

    def get(path, token=api_token, **params):
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return client.get(path, params, headers=headers)

    return get


@pytest.fixture
def api_send(client, api_token):
    """POST/PUT/DELETE JSON to an API path with the token unless told otherwise."""

    def send(method, path, body=None, token=api_token):
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        call = getattr(client, method.lower())
        return call(path, body, content_type="application/json", headers=headers)

    return send
