"""One telemetry backend over HTTP: its configuration and how every request is sent.

`Backend` is what LokiClient and PrometheusClient share: an httpx.AsyncClient with the
backend's auth and tenant header, bounded retries with jittered exponential backoff, a
30-second cache of successful answers and a concurrency limit. Clients are meant to live
inside one `asyncio.run` (a worker investigates in one): create one per investigation,
use it as `async with`, and never keep it past its event loop.
"""

import asyncio
import logging
import random
import ssl
import time
import weakref
from dataclasses import dataclass, field, replace

import httpx

from investigations.telemetry.errors import (
    BackendUnavailable,
    QueryError,
    UnexpectedAnswer,
    quote,
)

log = logging.getLogger(__name__)

CACHE_TTL_SECONDS = 30
MAX_CACHE_ENTRIES = 512
RETRY_ATTEMPTS = 3
BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 5.0
# Worth another attempt: the server may answer the same request once it has recovered.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Connection refused or reset, TLS failures, timeouts, a proxy's refusal: all transport.
RETRY_EXCEPTIONS = (httpx.TransportError,)
USER_AGENT = "Rootline"

# Successful answers by (backend identity, method, path, sorted params): (expiry, data).
# Per process; an asyncio program reads and writes it without awaiting in between.
_answers = {}
# One semaphore per backend and event loop (a semaphore belongs to the loop it waits in).
_limits = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class BackendConfig:
    """Where a backend is and how to talk to it; secrets are kept out of its repr."""

    name: str  # for messages: "Loki", "Prometheus"
    url: str
    api_prefix: str = ""  # empty: the client's default (/loki/api/v1, /api/v1)
    tenant: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    bearer_token: str = field(default="", repr=False)
    tls_verify: bool = True
    ca_bundle: str = ""
    timeout_seconds: float = 30.0
    max_concurrency: int = 4

    @classmethod
    def from_settings(cls, backend):
        """The configuration of "LOKI" or "PROMETHEUS" from the ROOTLINE_<backend>_*
        settings, or None when its URL is not set (the backend is not configured)."""
        from django.conf import settings

        def setting(name):
            return getattr(settings, f"ROOTLINE_{backend}_{name}")

        if not setting("URL"):
            return None
        return cls(
            name=backend.capitalize(),
            url=setting("URL"),
            api_prefix=setting("API_PREFIX"),
            tenant=setting("TENANT"),
            username=setting("USERNAME"),
            password=setting("PASSWORD"),
            bearer_token=setting("BEARER_TOKEN"),
            tls_verify=setting("TLS_VERIFY"),
            ca_bundle=setting("CA_BUNDLE"),
            timeout_seconds=setting("TIMEOUT").total_seconds(),
            max_concurrency=setting("MAX_CONCURRENCY"),
        )

    @property
    def api_url(self):
        return self.url.rstrip("/") + "/" + self.api_prefix.strip("/")

    @property
    def display_url(self):
        """The API URL without any user:password in it, for messages."""
        return str(httpx.URL(self.api_url).copy_with(userinfo=b""))

    def headers(self):
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.tenant:
            headers["X-Scope-OrgID"] = self.tenant
        if self.bearer_token:
            headers["Authorization"] = f"Bearer {self.bearer_token}"
        return headers

    def auth(self):
        return httpx.BasicAuth(self.username, self.password) if self.username else None

    def verify(self):
        if self.ca_bundle:
            return ssl.create_default_context(cafile=self.ca_bundle)
        return self.tls_verify


