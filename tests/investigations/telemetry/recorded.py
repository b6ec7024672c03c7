"""Serving shared/fixtures' recorded responses with respx, for the client tests."""

import asyncio
import json

import httpx
import respx

from investigations.telemetry import QueryError
from tests.shared import FIXTURES_DIR, fixture

# Tiny backoff so retry tests take milliseconds.
FAST_RETRIES = {"backoff_seconds": 0.001}


def recorded_names(backend):
    """Every recorded file of "loki" or "prometheus", by name without .json."""
    return sorted(p.stem for p in (FIXTURES_DIR / backend).glob("*.json"))


def recorded(backend, name):
    return fixture(f"{backend}/{name}.json")


def response(record):
    """The recorded answer as an httpx.Response (a text body stays text)."""
    body = record["body"]
    content = body if isinstance(body, str) else json.dumps(body)
    return httpx.Response(record["status"], headers=record["headers"], content=content.encode())


def serve(router, record, path_prefix=""):
    """A route that answers `record` only to its exact request (method, path, every
    param and no other): a client that sends anything else gets no answer."""
    request = record["request"]
    return router.route(
        method=request["method"],
        path=path_prefix + request["path"],
        params__eq=request["params"],
    ).mock(return_value=response(record))


def mock_router(url):
    """A respx router for the server at `url`; routes give the whole path."""
    origin = str(httpx.URL(url).copy_with(path="/", query=None))
    return respx.mock(base_url=origin, assert_all_called=True, assert_all_mocked=True)


def replay(client_class, config, call, record, path_prefix=""):
    """What `call(client, recorded request)` returns (or the QueryError it raises) when
    the server answers `record`; the server expects the recorded request under
    `path_prefix` + the recorded path, exactly once."""

    async def scenario():
        async with client_class(config, **FAST_RETRIES) as client:
            try:
                return await call(client, record["request"])
            except QueryError as e:
                return e

    with mock_router(config.url) as router:
        route = serve(router, record, path_prefix)
        result = asyncio.run(scenario())
    assert route.call_count == 1
    return result


class Expectations(dict):
    """A check for each recorded answer of a backend, by fixture name:

    @expectations.on("error_parse")
    def error_parse(answer, body): ...
    """

    def on(self, name):
        def register(check):
            self[name] = check
            return check

        return register
