"""Who may call the JSON API (accounts/auth.py, rca_site/api.py's 401 answer)."""

import pytest
from django.test import RequestFactory
from django.utils import timezone

from accounts.auth import ApiTokenAuth
from accounts.models import ApiToken
from tests.factories import make_investigation

pytestmark = pytest.mark.django_db


@pytest.fixture
def path():
    return f"/api/v1/investigations/{make_investigation().pk}"


def assert_unauthorized(response):
    assert response.status_code == 401, response.content
    body = response.json()
    assert body["error"] == "unauthorized"
    assert "Bearer" in body["message"]
    assert body["fields"] == []


def test_a_good_token_is_let_in_and_its_use_noted(api_get, path):
    response = api_get(path)

    assert response.status_code == 200, response.content
    assert ApiToken.objects.get().last_used_at is not None


def test_no_token_is_refused(api_get, path):
    assert_unauthorized(api_get(path, token=None))


def test_a_wrong_token_is_refused(api_get, api_token, path):
    assert_unauthorized(api_get(path, token=api_token + "x"))
    assert_unauthorized(api_get(path, token=""))


def test_another_scheme_is_refused(client, api_token, path):
    assert_unauthorized(client.get(path, headers={"Authorization": f"Token {api_token}"}))


def test_a_revoked_token_is_refused(api_get, path):
    ApiToken.objects.update(revoked_at=timezone.now())

    assert_unauthorized(api_get(path))


def test_the_token_of_a_deactivated_user_is_refused(api_get, sre, path):
    sre.is_active = False
    sre.save()

    assert_unauthorized(api_get(path))


def test_a_logged_in_browser_is_let_in_without_a_token(client, sre, path):
    client.force_login(sre)

    assert client.get(path).status_code == 200


def test_a_token_makes_its_user_the_request_user(sre, api_token):
    request = RequestFactory().get("/", headers={"Authorization": f"Bearer {api_token}"})

    row = ApiTokenAuth()(request)

    assert row == ApiToken.objects.get()
    assert request.user == sre
