"""ROOTLINE_LOG_FORMAT and the JSON lines formatter (rca_site/logformat.py)."""

import json
import logging
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from rca_site.logformat import JSONFormatter

SETTINGS_PATH = Path(settings.BASE_DIR) / "rca_site" / "settings.py"

# A process that logs as Rootline's processes do: Django's LOGGING, set up by django.setup().
LOGGING_PROCESS = """
import logging, django
django.setup()
log = logging.getLogger("alerts.api")
log.warning("webhook refused:\\n%s", "two lines")
try:
    {}["missing"]
except KeyError:
    log.exception("delivery %s failed", 7)
"""


def record(message, *args, exc_info=None):
    return logging.LogRecord(
        "investigations.runner", logging.ERROR, __file__, 1, message, args, exc_info
    )


def test_a_record_is_one_json_line_with_time_level_logger_and_message():
    line = JSONFormatter().format(record("investigation %s failed", 12))

    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "ERROR"
    assert entry["logger"] == "investigations.runner"
    assert entry["message"] == "investigation 12 failed"
    assert entry["time"].endswith("Z") and "T" in entry["time"]
    assert "exception" not in entry


def test_the_traceback_stays_inside_the_line():
    try:
        raise ValueError("no such step")
    except ValueError:
        line = JSONFormatter().format(record("step failed", exc_info=sys.exc_info()))

    assert "\n" not in line
    exception = json.loads(line)["exception"]
    assert exception.startswith("Traceback (most recent call last):")
    assert exception.rstrip().endswith("ValueError: no such step")


@pytest.mark.slow
def test_a_rootline_process_logs_json_lines_when_asked():
    environment = {
        **os.environ,
        "ROOTLINE_LOG_FORMAT": "json",
        "PYTHONPATH": str(settings.BASE_DIR),
    }
    environment.setdefault("DJANGO_SETTINGS_MODULE", "rca_site.settings")
    done = subprocess.run(
        [sys.executable, "-c", LOGGING_PROCESS],
        env=environment,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    entries = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(e["level"], e["logger"], e["message"]) for e in entries] == [
        ("WARNING", "alerts.api", "webhook refused:\ntwo lines"),
        ("ERROR", "alerts.api", "delivery 7 failed"),
    ]
    assert "KeyError: 'missing'" in entries[1]["exception"]


def test_plain_is_the_default(monkeypatch):
    monkeypatch.delenv("ROOTLINE_LOG_FORMAT", raising=False)
    values = runpy.run_path(str(SETTINGS_PATH))

    assert values["LOGGING"]["handlers"]["console"]["formatter"] == "plain"


def test_another_format_stops_start_up(monkeypatch):
    monkeypatch.setenv("ROOTLINE_LOG_FORMAT", "logfmt")

    with pytest.raises(ImproperlyConfigured, match=r"ROOTLINE_LOG_FORMAT='logfmt'.*plain or json"):
        runpy.run_path(str(SETTINGS_PATH))
