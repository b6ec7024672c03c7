"""Loaded with `-p` before pytest-django reads the settings: the environment of the tests."""

import os
import sys
from pathlib import Path

os.environ.setdefault("SECRET_KEY", "tests-only-not-secret")
os.environ["ROOTLINE_WEBHOOK_TOKEN"] = "test-webhook-token"

# The stand-ins of bench/ (loki_stub, scripted_messages) import each other as scripts do:
# by module name, from their own folder.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
