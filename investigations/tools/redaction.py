"""Secrets are cut out of every text and structure before it leaves the tools.

Each secret is replaced by `[REDACTED:<kind>]` and counted by kind, so a report can say how
many were redacted without showing any. Keys, user names, hosts and schemes around a secret
are kept: they are evidence, the secret is not.

Two promises shape the patterns. No false positives on ordinary log text (timestamps, trace
ids, digests, paths, "token bucket", "password authentication failed"), because redacting
evidence misleads an investigation. And linear time: every quantifier is bounded or cannot
overlap its neighbour, and each rule runs only when a cheap trigger word is in the text.

`Redactor` and its methods are pure Python; only `default_redactor` looks at Django settings
(`ROOTLINE_REDACT_PATTERNS`), and only when Django is installed and configured.
"""

import functools
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

PLACEHOLDER_PREFIX = "[REDACTED"
# Values that say "no secret here": redacting them would only inflate the counts.
NON_SECRET_VALUES = frozenset({"null", "none", "nil", "true", "false", "redacted", "undefined"})
AUTH_SCHEMES = frozenset({"bearer", "basic", "token", "digest", "negotiate", "apikey"})

# Separator between a key and its value in `k=v`, `k: v`, `"k": "v"` and JSON escaped inside
# a JSON string (`\"k\": \"v\"`). Whitespace never crosses a line.
_SEP = r"(?P<sep>\\{0,3}[\"']?[ \t]{0,3}[:=][ \t]{0,3})"
# Go prints an http.Header as `map[X-Api-Key:[value] Authorization:[Bearer value]]`: a
# value may open with `[` (never one of ours: `[REDACTED:...]` is not a value to redact).
_OPEN_LIST = r"(?:\[(?!REDACTED))?"
_VALUE = (
    r"(?:\\{0,3}\"(?P<secret>[^\"\\\n]{1,512})"
    r"|'(?P<secret2>[^'\\\n]{1,512})"
    r"|" + _OPEN_LIST + r"(?P<bare>[^\s\"'\\,;&)}\]\[<>]{1,512}))"
)
_SENSITIVE_WORDS = (
    "passwd", "password", "passphrase", "pwd", "secret", "token", "api[_-]?key", "apikey",
    "access[_-]?key", "private[_-]?key", "account[_-]?key", "credentials",
)  # fmt: skip
_SENSITIVE_KEY_NAME = re.compile(f"(?i:{'|'.join(_SENSITIVE_WORDS)}|authorization)$")
_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
# A word boundary written after a literal: a leading \b would cost the regex engine its
# fast scan for the literal, making every rule ten times slower.
_NOT_AFTER_WORD = r"(?<!\w{prefix})"


def _caseless(*words):
    """`(?i:one|two)` written so that the regex starts with a character set, which the
    regex engine scans for quickly; a leading (?i:...) is tried at every position."""
    by_first = {}
    for word in words:
        by_first.setdefault(word[0].lower(), []).append(word[1:])
    firsts = "".join(f"{c}{c.upper()}" for c in by_first)
    branches = "|".join(f"(?<={c})(?:{'|'.join(rests)})" for c, rests in by_first.items())
    return f"[{firsts}](?i:{branches})"


def _after_boundary(literal):
    return literal + _NOT_AFTER_WORD.format(prefix=re.escape(literal))


class Redacted(NamedTuple):
    text: str
    counts: dict[str, int]


class RedactedData(NamedTuple):
    value: Any
    counts: dict[str, int]


@dataclass(frozen=True)
class Rule:
    """One secret shape. The groups named `secret*` or `bare` hold what is replaced (the
    whole match when there are none); `triggers` are lower-case words without which the
    regex cannot match, so it is skipped."""

    kind: str
    regex: re.Pattern
    triggers: tuple[str, ...] = ()


def _rule(kind, pattern, *triggers, flags=0):
    return Rule(kind, re.compile(pattern, flags), triggers)


