"""A Loki-compatible read endpoint over recorded log lines, for benchmarks on machines
where a real Loki cannot be installed.

    .venv/bin/python bench/loki_stub.py shared/data/rca-cases/nezha-tt-0129/logs.jsonl.gz

    with serve(LogStore.from_jsonl_gz(path)) as loki:
        httpx.get(f"{loki.url}/loki/api/v1/query_range", params={...})

It answers as Loki 3 does (the same JSON, stream order and entry order, and Loki's own
plain-text 400 messages for the mistakes it shares with Loki): log queries on
/loki/api/v1/query_range (a stream selector and line filters), label names and values,
/ready. Metric queries and pipeline stages other than line filters get a 400 that says
the stub does not support them; every other path gets Loki's 404, the patterns endpoint
included, so clients fall back as they do against a Loki without a pattern ingester.

Standard library only, so that it runs where nothing is installed beyond Python.
"""

import argparse
import bisect
import calendar
import functools
import gzip
import heapq
import json
import logging
import math
import re
import time
from collections import defaultdict
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from itertools import islice
from operator import attrgetter, itemgetter
from typing import NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

from background_server import BackgroundServer

log = logging.getLogger(__name__)

API = "/loki/api/v1"
DEFAULT_PORT = 3100
DEFAULT_LIMIT = 100
DEFAULT_LOOKBACK_NS = 3600 * 10**9
# Loki's default limits_config.max_entries_limit_per_query.
MAX_ENTRIES_LIMIT_PER_QUERY = 5000
MAX_QUERY_BYTES = 5120
# Line filters whose answers per line are remembered (see _regexp_search).
MAX_REMEMBERED_PATTERNS = 16
# Loki reads a number up to 1e10 as seconds and a larger one as nanoseconds.
MAX_SECONDS_TIMESTAMP = 10**10
NANOSECONDS_PER_SECOND = 10**9
# How soon close() stops a background stub.

TEXT = "text/plain; charset=utf-8"
JSON = "application/json; charset=UTF-8"
NOT_FOUND = b"404 page not found\n"
EMPTY_COMPATIBLE = (
    "queries require at least one regexp or equality matcher that does not have an "
    'empty-compatible value. For instance, app=~".*" does not meet this requirement, but '
    'app=~".+" will'
)
ONLY_MATCHERS = "only label matchers are supported"


class BadRequest(Exception):
    """A request answered with HTTP 400; the message is the plain-text body."""


class LogQLParseError(BadRequest):
    """A query Loki cannot parse, worded as Loki words it (line and column 0: unknown)."""

    def __init__(self, message, line=0, col=0):
        where = f"at line {line}, col {col}" if line or col else ""
        super().__init__(f"parse error {where}: {message}")


class UnsupportedQuery(BadRequest):
    """Valid LogQL that this stub does not evaluate."""

    def __init__(self, what):
        super().__init__(
            f"the Loki stub does not support {what}: it supports only stream selectors and "
            f'line filters, as in {{service="api"}} |= "error" != "debug" |~ "time(out)?" '
            f'!~ "(?i)retry"'
        )


# LogQL, as far as the stub goes.


class Token(NamedTuple):
    kind: str  # what Loki's parser calls it in messages: "{", "|=", "IDENTIFIER", "$end"...
    value: str
    line: int
    col: int


LINE_FILTERS = ("|=", "!=", "|~", "!~")
MATCHER_OPS = ("=", "=~", "!~", "!=")
TWO_CHAR_TOKENS = frozenset(("=~", "!~", "!=", "|=", "|~", "|>", "!>", "==", ">=", "<="))
_SPACE = re.compile(r"(?:\s+|#[^\n]*)*")
_IDENTIFIER = re.compile(r"[^\W\d]\w*")
_NUMBER = re.compile(r"\d[\w.]*")
# A name followed by this is a function (Loki's isFunction): rate(, sum by (, ip(.
_CALL = re.compile(r"\s*(?:\(|(?:by|without)\s*\()", re.IGNORECASE)
_ESCAPES = dict(zip('abfnrtv\\"', '\a\b\f\n\r\t\v\\"', strict=True))
# \ooo (octal, at most 255), \xhh (a byte), \uhhhh, \Uhhhhhhhh (a code point).
_CODE_ESCAPE = re.compile(r"\\(?:([0-7]{3})|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8}))")


