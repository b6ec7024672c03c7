"""Rootline settings: read from the environment only (see the README's table).

A malformed value stops start-up with ImproperlyConfigured instead of being guessed at.
"""

import os
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envsecret(name, default=None):
    """A value from NAME, or from the file named by NAME_FILE (Docker/Kubernetes secrets)."""
    path = os.getenv(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as e:
            raise ImproperlyConfigured(f"{name}_FILE={path} cannot be read: {e}") from e
    return os.getenv(name, default)


def envbool(name, default):
    value = os.getenv(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true or false)")


def envint(name, default, minimum=None):
    value = os.getenv(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} must be at least {minimum}")
    return number


def envlist(name, default):
    value = os.getenv(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"


def envpairs(name):
    """{key: value} from NAME="a=b,c=d"; {} when unset."""
    pairs = {}
    for item in envlist(name, []):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not (sep and re.fullmatch(LABEL_NAME, key) and re.fullmatch(LABEL_NAME, value)):
            raise ImproperlyConfigured(
                f"{name}: {item!r} is not metric_label=loki_label (label names, e.g. "
                "namespace=k8s_namespace_name)"
            )
        pairs[key] = value
    return pairs


def envurl(name, secret=False):
    """An http(s) URL from NAME, "" when unset. A secret one (its path is a credential,
    like a Slack webhook's) may come from NAME_FILE and is never repeated in the error."""
    url = (envsecret(name, "") if secret else os.getenv(name, "")).strip()
    if url and not (url.startswith(("http://", "https://")) and urlsplit(url).hostname):
        shown = f"{name} (value not shown: a secret)" if secret else f"{name}={url!r}"
        raise ImproperlyConfigured(
            f"{shown} must start with http:// or https:// followed by a host name"
        )
    return url


def _newest_sonnet():
    from investigations.agents.llm import newest_sonnet

    return newest_sonnet()


def envduration(name, default):
    """A duration such as 90s, 10m, 2h or 1d (a bare number is seconds)."""
    value = os.getenv(name)
    if value is None or value == "":
        return default
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (value[:-1], value[-1]) if value[-1] in units else (value, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a duration (examples: 90s, 10m, 2h)"
        ) from None
    if seconds < 0:
        raise ImproperlyConfigured(f"{name}={value!r} must not be negative")
    return timedelta(seconds=seconds)


DEBUG = envbool("DEBUG", False)

SECRET_KEY = envsecret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. `make run` writes one into .env; in production set "
            "SECRET_KEY (or SECRET_KEY_FILE) to a long random string."
        )
    SECRET_KEY = "insecure-debug-only-key"  # noqa: S105 (DEBUG only)

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_q",
    "accounts",
    "alerts",
    "investigations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "rca_site.middleware.ApiErrorShapeMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "rca_site.urls"
WSGI_APPLICATION = "rca_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite by default: WAL so readers never block the writer, a busy timeout and
# BEGIN IMMEDIATE so that web processes and workers queue for the write lock instead
# of failing with "database is locked" when a read transaction tries to upgrade.
SQLITE_OPTIONS = {
    "timeout": 20,
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
}
DATABASE_URL = os.getenv("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'rootline.sqlite3'}"
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
except ValueError as e:
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {e}") from e
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Django's SQLite backend, with writers queueing on a lock file (see its docstring).
    DATABASES["default"]["ENGINE"] = "rca_site.sqlite"
    DATABASES["default"]["OPTIONS"] = SQLITE_OPTIONS
    DATABASES["default"]["CONN_MAX_AGE"] = 600
    # A file beside the database, not memory, so a real qcluster started by a test can
    # open the test database too.
    _db_path = Path(DATABASES["default"]["NAME"])
    DATABASES["default"]["TEST"] = {"NAME": str(_db_path.with_name(f"test-{_db_path.name}"))}
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if envbool("ROOTLINE_BEHIND_HTTPS_PROXY", False) else None
)
# Served over HTTPS only: redirect plain HTTP, secure cookies, HSTS. Probes, /metrics and
# the webhook (each in-cluster callers, the webhook with its own token) stay reachable over
# plain HTTP: a redirect would break Alertmanager's POST.
ROOTLINE_HTTPS = envbool("ROOTLINE_HTTPS", False)
SECURE_SSL_REDIRECT = ROOTLINE_HTTPS
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$", r"^webhooks/"]
SECURE_HSTS_SECONDS = envint(
    "ROOTLINE_HSTS_SECONDS", 365 * 24 * 3600 if ROOTLINE_HTTPS else 0, minimum=0
)
# HSTS covers the host Rootline is served on and the names under it, not its parent domain.
SECURE_HSTS_INCLUDE_SUBDOMAINS = ROOTLINE_HTTPS
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = envbool("ROOTLINE_SECURE_COOKIES", ROOTLINE_HTTPS)
# A self-hosted internal service is never submitted to the browsers' HSTS preload list.
SILENCED_SYSTEM_CHECKS = ["security.W021"]

# plain for a terminal; json for a log shipper: one JSON object a line, tracebacks inside.
ROOTLINE_LOG_FORMAT = os.getenv("ROOTLINE_LOG_FORMAT") or "plain"
if ROOTLINE_LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(
        f"ROOTLINE_LOG_FORMAT={ROOTLINE_LOG_FORMAT!r} is not a log format (use plain or json)"
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "rca_site.logformat.JSONFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": ROOTLINE_LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": os.getenv("ROOTLINE_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# --- Alert ingest -------------------------------------------------------------------

ROOTLINE_WEBHOOK_TOKEN = envsecret("ROOTLINE_WEBHOOK_TOKEN", "")
# The JSON API's and the pages' request bodies (the webhook has its own limit).
ROOTLINE_API_MAX_BYTES = envint("ROOTLINE_API_MAX_BYTES", 256 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = ROOTLINE_API_MAX_BYTES
ROOTLINE_WEBHOOK_MAX_BYTES = envint("ROOTLINE_WEBHOOK_MAX_BYTES", 1024 * 1024, minimum=1024)
# What is kept of a body that is refused before it is read whole (too large, unauthenticated).
ROOTLINE_REFUSED_BODY_KEEP_BYTES = 64 * 1024
ROOTLINE_GROUP_WINDOW = envduration("ROOTLINE_GROUP_WINDOW", timedelta(minutes=10))
ROOTLINE_INVESTIGATE_SEVERITIES = [
    s.lower() for s in envlist("ROOTLINE_INVESTIGATE_SEVERITIES", [])
]

# --- Investigations -----------------------------------------------------------------

ROOTLINE_SERVICE_LABELS = envlist("ROOTLINE_SERVICE_LABELS", ["service", "app", "job", "container"])
# Labels that name the workload a series describes, which exporters (cAdvisor,
# kube-state-metrics) share with the workload's own series or name it by: the signal scan
# credits such a series to the workload's service (investigations/signals/metrics.py). The
# first names the pod (a rollout is pods replaced).
ROOTLINE_WORKLOAD_LABELS = envlist(
    "ROOTLINE_WORKLOAD_LABELS", ["pod", "deployment", "statefulset", "daemonset"]
)
ROOTLINE_SCOPE_LABELS = envlist(
    "ROOTLINE_SCOPE_LABELS", ["cluster", "namespace", "env", "environment", "region"]
)
# Labels Loki names otherwise than the metrics and alerts do, as metric_label=loki_label
# (a log agent's own names: namespace=kubernetes_namespace). Loki's OpenTelemetry names
# (k8s_namespace_name) the signal scan finds without it (investigations/signals/stores.py).
# Each label of these settings is matched under its OpenTelemetry name too where the
# plain one is missing (investigations.scope.OTEL_NAMES).
ROOTLINE_LOKI_LABELS = envpairs("ROOTLINE_LOKI_LABELS")
ROOTLINE_BASELINE_WINDOW = envduration("ROOTLINE_BASELINE_WINDOW", timedelta(hours=1))
ROOTLINE_INCIDENT_LOOKBACK = envduration("ROOTLINE_INCIDENT_LOOKBACK", timedelta(minutes=15))
ROOTLINE_SIGNALS_LOOKBACK = envduration("ROOTLINE_SIGNALS_LOOKBACK", timedelta(minutes=2))
# Replaying past incidents (benchmarks, drills): investigate as of the first alert's
# startsAt plus this, reading no data after it. Unset: as of the moment the worker runs.
ROOTLINE_REPLAY_AS_OF = envduration("ROOTLINE_REPLAY_AS_OF", None)
ROOTLINE_INVESTIGATION_TIMEOUT = envduration(
    "ROOTLINE_INVESTIGATION_TIMEOUT", timedelta(minutes=15)
)
ROOTLINE_TOOL_BUDGET_TOKENS = envint("ROOTLINE_TOOL_BUDGET_TOKENS", 2000, minimum=200)
# Extra secret shapes to redact: regular expressions, one per line or separated by ";;".
ROOTLINE_REDACT_PATTERNS = [
    p for p in (envsecret("ROOTLINE_REDACT_PATTERNS") or "").replace(";;", "\n").splitlines() if p
]
for _pattern in ROOTLINE_REDACT_PATTERNS:
    try:
        re.compile(_pattern)
    except re.error as e:
        raise ImproperlyConfigured(
            f"ROOTLINE_REDACT_PATTERNS: {_pattern!r} is not a regular expression: {e}"
        ) from e
# Grafana Explore links next to each query, when Grafana and its datasource UIDs are known.
ROOTLINE_GRAFANA_URL = os.getenv("ROOTLINE_GRAFANA_URL", "").rstrip("/")
ROOTLINE_GRAFANA_ORG_ID = envint("ROOTLINE_GRAFANA_ORG_ID", 1, minimum=1)
ROOTLINE_GRAFANA_LOKI_UID = os.getenv("ROOTLINE_GRAFANA_LOKI_UID", "")
ROOTLINE_GRAFANA_PROMETHEUS_UID = os.getenv("ROOTLINE_GRAFANA_PROMETHEUS_UID", "")

# --- The agents (Claude) ----------------------------------------------------------------
# No key: investigations end with the signals-only report. The SDK's own ANTHROPIC_BASE_URL
# is honoured (tests and the demo point it at a scripted Messages-API server).
ANTHROPIC_API_KEY = envsecret("ANTHROPIC_API_KEY")
ANTHROPIC_BASE_URL = os.getenv("ANTHROPIC_BASE_URL", "")
ROOTLINE_LLM_MODEL = os.getenv("ROOTLINE_LLM_MODEL") or _newest_sonnet()
ROOTLINE_LLM_MAX_TOKENS = envint("ROOTLINE_LLM_MAX_TOKENS", 4096, minimum=256)
ROOTLINE_LLM_LEAD_ITERATIONS = envint("ROOTLINE_LLM_LEAD_ITERATIONS", 10, minimum=2)
ROOTLINE_LLM_SPECIALIST_ITERATIONS = envint("ROOTLINE_LLM_SPECIALIST_ITERATIONS", 6, minimum=1)
ROOTLINE_LLM_TOKEN_BUDGET = envint("ROOTLINE_LLM_TOKEN_BUDGET", 400_000, minimum=1000)
ROOTLINE_LLM_TIME_BUDGET = envduration("ROOTLINE_LLM_TIME_BUDGET", timedelta(minutes=10))
ROOTLINE_LLM_COMPACT_AT_TOKENS = envint("ROOTLINE_LLM_COMPACT_AT_TOKENS", 8000, minimum=1000)
ROOTLINE_LLM_RETRIES = envint("ROOTLINE_LLM_RETRIES", 4, minimum=0)
ROOTLINE_LLM_BACKOFF = envduration("ROOTLINE_LLM_BACKOFF", timedelta(seconds=2))
ROOTLINE_LLM_TIMEOUT = envduration("ROOTLINE_LLM_TIMEOUT", timedelta(seconds=120))
# USD per million tokens: input, output, cache write, cache read; by model name prefix.
ROOTLINE_LLM_PRICES = {
    "claude-opus": (15.0, 75.0, 18.75, 1.5),
    "claude-sonnet": (3.0, 15.0, 3.75, 0.3),
    "claude-haiku": (1.0, 5.0, 1.25, 0.1),
}

# --- Notifications ------------------------------------------------------------------
# When an investigation completes with its report: a Slack incoming webhook and a generic
# JSON webhook (investigations.notify), each for the severities listed (empty: all; an
# investigation without a severity goes only to a channel without a list). The URLs are
# secrets (a Slack webhook URL is its own credential): never stored, logged or shown.

ROOTLINE_BASE_URL = envurl("ROOTLINE_BASE_URL").rstrip("/")
ROOTLINE_NOTIFY_SLACK_URL = envurl("ROOTLINE_NOTIFY_SLACK_URL", secret=True)
ROOTLINE_NOTIFY_SLACK_SEVERITIES = [
    s.lower() for s in envlist("ROOTLINE_NOTIFY_SLACK_SEVERITIES", [])
]
ROOTLINE_NOTIFY_WEBHOOK_URL = envurl("ROOTLINE_NOTIFY_WEBHOOK_URL", secret=True)
ROOTLINE_NOTIFY_WEBHOOK_TOKEN = envsecret("ROOTLINE_NOTIFY_WEBHOOK_TOKEN", "")
ROOTLINE_NOTIFY_WEBHOOK_SEVERITIES = [
    s.lower() for s in envlist("ROOTLINE_NOTIFY_WEBHOOK_SEVERITIES", [])
]
if ROOTLINE_NOTIFY_WEBHOOK_TOKEN and not ROOTLINE_NOTIFY_WEBHOOK_URL:
    raise ImproperlyConfigured(
        "ROOTLINE_NOTIFY_WEBHOOK_TOKEN is set but ROOTLINE_NOTIFY_WEBHOOK_URL is not"
    )
if (ROOTLINE_NOTIFY_SLACK_URL or ROOTLINE_NOTIFY_WEBHOOK_URL) and not ROOTLINE_BASE_URL:
    raise ImproperlyConfigured(
        "ROOTLINE_BASE_URL is not set: notifications link to the investigation page, so "
        "they need Rootline's address as people reach it (e.g. https://rootline.example)"
    )

# django-q2's defaults re-deliver a failing task for ever (ack_failures off, unlimited
# attempts). An investigation may cost LLM money: a task is tried at most twice, failures
# are acknowledged, and timeout < retry so a task is never handed to a second worker
# while the first still runs it.
# A worker that dies or hangs: django-q2 hands the task on after `retry`; a task it gave
# up on (killed at `timeout`, acknowledged as failed) is re-queued or failed by the sweep
# (runner.sweep_stale) once `retry` has passed too.
ROOTLINE_TASK_RETRY_GRACE = envduration("ROOTLINE_TASK_RETRY_GRACE", timedelta(seconds=60))
_task_timeout_seconds = int(ROOTLINE_INVESTIGATION_TIMEOUT.total_seconds())
Q_CLUSTER = {
    "name": "rootline",
    "orm": "default",
    "workers": envint("ROOTLINE_WORKERS", 2, minimum=1),
    "timeout": _task_timeout_seconds,
    "retry": _task_timeout_seconds + max(int(ROOTLINE_TASK_RETRY_GRACE.total_seconds()), 1),
    "max_attempts": 2,
    "ack_failures": True,
    "catch_up": False,
    "poll": 0.2,
    "save_limit": 1000,
    "label": "Task queue",
}

# --- Telemetry backends -------------------------------------------------------------
# Loki and a Prometheus-compatible store (Prometheus, Thanos, Cortex, Mimir), read by
# investigations.telemetry. A backend whose URL is empty is not configured; tools that
# need it say so instead of failing.


def telemetry_backend(backend, api_prefix):
    """The ROOTLINE_<backend>_* variables of one backend, checked together."""
    name = f"ROOTLINE_{backend}"
    url = envurl(f"{name}_URL")
    prefix = os.getenv(f"{name}_API_PREFIX") or api_prefix
    if not prefix.startswith("/"):
        raise ImproperlyConfigured(f"{name}_API_PREFIX={prefix!r} must start with / (e.g. /api/v1)")
    values = {
        "URL": url.rstrip("/"),
        "API_PREFIX": prefix.rstrip("/"),
        "TENANT": os.getenv(f"{name}_TENANT", ""),
        "USERNAME": os.getenv(f"{name}_USERNAME", ""),
        "PASSWORD": envsecret(f"{name}_PASSWORD", ""),
        "BEARER_TOKEN": envsecret(f"{name}_BEARER_TOKEN", ""),
        "TLS_VERIFY": envbool(f"{name}_TLS_VERIFY", True),
        "CA_BUNDLE": os.getenv(f"{name}_CA_BUNDLE", ""),
        "TIMEOUT": envduration(f"{name}_TIMEOUT", timedelta(seconds=30)),
        "MAX_CONCURRENCY": envint(f"{name}_MAX_CONCURRENCY", 4, minimum=1),
    }
    if bool(values["USERNAME"]) != bool(values["PASSWORD"]):
        raise ImproperlyConfigured(
            f"{name}_USERNAME and {name}_PASSWORD go together (HTTP basic auth); set both"
        )
    if values["USERNAME"] and values["BEARER_TOKEN"]:
        raise ImproperlyConfigured(
            f"{name}: set basic auth ({name}_USERNAME/_PASSWORD) or {name}_BEARER_TOKEN, not both"
        )
    if values["CA_BUNDLE"] and not Path(values["CA_BUNDLE"]).is_file():
        raise ImproperlyConfigured(f"{name}_CA_BUNDLE={values['CA_BUNDLE']} is not a file")
    if values["CA_BUNDLE"] and not values["TLS_VERIFY"]:
        raise ImproperlyConfigured(
            f"{name}_CA_BUNDLE is set but {name}_TLS_VERIFY is false; set one or the other"
        )
    if values["TIMEOUT"] <= timedelta(0):
        raise ImproperlyConfigured(f"{name}_TIMEOUT must be longer than 0s")
    return values


_loki = telemetry_backend("LOKI", "/loki/api/v1")
ROOTLINE_LOKI_URL = _loki["URL"]
ROOTLINE_LOKI_API_PREFIX = _loki["API_PREFIX"]
ROOTLINE_LOKI_TENANT = _loki["TENANT"]
ROOTLINE_LOKI_USERNAME = _loki["USERNAME"]
ROOTLINE_LOKI_PASSWORD = _loki["PASSWORD"]
ROOTLINE_LOKI_BEARER_TOKEN = _loki["BEARER_TOKEN"]
ROOTLINE_LOKI_TLS_VERIFY = _loki["TLS_VERIFY"]
ROOTLINE_LOKI_CA_BUNDLE = _loki["CA_BUNDLE"]
ROOTLINE_LOKI_TIMEOUT = _loki["TIMEOUT"]
ROOTLINE_LOKI_MAX_CONCURRENCY = _loki["MAX_CONCURRENCY"]

_prometheus = telemetry_backend("PROMETHEUS", "/api/v1")
ROOTLINE_PROMETHEUS_URL = _prometheus["URL"]
ROOTLINE_PROMETHEUS_API_PREFIX = _prometheus["API_PREFIX"]
ROOTLINE_PROMETHEUS_TENANT = _prometheus["TENANT"]
ROOTLINE_PROMETHEUS_USERNAME = _prometheus["USERNAME"]
ROOTLINE_PROMETHEUS_PASSWORD = _prometheus["PASSWORD"]
ROOTLINE_PROMETHEUS_BEARER_TOKEN = _prometheus["BEARER_TOKEN"]
ROOTLINE_PROMETHEUS_TLS_VERIFY = _prometheus["TLS_VERIFY"]
ROOTLINE_PROMETHEUS_CA_BUNDLE = _prometheus["CA_BUNDLE"]
ROOTLINE_PROMETHEUS_TIMEOUT = _prometheus["TIMEOUT"]
ROOTLINE_PROMETHEUS_MAX_CONCURRENCY = _prometheus["MAX_CONCURRENCY"]

# --- Operating Rootline: /metrics, /readyz --------------------------------------------

# The token Prometheus presents to scrape /metrics. Unset: only logged-in staff may read it.
ROOTLINE_METRICS_TOKEN = envsecret("ROOTLINE_METRICS_TOKEN", "")
# /readyz fails when a task has waited longer than this for a worker.
ROOTLINE_QUEUE_MAX_WAIT = envduration("ROOTLINE_QUEUE_MAX_WAIT", timedelta(minutes=10))