# Order matters: the first rule to claim a secret names its kind, so context (a PEM block,
# a URL, an Authorization header) and specific token formats come before generic keys.
BUILTIN_RULES = (
    _rule(
        "private_key",
        r"(?P<secret>-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----(?:"
        # the block up to its END line, never into the next block ...
        r"(?:(?!-----BEGIN)(?s:.)){0,20000}?-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
        # ... or, when the END line was cut off, the base64 lines that follow
        r"|(?:(?:\s|\\[nr]){1,20}[A-Za-z0-9+/=]{16,4096}){0,400}))",
        "private key",
    ),
    _rule(
        "url_password",
        r"://[^\s:/@\"'\\\[\]]{0,256}:(?P<secret>[^\s/\"'\\]{1,256})@",
        "://",
    ),
    # Go's MySQL driver DSN, `user:password@tcp(host:3306)/db`, has no scheme.
    _rule(
        "url_password",
        r"(?<![\w.[-])[\w.-]{1,64}:(?P<secret>[^\s\"'\\:]{1,256}?)@(?:tcp|unix)\(",
        "@tcp(",
        "@unix(",
    ),
    _rule(
        "authorization_header",
        _caseless("proxy-authorization", "authorization")
        + _SEP
        + r"\\{0,3}(?:[\"']|"
        + _OPEN_LIST
        + r")(?P<scheme>(?i:bearer|basic|token|digest|negotiate|apikey)[ \t]+)?"
        r"(?P<secret>[^\s\"'\\,;\]]{1,4096})",
        "authorization",
    ),
    _rule(
        "jwt",
        "(?P<secret>"
        + _after_boundary("eyJ")
        + r"[A-Za-z0-9_-]{8,4096}\.[A-Za-z0-9_-]{8,4096}\.[A-Za-z0-9_-]{8,4096})",
        "eyj",
    ),
    _rule(
        "aws_access_key",
        "(?P<secret>" + _after_boundary("A") + r"(?:KIA|SIA)[A-Z0-9]{16})\b",
        "akia",
        "asia",
    ),
    _rule(
        "aws_secret_key",
        _caseless("aws_?secret_?access_?key", "secret_?access_?key", "aws_?secret_?key")
        + _SEP
        + r"\\{0,3}[\"']?(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
        "secret",
    ),
    _rule(
        "gcp_api_key",
        "(?P<secret>" + _after_boundary("AIza") + r"[0-9A-Za-z_-]{35})(?![0-9A-Za-z_-])",
        "aiza",
    ),
    _rule(
        "github_token",
        "(?P<secret>"
        + _after_boundary("g")
        + r"(?:h[pousr]_[A-Za-z0-9]{36,255}|ithub_pat_[A-Za-z0-9_]{22,255}))\b",
        "ghp_",
        "gho_",
        "ghu_",
        "ghs_",
        "ghr_",
        "github_pat_",
    ),
    _rule(
        "slack_token",
        "(?P<secret>" + _after_boundary("xox") + r"[abposr]-[A-Za-z0-9-]{10,250})",
        "xox",
    ),
    _rule(
        "slack_webhook",
        r"hooks\.slack\.com/services/(?P<secret>[A-Za-z0-9/_-]{20,200})",
        "hooks.slack.com",
    ),
    _rule(
        "anthropic_key",
        "(?P<secret>" + _after_boundary("sk-ant-") + r"[A-Za-z0-9_-]{20,400})",
        "sk-ant-",
    ),
    _rule(
        "openai_key",
        "(?P<secret>"
        + _after_boundary("sk-")
        + r"(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,400}|[A-Za-z0-9]{32,200}))\b",
        "sk-",
    ),
    _rule(
        "bearer_token",
        _caseless("bearer") + r"(?<!\w.{6})[ \t]+(?P<secret>[A-Za-z0-9\-._~+/]{8,4096}=*)",
        "bearer",
    ),
    _rule(
        "key_value",
        _caseless(*_SENSITIVE_WORDS) + _SEP + _VALUE,
        "pass",
        "pwd",
        "secret",
        "token",
        "key",
        "credentials",
    ),
)


def _secret_span(match):
    for name in ("secret", "secret2", "bare"):
        if name in match.re.groupindex and match.group(name) is not None:
            return match.span(name)
    return match.span()


def _key_starts_line(text, key_start):
    """Whether the key (with any prefix such as `DB_`) is the first thing on its line, as
    in YAML and env files, so that `key: value` is configuration rather than prose."""
    i = key_start
    while i > 0 and text[i - 1] in _KEY_CHARS:
        i -= 1
    line_start = text.rfind("\n", 0, i) + 1
    return text[line_start:i].strip(" \t-\"'") == ""


