"""Every URL Rootline serves needs a login or a token, except the few meant to be open.

The test walks the URL conf itself, so a view added later without protection fails it
without anyone having to remember to add a test.
"""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

# URL names open to anyone, and why.
OPEN = {
    "login": "the way in",
    "logout": "the way out (POST; it only ends a session)",
    "admin:login": "admin's way in",
    "admin:logout": "admin's way out",
    "healthz": "probes",
    "readyz": "probes",
}
# The webhook and /metrics take their own token rather than a user's: without it they
# refuse, which the walk checks like any other URL.
REFUSED = {401, 403}
SAMPLES = ("1", "x", "auth")


def sample_for(regex):
    """A value that a named group's regular expression accepts."""
    for value in SAMPLES:
        if re.fullmatch(regex, value):
            return value
    raise AssertionError(f"no sample value matches {regex!r}; add one to SAMPLES")


def concrete(pattern):
    """A path that `pattern` (a route or a regular expression) resolves."""
    text = str(pattern)
    if "<" in text and "(?P" not in text:
        return re.sub(r"<(?:\w+:)?\w+>", "1", text)  # every converter takes "1"
    text = re.sub(r"\(\?P<\w+>([^()]*)\)", lambda m: sample_for(m.group(1)), text)
    return text.lstrip("^").rstrip("$").replace("\\", "")


def every_url(patterns=None, prefix="/", namespace=""):
    """(name, path) of every pattern in the URL conf."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from every_url(entry.url_patterns, prefix + concrete(entry.pattern), inner)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}{entry.name}" if entry.name else f"{namespace}(unnamed)"
            yield name, prefix + concrete(entry.pattern)


URLS = sorted(set(every_url()))


def test_the_walk_finds_the_pages_the_api_and_admin():
    names = {name for name, _ in URLS}
    assert {"home", "investigation", "alerts", "ask", "api:get_investigation"} <= names
    assert any(name.startswith("admin:") for name in names)
    assert len(URLS) > 40


@pytest.mark.parametrize(("name", "path"), URLS, ids=[f"{n} {p}" for n, p in URLS])
@pytest.mark.parametrize("method", ["get", "post"])
def test_no_url_answers_an_anonymous_caller(client, name, path, method):
    if name in OPEN:
        pytest.skip(f"open by design: {OPEN[name]}")
    response = getattr(client, method)(path)

    sent_to_login = response.status_code == 302 and "/login/" in response["Location"]
    assert sent_to_login or response.status_code in REFUSED | {405}, (
        f"{method.upper()} {path} ({name}) answered {response.status_code} without a login"
    )
    if response.status_code == 405:
        # A method the URL does not take: then the one it takes must be refused.
        other = client.post(path) if method == "get" else client.get(path)
        refused = other.status_code in REFUSED or (
            other.status_code == 302 and "/login/" in other["Location"]
        )
        assert refused or other.status_code == 405, f"{path} ({name}): {other.status_code}"
