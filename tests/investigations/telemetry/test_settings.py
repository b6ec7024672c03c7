"""The ROOTLINE_LOKI_* and ROOTLINE_PROMETHEUS_* settings: defaults, and malformed values
stopping start-up with a message that names the variable."""

import os
import re
import runpy
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

import rca_site

SETTINGS_PATH = Path(rca_site.__file__).with_name("settings.py")


def read_settings(monkeypatch, **environment):
    """The settings module as it reads `environment` (fresh, not Django's copy), with no
    other telemetry variable set."""
    for name in list(os.environ):
        if name.startswith(("ROOTLINE_LOKI_", "ROOTLINE_PROMETHEUS_")):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS_PATH))


def test_defaults(monkeypatch):
    settings = read_settings(monkeypatch)
    assert settings["ROOTLINE_LOKI_URL"] == ""
    assert settings["ROOTLINE_PROMETHEUS_URL"] == ""
    assert settings["ROOTLINE_LOKI_API_PREFIX"] == "/loki/api/v1"
    assert settings["ROOTLINE_PROMETHEUS_API_PREFIX"] == "/api/v1"
    assert settings["ROOTLINE_LOKI_TLS_VERIFY"] is True
    assert settings["ROOTLINE_PROMETHEUS_TIMEOUT"] == timedelta(seconds=30)
    assert settings["ROOTLINE_PROMETHEUS_MAX_CONCURRENCY"] == 4
    assert settings["ROOTLINE_LOKI_LABELS"] == {}


def test_loki_s_own_names_for_labels(monkeypatch):
    settings = read_settings(
        monkeypatch, ROOTLINE_LOKI_LABELS="namespace=k8s_namespace_name, pod = k8s_pod_name"
    )
    assert settings["ROOTLINE_LOKI_LABELS"] == {
        "namespace": "k8s_namespace_name",
        "pod": "k8s_pod_name",
    }
    for bad in ("namespace", "namespace=k8s.namespace.name", "=pod"):
        with pytest.raises(ImproperlyConfigured, match=f"ROOTLINE_LOKI_LABELS: '{re.escape(bad)}'"):
            read_settings(monkeypatch, ROOTLINE_LOKI_LABELS=bad)


def test_a_mimir_tenant_with_basic_auth(monkeypatch, tmp_path):
    password_file = tmp_path / "password"
    password_file.write_text("s3cret\n")
    settings = read_settings(
        monkeypatch,
        ROOTLINE_PROMETHEUS_URL="https://mimir.example.com/",
        ROOTLINE_PROMETHEUS_API_PREFIX="/prometheus/api/v1/",
        ROOTLINE_PROMETHEUS_TENANT="production",
        ROOTLINE_PROMETHEUS_USERNAME="rootline",
        ROOTLINE_PROMETHEUS_PASSWORD_FILE=str(password_file),
        ROOTLINE_PROMETHEUS_TIMEOUT="1m",
        ROOTLINE_PROMETHEUS_MAX_CONCURRENCY="8",
    )
    assert settings["ROOTLINE_PROMETHEUS_URL"] == "https://mimir.example.com"
    assert settings["ROOTLINE_PROMETHEUS_API_PREFIX"] == "/prometheus/api/v1"
    assert settings["ROOTLINE_PROMETHEUS_TENANT"] == "production"
    assert settings["ROOTLINE_PROMETHEUS_PASSWORD"] == "s3cret"
    assert settings["ROOTLINE_PROMETHEUS_TIMEOUT"] == timedelta(minutes=1)
    assert settings["ROOTLINE_PROMETHEUS_MAX_CONCURRENCY"] == 8


def test_a_private_ca(monkeypatch, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = read_settings(
        monkeypatch,
        ROOTLINE_LOKI_URL="https://loki.example.com",
        ROOTLINE_LOKI_CA_BUNDLE=str(bundle),
    )
    assert settings["ROOTLINE_LOKI_CA_BUNDLE"] == str(bundle)


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        (
            {"ROOTLINE_LOKI_URL": "loki:3100"},
            "ROOTLINE_LOKI_URL='loki:3100' must start with http://",
        ),
        ({"ROOTLINE_PROMETHEUS_URL": "ftp://x"}, "must start with http:// or https://"),
        ({"ROOTLINE_PROMETHEUS_API_PREFIX": "api/v1"}, "_API_PREFIX='api/v1' must start with /"),
        ({"ROOTLINE_LOKI_USERNAME": "u"}, "ROOTLINE_LOKI_USERNAME and ROOTLINE_LOKI_PASSWORD go"),
        ({"ROOTLINE_LOKI_PASSWORD": "p"}, "go together"),
        (
            {
                "ROOTLINE_PROMETHEUS_USERNAME": "u",
                "ROOTLINE_PROMETHEUS_PASSWORD": "p",
                "ROOTLINE_PROMETHEUS_BEARER_TOKEN": "t",
            },
            "ROOTLINE_PROMETHEUS_BEARER_TOKEN, not both",
        ),
        (
            {"ROOTLINE_LOKI_TLS_VERIFY": "maybe"},
            "ROOTLINE_LOKI_TLS_VERIFY='maybe' is not a boolean",
        ),
        ({"ROOTLINE_LOKI_CA_BUNDLE": "/nonexistent/ca.pem"}, "/nonexistent/ca.pem is not a file"),
        ({"ROOTLINE_LOKI_TIMEOUT": "soon"}, "ROOTLINE_LOKI_TIMEOUT='soon' is not a duration"),
        (
            {"ROOTLINE_PROMETHEUS_TIMEOUT": "0"},
            "ROOTLINE_PROMETHEUS_TIMEOUT must be longer than 0s",
        ),
        ({"ROOTLINE_PROMETHEUS_MAX_CONCURRENCY": "0"}, "MAX_CONCURRENCY=0 must be at least 1"),
    ],
)
def test_malformed_values_stop_start_up(monkeypatch, environment, message):
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
        read_settings(monkeypatch, **environment)


def test_a_ca_bundle_with_verification_off_is_contradictory(monkeypatch, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    with pytest.raises(ImproperlyConfigured, match="set one or the other"):
        read_settings(
            monkeypatch, ROOTLINE_LOKI_CA_BUNDLE=str(bundle), ROOTLINE_LOKI_TLS_VERIFY="false"
        )