def _is_secret(rule, match, value):
    """False for what only looks like a secret: placeholders, words in prose."""
    if not value or value.startswith(PLACEHOLDER_PREFIX) or set(value) <= {"*", "x", "X"}:
        return False
    if value.lower() in NON_SECRET_VALUES:
        return False
    groups = match.re.groupindex
    if rule.kind == "bearer_token":
        return len(value) >= 20 or any(c.isdigit() for c in value)
    if rule.kind == "authorization_header" and value.lower() in AUTH_SCHEMES:
        return False
    if "sep" in groups and ":" in match.group("sep") and value.isalpha():
        # `invalid token: signature expired` is prose; `password: hunter` in YAML is not.
        start = _secret_span(match)[0]
        unquoted = start == 0 or match.string[start - 1] not in "\"'"
        no_scheme = "scheme" not in groups or match.group("scheme") is None
        if unquoted and no_scheme and not _key_starts_line(match.string, match.start()):
            return False
    return True


def _apply(rule, text, counts):
    """`text` with the secrets `rule` finds replaced. Unlike `re.sub`, a match that turns
    out not to be a secret does not hide the matches that overlap it: the search goes on
    from its next character (`Bearer word Bearer t0k3n`)."""
    pieces, kept_from, search_from = [], 0, 0
    while match := rule.regex.search(text, search_from):
        start, end = _secret_span(match)
        if _is_secret(rule, match, text[start:end]):
            pieces += [text[kept_from:start], f"[REDACTED:{rule.kind}]"]
            counts[rule.kind] = counts.get(rule.kind, 0) + 1
            kept_from = end
            search_from = max(match.end(), match.start() + 1)
        else:
            search_from = match.start() + 1
    return "".join([*pieces, text[kept_from:]]) if pieces else text


class Redactor:
    """The built-in rules plus extra regexes (kind `custom`; a group named `secret`, when
    present, is the part replaced). Invalid extra patterns raise ValueError."""

    def __init__(self, extra_patterns=()):
        if isinstance(extra_patterns, str):
            raise ValueError("extra redaction patterns must be a list of regexes, not a string")
        extra = []
        for pattern in extra_patterns:
            try:
                extra.append(Rule("custom", re.compile(pattern)))
            except re.error as exc:
                raise ValueError(f"redaction pattern {pattern!r} is not a regex: {exc}") from exc
        self.rules = BUILTIN_RULES + tuple(extra)

    def redact(self, text):
        """`text` with every secret replaced; never changes anything else."""
        counts = {}
        if not text:
            return Redacted(text, counts)
        lowered = text.lower()
        for rule in self.rules:
            if rule.triggers and not any(t in lowered for t in rule.triggers):
                continue
            text = _apply(rule, text, counts)
        return Redacted(text, counts)

    def redact_data(self, value):
        """A copy of a JSON-like structure with every string redacted (dict keys too), and
        the whole value of a secret-named key (`password`, `db_token`, `Authorization`)
        replaced: a structure has lost the `key=` context that the text patterns need."""
        counts = {}
        return RedactedData(self._walk(value, counts), counts)

    def _walk(self, value, counts):
        if isinstance(value, str):
            return self._count(self.redact(value), counts)
        if isinstance(value, dict):
            return {self._walk(k, counts): self._entry(k, v, counts) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._walk(v, counts) for v in value]
        return value

    def _entry(self, key, value, counts):
        secret_scalar = isinstance(value, str | int | float) and not isinstance(value, bool)
        if isinstance(key, str) and secret_scalar and _SENSITIVE_KEY_NAME.search(key):
            text = str(value)
            if (
                text
                and not text.startswith(PLACEHOLDER_PREFIX)
                and text.lower() not in NON_SECRET_VALUES
            ):
                kind = (
                    "authorization_header" if key.lower().endswith("authorization") else "key_value"
                )
                counts[kind] = counts.get(kind, 0) + 1
                return f"[REDACTED:{kind}]"
        return self._walk(value, counts)

    @staticmethod
    def _count(redacted, counts):
        for kind, n in redacted.counts.items():
            counts[kind] = counts.get(kind, 0) + n
        return redacted.text


@functools.lru_cache(maxsize=8)
def _redactor_for(extra_patterns):
    return Redactor(extra_patterns)


def default_redactor():
    """The built-in rules plus `settings.ROOTLINE_REDACT_PATTERNS` when Django is configured
    and has that setting; built once per distinct setting value."""
    try:
        from django.conf import settings
    except ImportError:
        return _redactor_for(())
    if not settings.configured:
        return _redactor_for(())
    return _redactor_for(tuple(getattr(settings, "ROOTLINE_REDACT_PATTERNS", ())))


def redact(text):
    """`Redacted(text, counts)` by the default redactor."""
    return default_redactor().redact(text)


def redact_data(value):
    """`RedactedData(value, counts)` by the default redactor."""
    return default_redactor().redact_data(value)
