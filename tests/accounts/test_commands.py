"""manage.py create_api_token and setup_rootline (accounts/management/commands)."""

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from accounts.models import ApiToken, hash_token

pytestmark = pytest.mark.django_db


def run(*args):
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_create_api_token_prints_a_token_of_which_only_the_hash_is_kept():
    user = User.objects.create_user("sre")

    token = run("create_api_token", "sre", "--name", "chatops").splitlines()[-1]

    row = ApiToken.objects.get()
    assert token.startswith("rl_") and len(token) > 40
    assert row.token_hash == hash_token(token) != token
    assert (row.user, row.name) == (user, "chatops")
    assert ApiToken.authenticate(token) == row
    assert ApiToken.objects.get().last_used_at is not None
    assert ApiToken.authenticate(token + "x") is None


def test_a_revoked_token_no_longer_authenticates():
    User.objects.create_user("sre")
    token = run("create_api_token", "sre").splitlines()[-1]
    ApiToken.objects.update(revoked_at="2026-01-01T00:00:00Z")

    assert ApiToken.authenticate(token) is None


def test_create_api_token_for_an_unknown_user_fails():
    with pytest.raises(CommandError, match="no user named 'ghost'"):
        run("create_api_token", "ghost")


def test_setup_creates_the_admin_once_with_a_generated_password(monkeypatch):
    monkeypatch.delenv("ROOTLINE_ADMIN_PASSWORD", raising=False)

    first = run("setup_rootline", "--url", "http://127.0.0.1:8000")
    second = run("setup_rootline")

    password = first.split("password ")[1].split()[0]
    assert User.objects.get(username="admin").check_password(password)
    assert "shown only this once" in first
    assert password not in second
    assert User.objects.count() == 1


def test_setup_takes_the_admin_password_from_the_environment(monkeypatch):
    monkeypatch.setenv("ROOTLINE_ADMIN_PASSWORD", "correct-horse-battery")

    out = run("setup_rootline")

    assert User.objects.get(username="admin").check_password("correct-horse-battery")
    assert "correct-horse-battery" not in out


def test_setup_prints_the_webhook_and_an_alertmanager_receiver(settings):
    out = run("setup_rootline", "--url", "http://127.0.0.1:8000/")

    assert "http://127.0.0.1:8000/webhooks/alertmanager" in out
    assert f"credentials: {settings.ROOTLINE_WEBHOOK_TOKEN}" in out
    assert "send_resolved: true" in out
