"""The control span: the stretch of the baseline in which the log and path scans measure
what to expect, judged by its calmest part.

The control span is the baseline window's last half (the path scan's first half is its
reference of the requests it knows). It is cut in CONTROL_PARTS equal parts, and a
service's expected rate is that of its calmest part: normal noise goes on all the time,
while an earlier incident in the baseline (the same fault half an hour ago, not yet
forgotten) would otherwise make the same failure look normal now. A part's rate counts
one more than it saw: the calmest of several parts is calm partly by chance, and one that
saw none does not show that there are none. (Measured on the case pack with logs: 4 to
12 parts and a last third to three quarters of the baseline score alike;
docs/BENCHMARKS.md.)
"""

CONTROL_SHARE = 0.5
CONTROL_PARTS = 6


def control_span(baseline):
    """The (start, end) of the control span of `baseline` ((start, end), datetimes or
    seconds)."""
    start, end = baseline
    return end - (end - start) * CONTROL_SHARE, end


def cut(start, end, parts):
    """The `parts` + 1 edges that cut [start, end] into `parts` equal spans."""
    return [start + (end - start) * i / parts for i in range(parts + 1)]


def calmest(parts):
    """Of `parts`, (count, size) pairs, the one with the lowest rate, counting one more
    than it saw."""
    return min(parts, key=lambda part: (part[0] + 1) / part[1])