def _tokens(text):
    """LogQL tokens at Loki's positions, ending with "$end". Lazily, so that a syntax error
    is reported before a bad string later in the query, as Loki's parser does."""
    pos = 0
    while True:
        pos = _SPACE.match(text, pos).end()
        line = text.count("\n", 0, pos) + 1
        col = pos - text.rfind("\n", 0, pos)
        if pos == len(text):
            yield Token("$end", "", *((line, col) if text else (0, 0)))
            return
        char, pair = text[pos], text[pos : pos + 2]
        if char in '"`':
            value, pos = _read_string(text, pos, line, col)
            yield Token("STRING", value, line, col)
        elif pair in TWO_CHAR_TOKENS:
            # Loki's scanner forgets the line of a token it had to read two characters for.
            yield Token(pair, pair, 0, col)
            pos += 2
        elif char == "[":
            end = text.find("]", pos)
            if end < 0:
                raise LogQLParseError("missing closing ']' in duration", 0, col)
            yield Token("RANGE", text[pos : end + 1], 0, col)
            pos = end + 1
        elif match := _IDENTIFIER.match(text, pos):
            pos = match.end()
            kind = "FUNCTION" if _CALL.match(text, pos) else "IDENTIFIER"
            yield Token(kind, match[0], line, col)
        elif match := _NUMBER.match(text, pos):
            yield Token("NUMBER", match[0], line, col)
            pos = match.end()
        else:
            # Loki's lexer calls any other character an IDENTIFIER, unless it is a token.
            kind = char if char in "{}(),=|+-*/%^<>." else "IDENTIFIER"
            yield Token(kind, char, line, col)
            pos += 1


def _read_string(text, start, line, col):
    """The value of the "..." (Go escapes) or `...` (raw) string at `start`, and the
    position after it."""
    quote = text[start]
    if quote == "`":
        end = text.find("`", start + 1)
        if end < 0:
            raise LogQLParseError("literal not terminated", line, col)
        return text[start + 1 : end], end + 1
    chars, pos = [], start + 1
    while pos < len(text) and text[pos] not in '"\n':
        if text[pos] != "\\":
            chars.append(text[pos])
            pos += 1
            continue
        escape = text[pos + 1 : pos + 2]
        if escape in _ESCAPES:
            chars.append(_ESCAPES[escape])
            pos += 2
        elif match := _CODE_ESCAPE.match(text, pos):
            octal, *hexadecimal = match.groups()
            code = int(octal, 8) if octal else int(next(filter(None, hexadecimal)), 16)
            if code > (0o377 if octal else 0x10FFFF) or 0xD800 <= code < 0xE000:
                raise LogQLParseError("invalid char escape", line, col)
            chars.append(chr(code))
            pos = match.end()
        else:
            raise LogQLParseError("invalid char escape", line, col)
    if pos >= len(text) or text[pos] != '"':
        raise LogQLParseError("literal not terminated", line, col)
    return "".join(chars), pos + 1


def _compile(pattern, flags=0):
    try:
        return re.compile(pattern, flags)
    except re.error as e:
        raise LogQLParseError(f"error parsing regexp: {e}: `{pattern}`") from e


class Matcher:
    """One label matcher of a stream selector; an absent label has the value ""."""

    def __init__(self, name, op, value):
        self.name, self.op, self.value = name, op, value
        # Prometheus anchors label regexps and lets `.` match a newline.
        self._regexp = _compile(value, re.DOTALL) if op in ("=~", "!~") else None

    def matches(self, value):
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        return (self._regexp.fullmatch(value) is not None) == (self.op == "=~")


# An alternation of plain text, optionally case-insensitive: `(?i)error|exception`.
_PLAIN = r"[^\\^$.|?*+()\[\]{}]+"
_PLAIN_ALTERNATION = re.compile(rf"(\(\?i\))?({_PLAIN}(?:\|{_PLAIN})*)")


def _line_filter(op, value):
    if op == "|=":
        return lambda line: value in line
    if op == "!=":
        return lambda line: value not in line
    found = _regexp_search(value)
    return found if op == "|~" else lambda line: not found(line)


