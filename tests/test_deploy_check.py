"""`manage.py check --deploy` passes with the settings docs/deploy.md gives production."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = {
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "rootline.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://rootline.example.com",
    "ROOTLINE_HTTPS": "true",
    "ROOTLINE_BEHIND_HTTPS_PROXY": "true",
    "ROOTLINE_WEBHOOK_TOKEN": secrets.token_urlsafe(32),
}


def check_deploy(**environment):
    # What the test session set for itself (the browser tests allow sync ORM calls from
    # Playwright's loop) is not production's.
    unset = ("DEBUG", "ROOTLINE_SECURE_COOKIES", "DJANGO_ALLOW_ASYNC_UNSAFE")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**env, **environment},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_settings_pass_the_deploy_checks():
    result = check_deploy(**PRODUCTION)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_without_https_the_deploy_checks_say_what_is_missing():
    result = check_deploy(**{**PRODUCTION, "ROOTLINE_HTTPS": "false"})

    assert result.returncode != 0
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in result.stderr + result.stdout
