"""Loaded with `-p` before pytest-django reads the settings: the environment of the tests."""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-not-secret")
os.environ["ROOTLINE_WEBHOOK_TOKEN"] = "test-webhook-token"