def _regexp_search(pattern):
    """A test that `pattern` occurs in a line. Plain alternatives are looked for as
    substrings, as Loki simplifies them: Python's re is slow at `(?i)error|exception`."""
    if match := _PLAIN_ALTERNATION.fullmatch(pattern):
        ignore_case, alternatives = match[1], match[2].split("|")
        if not ignore_case:
            return lambda line: any(text in line for text in alternatives)
        lowered = [text.lower() for text in alternatives]
        return lambda line: any(text in line.lower() for text in lowered)
    regexp = _compile(pattern)
    # The same lines are read again and again (the replay's windows overlap, each hour
    # read once per case), and Python's re is slow at a long case-insensitive alternation
    # over long lines: each line is searched once per pattern.
    known = _searched(pattern)

    def search(line):
        found = known.get(line)
        if found is None:
            found = known[line] = regexp.search(line) is not None
        return found

    return search


@functools.lru_cache(maxsize=MAX_REMEMBERED_PATTERNS)
def _searched(pattern):
    """{line: whether `pattern` occurs in it}, for the patterns asked for last (a scan
    asks for two or three; the lines are the store's, so each holds at most those)."""
    return {}


class LogQuery(NamedTuple):
    """A parsed log query: the stream selector's matchers and the line filters' tests."""

    matchers: tuple
    filters: tuple

    def selects(self, labels):
        return all(m.matches(labels.get(m.name, "")) for m in self.matchers)

    def keeps(self, line):
        return all(keep(line) for keep in self.filters)


class _Parser:
    def __init__(self, text):
        self._tokens = _tokens(text)
        self.token = next(self._tokens)

    def advance(self):
        token, self.token = self.token, next(self._tokens, self.token)
        return token

    def expect(self, *kinds):
        if self.token.kind in kinds:
            return self.advance()
        raise self.unexpected(*kinds)

    def unexpected(self, *expected):
        wanted = f", expecting {' or '.join(expected)}" if expected else ""
        return LogQLParseError(
            f"syntax error: unexpected {self.token.kind}{wanted}", self.token.line, self.token.col
        )

    def selector(self):
        self.expect("{")
        matchers = []
        if self.token.kind == "}":
            self.advance()
            return matchers
        while True:
            name = self.expect(*(("IDENTIFIER",) if matchers else ("IDENTIFIER", "}"))).value
            op = self.expect(*MATCHER_OPS).kind
            matchers.append(Matcher(name, op, self.expect("STRING").value))
            if self.expect("}", ",").kind == "}":
                return matchers

    def line_filters(self):
        filters = []
        while self.token.kind != "$end":
            kind = self.token.kind
            if kind in LINE_FILTERS:
                self.advance()
                if self.token.kind == "FUNCTION":
                    raise UnsupportedQuery(f"functions in line filters ({self.token.value})")
                filters.append(_line_filter(kind, self.expect("STRING", "ip").value))
                if self.token.kind == "IDENTIFIER" and self.token.value.lower() == "or":
                    raise UnsupportedQuery("`or` between line filters")
            elif kind in ("|>", "!>"):
                raise UnsupportedQuery("pattern line filters")
            elif kind == "|":
                self.advance()
                raise UnsupportedQuery(f"pipeline stages (| {self.token.value or '...'})")
            elif kind == "RANGE":
                raise UnsupportedQuery("range selectors (metric queries)")
            else:
                raise self.unexpected()
        return filters


def parse_log_query(text):
    """A LogQuery, or LogQLParseError with Loki's message, or UnsupportedQuery."""
    size = len(text.encode())
    if size >= MAX_QUERY_BYTES:
        raise LogQLParseError(f"input size too long ({size} > {MAX_QUERY_BYTES})")
    parser = _Parser(text)
    if parser.token.kind != "{":
        if parser.token.kind in ("FUNCTION", "(", "NUMBER", "-"):
            raise UnsupportedQuery("metric queries")
        raise parser.unexpected()
    query = LogQuery(tuple(parser.selector()), tuple(parser.line_filters()))
    if all(m.matches("") for m in query.matchers):
        raise LogQLParseError(EMPTY_COMPATIBLE)
    return query


# The recorded lines.


class Stream:
    """The entries of one label set, in time order (lines of the same time in the order
    they were given)."""

    def __init__(self, labels, entries):
        self.labels = dict(sorted(labels.items()))
        # Loki orders streams by this string (Prometheus' labels.String()).
        quoted = (f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in self.labels.items())
        self.key = "{" + ", ".join(quoted) + "}"
        self.timestamps = [ts for ts, _ in entries]
        self.lines = [line for _, line in entries]

    def span(self, start_ns, end_ns):
        """The index range of the entries in [start_ns, end_ns)."""
        return (
            bisect.bisect_left(self.timestamps, start_ns),
            bisect.bisect_left(self.timestamps, end_ns),
        )

    def has_entries(self, start_ns, end_ns):
        low, high = self.span(start_ns, end_ns)
        return low < high


