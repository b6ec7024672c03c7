"""Parsed answers of Loki and Prometheus-compatible APIs, and the parsers that build them.

Both backends answer metric queries in Prometheus' shape (`vector`, `matrix`, `scalar`),
so one set of types serves both. Sample values arrive as strings; they are parsed to floats
here (`NaN`, `+Inf` and `-Inf` included). Loki log lines keep their nanosecond timestamps
as ints, so no precision is lost. Results are built fresh from each answer (labels
copied), so a caller may change them without touching the cached answer.
"""

from dataclasses import dataclass, field
from typing import NamedTuple

from investigations.telemetry.errors import UnexpectedAnswer


class Stream(NamedTuple):
    """One Loki log stream: its labels and (ts_ns, line) entries in the server's order."""

    labels: dict[str, str]
    entries: list[tuple[int, str]]


class Series(NamedTuple):
    """One series of a range query: labels and (unix seconds, value) points, oldest first.

    Native-histogram points are not parsed; a series of only histograms has no points.
    """

    labels: dict[str, str]
    points: list[tuple[float, float]]


class Sample(NamedTuple):
    """One element of an instant vector: labels and the value at `timestamp` (unix s)."""

    labels: dict[str, str]
    timestamp: float
    value: float


class Pattern(NamedTuple):
    """A log template Loki detected: `<_>` marks a variable part; samples are
    (unix seconds, lines seen in that bucket)."""

    pattern: str
    level: str
    samples: list[tuple[int, int]]

    @property
    def total(self):
        return sum(count for _, count in self.samples)


@dataclass(frozen=True)
class QueryResult:
    """The answer to a query; the list matching `result_type` is filled, the others empty.

    `result_type` is what the server said: "streams" (Loki log queries), "matrix",
    "vector", "scalar" or "string". `scalar` holds (unix seconds, value) for the last two
    (a "string" value stays a string). `warnings` are the server's (Thanos partial
    responses, Prometheus' annotations); `stats` is Loki's statistics, as sent.
    """

    result_type: str
    streams: list[Stream] = field(default_factory=list)
    matrix: list[Series] = field(default_factory=list)
    vector: list[Sample] = field(default_factory=list)
    scalar: tuple[float, float | str] | None = None
    warnings: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    def __len__(self):
        """Streams, series or samples returned (a scalar counts as one)."""
        if self.result_type in ("scalar", "string"):
            return 0 if self.scalar is None else 1
        return len(self.streams) + len(self.matrix) + len(self.vector)


def parse_value(text):
    """A sample value as sent ("1", "4.2e-01", "NaN", "+Inf") to a float."""
    return float(text)


def parse_query_data(data, warnings=()):
    """A QueryResult from the `data` of a query or query_range answer."""
    try:
        result_type = data["resultType"]
        result = data["result"]
        stats = data.get("stats") or {}
        if result_type == "streams":
            streams = [
                Stream(dict(item["stream"]), [(int(ts), line) for ts, line, *_ in item["values"]])
                for item in result
            ]
            return QueryResult(result_type, streams=streams, warnings=list(warnings), stats=stats)
        if result_type == "matrix":
            return QueryResult(
                result_type, matrix=parse_matrix(result), warnings=list(warnings), stats=stats
            )
        if result_type == "vector":
            return QueryResult(
                result_type, vector=parse_vector(result), warnings=list(warnings), stats=stats
            )
        if result_type in ("scalar", "string"):
            ts, value = result
            value = parse_value(value) if result_type == "scalar" else value
            return QueryResult(
                result_type, scalar=(float(ts), value), warnings=list(warnings), stats=stats
            )
    except (KeyError, TypeError, ValueError) as e:
        raise UnexpectedAnswer(f"a query answer could not be read ({type(e).__name__}: {e})") from e
    raise UnexpectedAnswer(f"a query answered with unknown resultType {result_type!r}")


def parse_matrix(result):
    return [
        Series(
            dict(item["metric"]),
            [(float(ts), parse_value(value)) for ts, value in item.get("values", [])],
        )
        for item in result
    ]


def parse_vector(result):
    samples = []
    for item in result:
        if "value" not in item:  # a native histogram sample
            continue
        ts, value = item["value"]
        samples.append(Sample(dict(item["metric"]), float(ts), parse_value(value)))
    return samples


def parse_patterns(data):
    try:
        return [
            Pattern(
                item["pattern"],
                item.get("level", ""),
                [(int(ts), int(count)) for ts, count in item.get("samples", [])],
            )
            for item in data
        ]
    except (KeyError, TypeError, ValueError) as e:
        raise UnexpectedAnswer(
            f"a patterns answer could not be read ({type(e).__name__}: {e})"
        ) from e