class Backend:
    """Sends GET requests to one backend's API and returns its JSON answers.

    Promises: a 4xx (other than 429) raises QueryError quoting the server; connection
    errors, timeouts, 429 and 5xx are tried `retry_attempts` times in all, sleeping
    `backoff_seconds` doubled each time (with jitter, at most MAX_BACKOFF_SECONDS) in
    between, then raise BackendUnavailable; an identical request answered successfully in
    the last `cache_seconds` is not sent again; at most `config.max_concurrency` requests
    to this backend are in flight at once within an event loop. (Two identical requests
    in flight at the same moment are both sent; the cache serves those that come after.)
    """

    def __init__(
        self,
        config,
        *,
        retry_attempts=RETRY_ATTEMPTS,
        backoff_seconds=BACKOFF_SECONDS,
        cache_seconds=CACHE_TTL_SECONDS,
    ):
        if retry_attempts < 1:
            raise ValueError("retry_attempts must be at least 1")
        self.config = config
        self.retry_attempts = retry_attempts
        self.backoff_seconds = backoff_seconds
        self.cache_seconds = cache_seconds
        self._http = httpx.AsyncClient(
            base_url=config.api_url + "/",
            headers=config.headers(),
            auth=config.auth(),
            verify=config.verify(),
            timeout=config.timeout_seconds,
        )

    async def aclose(self):
        await self._http.aclose()

    async def get(self, path, params=()):
        """The JSON answer to GET <api prefix>/<path>?<params>, with status "success".

        `params` is a mapping or a list of (name, value) pairs; None values are left out,
        so callers may pass optional parameters as they are. The answer may be shared
        with later callers through the cache: read it, do not change it.
        """
        items = [(k, str(v)) for k, v in _items(params) if v is not None]
        key = (self._identity(), "GET", path, tuple(sorted(items)))
        cached = _answers.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        answer = await self._send(path, items)
        if self.cache_seconds > 0:
            _remember(key, answer, self.cache_seconds)
        return answer

    async def _send(self, path, items):
        last_error = ""
        for attempt in range(1, self.retry_attempts + 1):
            try:
                async with self._limit():
                    response = await self._http.get(path, params=items)
            except RETRY_EXCEPTIONS as e:
                last_error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            else:
                if response.status_code not in RETRY_STATUSES:
                    return self._read(path, response)
                message, _ = error_message(response)
                last_error = f"HTTP {response.status_code}: {quote(message)}"
            log.info(
                "%s %s attempt %d/%d failed: %s",
                self.config.name,
                path,
                attempt,
                self.retry_attempts,
                last_error,
            )
            if attempt < self.retry_attempts:
                await asyncio.sleep(self._backoff(attempt))
        raise BackendUnavailable(
            self.config.name,
            f"{self.config.display_url}/{path}",
            self.retry_attempts,
            last_error,
        )

    def _read(self, path, response):
        shown_path = "/" + "/".join(p for p in (self.config.api_prefix.strip("/"), path) if p)
        if response.is_error:
            message, error_type = error_message(response)
            raise QueryError(
                self.config.name, shown_path, response.status_code, message, error_type
            )
        try:
            body = response.json()
        except ValueError:
            raise UnexpectedAnswer(
                f"{self.config.name} answered {shown_path} with HTTP {response.status_code} "
                f"but not JSON ({response.headers.get('Content-Type', 'no content type')}); "
                f"is {self.config.display_url} the API's address?"
            ) from None
        if not isinstance(body, dict) or body.get("status") != "success" or "data" not in body:
            message, error_type = error_message(response)
            raise QueryError(
                self.config.name, shown_path, response.status_code, message, error_type
            )
        return body

    def _identity(self):
        return (self.config.api_url, self.config.tenant, self.config.username)

    def _limit(self):
        loop = asyncio.get_running_loop()
        semaphores = _limits.setdefault(loop, {})
        key = (self._identity(), self.config.max_concurrency)
        if key not in semaphores:
            semaphores[key] = asyncio.Semaphore(self.config.max_concurrency)
        return semaphores[key]

    def _backoff(self, attempt):
        delay = min(MAX_BACKOFF_SECONDS, self.backoff_seconds * 2 ** (attempt - 1))
        return delay * random.uniform(0.5, 1.0)


class Client:
    """What the Loki and Prometheus clients share: config, settings, lifetime.

    Subclasses name their settings (`settings_name`, read by BackendConfig.from_settings)
    and the API prefix a config without one gets. Use as `async with Client(config) as c:`
    inside one event loop, or call `aclose()`. Keyword arguments after `config` tune
    retries and caching (see Backend).
    """

    settings_name = None
    api_prefix = None

    def __init__(self, config, **backend_options):
        if not config.api_prefix:
            config = replace(config, api_prefix=self.api_prefix)
        self.config = config
        self._backend = Backend(config, **backend_options)

    @classmethod
    def from_settings(cls, **backend_options):
        """A client for ROOTLINE_<settings_name>_*, or None when its URL is not set."""
        config = BackendConfig.from_settings(cls.settings_name)
        return cls(config, **backend_options) if config else None

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        await self.aclose()

    async def aclose(self):
        await self._backend.aclose()


def error_message(response):
    """The server's own (message, errorType) from an answer: Prometheus' JSON `error` and
    `errorType`, or the plain-text body (Loki, proxies)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip(), ""
    if isinstance(body, dict) and "error" in body:
        return str(body["error"]), str(body.get("errorType") or "")
    return response.text.strip(), ""


def clear_cache():
    """Forget every cached answer (tests; or to see fresh data within 30 s)."""
    _answers.clear()


def _remember(key, data, ttl_seconds):
    now = time.monotonic()
    if len(_answers) >= MAX_CACHE_ENTRIES:
        for stale in [k for k, (expiry, _) in _answers.items() if expiry <= now]:
            del _answers[stale]
        while len(_answers) >= MAX_CACHE_ENTRIES:
            del _answers[next(iter(_answers))]
    _answers[key] = (now + ttl_seconds, data)


def _items(params):
    return params.items() if hasattr(params, "items") else params