class LogStore:
    """Log lines grouped into streams by identical label sets, as Loki stores them once
    pushed (labels with an empty value dropped, as Loki drops them)."""

    def __init__(self, entries):
        grouped = defaultdict(list)
        for labels, ts_ns, line in entries:
            key = tuple(sorted((k, v) for k, v in labels.items() if v != ""))
            grouped[key].append((int(ts_ns), line))
        streams = [
            Stream(dict(key), sorted(items, key=itemgetter(0))) for key, items in grouped.items()
        ]
        self.streams = sorted(streams, key=attrgetter("key"))

    @classmethod
    def from_jsonl_gz(cls, path):
        """A case pack's logs.jsonl.gz: {"labels", "ts_ns", "line"} per line."""
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            records = (json.loads(text) for text in lines if text.strip())
            return cls((r["labels"], int(r["ts_ns"]), r["line"]) for r in records)

    def __len__(self):
        return sum(len(stream.timestamps) for stream in self.streams)

    def select(self, query, start_ns, end_ns, limit, direction="backward"):
        """The first `limit` entries in [start_ns, end_ns) of every stream `query` selects,
        newest first when backward: [(labels, [(ts_ns, line), ...]), ...] ordered as Loki
        orders them. Entries of the same time in different streams are taken in stream
        order (Loki breaks that tie by stream hash)."""
        forward = direction == "forward"
        chosen = [(rank, s) for rank, s in enumerate(self.streams) if query.selects(s.labels)]
        merged = heapq.merge(
            *(_entries(rank, s, query, start_ns, end_ns, forward) for rank, s in chosen)
        )
        taken = defaultdict(list)
        for _, rank, ts_ns, line in islice(merged, limit):
            taken[rank].append((ts_ns, line))
        return [(self.streams[rank].labels, taken[rank]) for rank in sorted(taken)]

    def label_names(self, start_ns, end_ns, matchers=()):
        names = set()
        for stream in self._streams(start_ns, end_ns, matchers):
            names.update(stream.labels)
        return sorted(names)

    def label_values(self, name, start_ns, end_ns, matchers=()):
        streams = self._streams(start_ns, end_ns, matchers)
        return sorted({s.labels[name] for s in streams if name in s.labels})

    def _streams(self, start_ns, end_ns, matchers):
        query = LogQuery(tuple(matchers), ())
        return [
            s for s in self.streams if query.selects(s.labels) and s.has_entries(start_ns, end_ns)
        ]


def _entries(rank, stream, query, start_ns, end_ns, forward):
    """(sort key, rank, ts_ns, line) of a stream's kept entries, in the query's direction."""
    low, high = stream.span(start_ns, end_ns)
    indexes = range(low, high) if forward else range(high - 1, low - 1, -1)
    sign = 1 if forward else -1
    for i in indexes:
        line = stream.lines[i]
        if query.keeps(line):
            yield sign * stream.timestamps[i], rank, stream.timestamps[i], line


# Parameters, read as Loki reads them.

_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|([+-])(\d\d):(\d\d))"
)
_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def parse_timestamp(value):
    """Nanoseconds since the epoch from RFC 3339 or a number (seconds up to 1e10, with a
    fraction rounded to the millisecond; nanoseconds above), as Loki reads start and end.
    ValueError quotes what Go would say."""
    if match := _RFC3339.fullmatch(value):
        year, month, day, hour, minute, second, fraction, zone, sign, zh, zm = match.groups()
        try:
            moment = datetime(*map(int, (year, month, day, hour, minute, second)), tzinfo=UTC)
        except ValueError:
            pass  # not a real date: Loki tries it as a number next, and so fails
        else:
            offset = (
                0 if zone == "Z" else (int(zh) * 3600 + int(zm) * 60) * (-1 if sign == "-" else 1)
            )
            seconds = calendar.timegm(moment.utctimetuple()) - offset
            return seconds * NANOSECONDS_PER_SECOND + int((fraction or "0").ljust(9, "0")[:9])
    if "." in value:
        number = float(value) if _DECIMAL.fullmatch(value) else None
        if number is None or not math.isfinite(number):
            raise ValueError(f"strconv.ParseFloat: parsing {json.dumps(value)}: invalid syntax")
        fraction, whole = math.modf(number)
        if whole > MAX_SECONDS_TIMESTAMP:
            return int(whole)
        fraction = math.floor(abs(fraction) * 1000 + 0.5) / 1000 * math.copysign(1, fraction)
        return int(whole) * NANOSECONDS_PER_SECOND + int(fraction * NANOSECONDS_PER_SECOND)
    if not _INTEGER.fullmatch(value):
        raise ValueError(f"strconv.ParseInt: parsing {json.dumps(value)}: invalid syntax")
    number = int(value)
    return number * NANOSECONDS_PER_SECOND if number <= MAX_SECONDS_TIMESTAMP else number


def _bounds(params):
    """(start_ns, end_ns): end defaults to now, start to an hour before min(end, now)."""
    now = time.time_ns()
    end_ns = _timestamp(params, "end", now)
    return _timestamp(params, "start", min(end_ns, now) - DEFAULT_LOOKBACK_NS), end_ns


def _timestamp(params, name, default):
    if not params.get(name):
        return default
    try:
        return parse_timestamp(params[name])
    except ValueError as e:
        raise BadRequest(f"could not parse '{name}' parameter: {e}") from e


def _limit(params):
    value = params.get("limit", "")
    if not value:
        return DEFAULT_LIMIT
    if not _INTEGER.fullmatch(value):
        raise BadRequest(f"strconv.Atoi: parsing {json.dumps(value)}: invalid syntax")
    if int(value) <= 0:
        raise BadRequest("limit must be a positive value")
    return int(value)


def _direction(params):
    value = params.get("direction", "")
    if value.lower() not in ("", "forward", "backward"):
        raise BadRequest(f"invalid direction '{value}'")
    return value.lower() or "backward"


def _label_matchers(params):
    if not params.get("query"):
        return ()
    try:
        query = parse_log_query(params["query"])
    except UnsupportedQuery:
        raise BadRequest(ONLY_MATCHERS) from None
    if query.filters:
        raise BadRequest(ONLY_MATCHERS)
    return query.matchers


# Endpoints.


def _query_range(store, params):
    """The answer to /loki/api/v1/query_range, checked in Loki's order."""
    started = time.perf_counter()
    start_ns, end_ns = _bounds(params)
    if end_ns < start_ns:
        raise BadRequest("end timestamp must not be before or equal to start time")
    limit, direction = _limit(params), _direction(params)
    query = parse_log_query(params.get("query", ""))
    if limit > MAX_ENTRIES_LIMIT_PER_QUERY:
        raise BadRequest(
            "max entries limit per query exceeded, limit > max_entries_limit_per_query "
            f"({limit} > {MAX_ENTRIES_LIMIT_PER_QUERY})"
        )
    streams = store.select(query, start_ns, end_ns, limit, direction)
    result = [
        {"stream": labels, "values": [[str(ts), line] for ts, line in entries]}
        for labels, entries in streams
    ]
    returned = sum(len(entries) for _, entries in streams)
    stats = _stats(returned, time.perf_counter() - started)
    return {
        "status": "success",
        "data": {"resultType": "streams", "result": result, "stats": stats},
    }


def _label_names(store, params):
    start_ns, end_ns = _bounds(params)
    return {
        "status": "success",
        "data": store.label_names(start_ns, end_ns, _label_matchers(params)),
    }


def _label_values(store, name, params):
    start_ns, end_ns = _bounds(params)
    values = store.label_values(name, start_ns, end_ns, _label_matchers(params))
    return {"status": "success", "data": values}


_LABEL_VALUES_PATH = re.compile(rf"{API}/label/([^/]+)/values")


def answer(store, path, params):
    """(HTTP status, content type, body) for a GET of `path`; BadRequest for a 400."""
    if path == "/ready":
        return 200, TEXT, b"ready\n"
    if path == f"{API}/query_range":
        data = _query_range(store, params)
    elif path in (f"{API}/labels", f"{API}/label"):
        data = _label_names(store, params)
    elif match := _LABEL_VALUES_PATH.fullmatch(path):
        data = _label_values(store, unquote(match[1]), params)
    else:
        return 404, TEXT, NOT_FOUND
    return 200, JSON, json.dumps(data, separators=(",", ":")).encode()


# Loki's query statistics, zero but for the entries returned and the time taken: clients
# that read them find every field where Loki puts it.


_CACHES = (
    "chunk index result statsResult volumeResult seriesResult labelResult instantMetricResult "
    "logResult taskResult"
)


def _zeros(names, **fields):
    """Counters `names` (space-separated) at 0, followed by `fields`."""
    return {**dict.fromkeys(names.split(), 0), **fields}


def _store_stats():
    return _zeros(
        "totalChunksRef totalChunksDownloaded chunksDownloadTime",
        queryReferencedStructuredMetadata=False,
        queryUsedV2Engine=False,
        chunk=_zeros(
            "headChunkBytes headChunkLines decompressedBytes decompressedLines compressedBytes "
            "totalDuplicates postFilterLines headChunkStructuredMetadataBytes "
            "decompressedStructuredMetadataBytes"
        ),
        **_zeros("chunkRefsFetchTime congestionControlLatency pipelineWrapperFilteredLines"),
        dataobj=_zeros(
            "prePredicateDecompressedRows prePredicateDecompressedBytes "
            "prePredicateDecompressedStructuredMetadataBytes postPredicateRows "
            "postPredicateDecompressedBytes postPredicateStructuredMetadataBytes postFilterRows "
            "pagesScanned pagesDownloaded pagesDownloadedBytes pageBatches totalRowsAvailable "
            "totalPageDownloadTime wireBytesTransferred"
        ),
    )


def _stats(entries_returned, exec_seconds):
    summary = _zeros(
        "bytesProcessedPerSecond linesProcessedPerSecond totalBytesProcessed "
        "totalLinesProcessed execTime queueTime subqueries totalEntriesReturned splits shards "
        "totalPostFilterLines totalStructuredMetadataBytesProcessed"
    )
    summary.update(execTime=exec_seconds, totalEntriesReturned=entries_returned)
    return {
        "summary": summary,
        "querier": {"store": _store_stats(), "querierExecTime": exec_seconds},
        "ingester": _zeros(
            "totalReached totalChunksMatched totalBatches totalLinesSent",
            store=_store_stats(),
            recvWaitTime=0,
        ),
        "cache": {
            name: _zeros(
                "entriesFound entriesRequested entriesStored bytesReceived bytesSent requests "
                "downloadTime queryLengthServed"
            )
            for name in _CACHES.split()
        },
        "index": _zeros(
            "totalChunks postFilterChunks shardsDuration",
            usedBloomFilters=False,
            **_zeros("totalStreams chunkRefsLookupTime bloomFilterTime"),
        ),
    }


# The server.


class LokiApi(BaseHTTPRequestHandler):
    """GET requests of one connection, answered from the server's store."""

    protocol_version = "HTTP/1.1"
    server_version = "LokiStub"
    # Headers and body leave in two writes: without this a kept-alive connection waits
    # for the client's delayed ACK (about 40 ms) on every request.
    disable_nagle_algorithm = True

    def do_GET(self):
        url = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            status, content_type, body = answer(self.server.store, url.path, params)
        except BadRequest as e:
            status, content_type, body = 400, TEXT, str(e).encode()
        except Exception as e:
            log.exception("The Loki stub failed to answer %s", self.path)
            status, content_type, body = 500, TEXT, f"the Loki stub failed: {e!r}".encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if content_type == TEXT:
            self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code="-", size="-"):
        """Quiet: a benchmark sends thousands of requests (errors are still logged)."""


class LokiStub(BackgroundServer):
    """A listening stub; `url` is its base URL. `close()` (or leaving `with`) stops it."""

    thread_name = "loki-stub"

    def __init__(self, store, address):
        super().__init__(address, LokiApi)
        self.store = store


def serve(store, host="127.0.0.1", port=0):
    """A LokiStub answering from `store` in a background thread (port 0: any free port)."""
    return LokiStub(store, (host, port)).start()


def main(argv=None):
    parser = argparse.ArgumentParser(description="Serve a case pack's log lines as Loki would.")
    parser.add_argument("logs", help="a logs.jsonl.gz of a case pack")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0: any free port")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    store = LogStore.from_jsonl_gz(args.logs)
    stub = LokiStub(store, (args.host, args.port))
    print(f"{len(store)} lines in {len(store.streams)} streams at {stub.url}", flush=True)
    try:
        stub.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stub.server_close()


if __name__ == "__main__":
    main()
