"""The metric scan: every series in scope, scored by how abnormal the incident is.

Nothing here knows a metric name. Series are discovered under the scope's matchers, fetched
per metric name as `avg_over_time(...[step])` (one value per step, whatever the scrape
interval), counters are recognised by their shape (never decreasing) and turned into rates,
and each series is scored against its own baseline with robust statistics.

A series' score is a robust z: how many robust standard deviations (1.4826 x MAD; where
more than half the baseline is one value, so that its MAD is 0, 1.2533 x its mean absolute
deviation, Iglewicz and Hoaglin's fallback; with a floor for flat baselines, and never less
than the series' own resolution: the smallest step between its distinct baseline values)
the incident points lie from the baseline median,
taken as the largest that every point of some two-minute stretch of the incident shares (a
fault holds for minutes; a series that spikes now and then, even two samples in a row, does
not). A briefer change counts a tenth: weak evidence, not none. So does a change to a level
the baseline kept returning to (reached in ROUTINE_RETURNS separate stretches or more),
however far that level lies from the median: a latency that sits at 5 ms and jumps to 60
ms every few minutes has two levels, not noise around one, and 60 ms is one of them.
The onset is the first incident point beyond CHANGE_SIGMAS.

The scan reads at most MAX_SERIES series (its time and memory grow with them). Where the
scope holds more, every metric is still read, as one series per service where its own do not
fit: the average of the service's series (a gauge; the highest, for a share, so that one
container at its limit is not averaged away) or the sum of their rates (a counter), so
that the metrics with many series (per route, per status code, per bucket) are seen at the
service's level rather than left out. Series by series is kept for the metrics that cost
the fewest series more, as far as the cap allows (see plan_reads); only what does not fit
even per service is left out, and the timeline says so.

A histogram (OpenMetrics' `_bucket` series with an `le` label: a latency, a size) is scored
as its HISTOGRAM_QUANTILE, one series per label set but `le`, not bucket by bucket: a
bucket's rate is no quantity anyone reads ("requests of 0.1 s or less went down"), and a
fault moves several buckets of one histogram at once. The buckets are read as counters
are, step by step, and the quantile is interpolated in them as Prometheus'
`histogram_quantile` does, for each step: a rate over a longer window would spread a
30-second burst over several steps, and the two-minute hold would see more than there was.
Read per service, it is `histogram_quantile` over the sum of the service's buckets' rates.

A series is its service's by the service label, unless it describes a workload (a pod, by
a workload label) whose own series name another service. Exporters that describe every pod
(cAdvisor's container CPU and memory, kube-state-metrics' restarts) either carry no
service label or one that names the exporter (the Prometheus operator labels each target
with the Service it was found through: kube-prometheus-stack's container CPU says
service="kube-prometheus-stack-kubelet"). Such
a series is credited to the service whose series cover the fewest pods among those on its
pod: the pod's own service covers its few pods, an exporter every pod of the namespace. A
workload named after a service with series of its own is that service's: kube-state-metrics'
series of a deployment name no pod, only `deployment="cart"`.
Read per service, such a metric is read per service and pod and combined as credited (but
a histogram: its quantiles cannot be combined).

A ratio at its ceiling is saturation, the "S" of the USE method: a series whose name ends
in `_ratio` (Prometheus' base unit for a share, 0 to 1: a CPU or memory limit used, a disk
filled) or `_percent` (0 to 100: OpenTelemetry's exporters name the unit "%" so) that held
SATURATION_LEVEL of its full scale or more for HOLD_SECONDS in the incident, when its
baseline median was below it and the move is a change (CHANGE_SIGMAS, as scored above: 0.79
to 0.81 is not), is marked `saturated` with the level it held, however small its deviation
beyond that (a CPU that jumps from 1% of its limit to 100% moves fewer robust deviations
than an idle service's sparse latency). The suffix is the naming convention, not a metric.

A series that stops is a change too: one that reported steadily (at least SILENT_COVERAGE
of its usual interval's samples, from the baseline's start to its last one) and has said
nothing for SILENT_AFTER (and SILENT_INTERVALS of its intervals, so that a scrape or an
ingest running late is not a stop) before the scan's "now" stopped: a pod deleted or
evicted, a process that crashed and is not back, a target its Prometheus can no longer
scrape. The stop may lie up to SILENT_EARLIER before the incident window: Prometheus
sends an alert once its rule's `for` has passed (its startsAt is then, not when the
condition began), and a rule on a target down or on its callers' errors usually waits
five minutes or more. It is `stopped` at the time of its first missing sample and scores
as a series that appeared does (a clear change of unknown size), unless its values moved
more before it stopped. A gap that heals before "now" is not a stop.

A counter that starts over in the incident (its value falls: counters only rise, but for
a restart of the process that counts) when it never did in the baseline marks a restart:
`restarted` at the first such step, scored as a series that appeared, unless its rate moved
more. A container restarted in its pod (out of memory, a failed liveness probe) keeps its
series and resets them all; only a counter read series by series can show it.

A gauge held at one value through the whole baseline (CONSTANT_POINTS or more) that holds
another, unchanged, for HOLD_SECONDS in the incident changed state: a replica count, a
process' start time, a configuration's generation or reload time. Its robust deviation
says little (no spread to measure against, and the floor of a share of its level makes a
start time that moves by an hour a millionth of a change), so it is `left_constant` and
scores as a series that appeared, unless it moved more.

Pods replaced in the incident (a rollout, pods evicted or rescheduled) begin every series
of their service again under new labels: the old pods' series stop, the new pods' appear,
and a new version's values have no baseline of their own (one five times slower would
show nothing but its appearance). Each series of a new pod takes over the series of the
pods it replaced (see `successions`: the same metric, the same labels but those that say
where it runs) and is scored against their baselines pooled (pods differ: a level one of
them held is no change), as if the pods had kept their names; the replaced series' stops
are no change of their own (`replaced`), and the replacement is evidence of its own
(suspects.py's `rollout`). A pod that began beside the others (an autoscaler's, a canary)
is judged by its siblings' baselines the same way: not as an appearance, and a canary
that fails shows as failing against the stable ones.
"""

import asyncio
import itertools
import math
import statistics
from collections import Counter
from dataclasses import dataclass, field

from investigations.scope import held_name, quote
from investigations.telemetry import TelemetryError
from investigations.tools.guardrails import MAX_POINTS_PER_SERIES

STEP_SECONDS = 30
MAX_SERIES = 5000
# The label sets listed to plan the reads (plan_reads): about 10 MB from the store. A store
# that honours the series API's limit would otherwise hide every metric past the first
# MAX_SERIES series; past this, the timeline says the scan was capped.
MAX_SERIES_LISTED = 50_000
MAX_CONCURRENT_QUERIES = 4
MAD_TO_SIGMA = 1.4826
# Where the MAD is 0 (a count that is 0 most minutes and 1 now and then), the mean absolute
# deviation from the median, scaled to a normal's standard deviation, is the spread
# (Iglewicz and Hoaglin, "How to Detect and Handle Outliers", 1993). Without it such a
# series reaching 2 for a minute was a million-sigma change, and in a namespace with a few
# of them per service they led four cases of six (bench/scale_pack.py; docs/BENCHMARKS.md).
MEANAD_TO_SIGMA = 1.2533
# A flat baseline still has a scale: this share of its level, or a small share of the
# largest value the incident shows (so that 0 -> 0.001 is not an infinite change, however
# briefly: a deviation tops out near 1/INCIDENT_RELATIVE_SCALE).
MIN_RELATIVE_SCALE = 0.05
INCIDENT_RELATIVE_SCALE = 0.001
MAX_SCORE = 1e6
CHANGE_SIGMAS = 3.0
# A series with no baseline that shows up in the incident (a new pod, a new error code):
# a clear change, though of unknown size. So is a steady series that stops (see the
# module's docstring): the share of its usual samples it must have had in the baseline,
# and how long it must have been silent, in time and in its own intervals.
APPEARED_SCORE = 10.0
SILENT_COVERAGE = 0.9
SILENT_AFTER = 120
SILENT_INTERVALS = 3
SILENT_EARLIER = 600
# A gauge held at one value through a baseline of at least this many points that holds
# another for HOLD_SECONDS changed state (see the module's docstring).
CONSTANT_POINTS = 10
# How long a change must hold to count in full, and what a briefer one (two consecutive
# points) counts (measured on the case packs: 90 to 120 s and 0.05 to 0.15 score alike;
# docs/BENCHMARKS.md).
HOLD_SECONDS = 120
BRIEF_WEIGHT = 0.1
# A level the baseline reached this many separate times is one of its usual levels: a
# change to it counts ROUTINE_WEIGHT. Once or twice may be an earlier incident (the same
# fault injected again). (Measured on the case packs: 2 to 5 returns score alike on two,
# 2 or 3 best on the third, and a single one costs a pack cases; docs/BENCHMARKS.md.)
ROUTINE_RETURNS = 3
ROUTINE_WEIGHT = 0.1
# Saturation: a share (`_ratio`, `_percent`) held at this part of its full scale or more (the usual
# warning line for utilisation; measured on the case packs: 0.7 and 0.75 also mark node
# CPUs that were not the cause, 0.85 and above miss a CPU throttled at its limit that held
# 0.82; docs/BENCHMARKS.md).
RATIO_SUFFIX = "_ratio"
SATURATION_LEVEL = 0.8
# Shares by their unit suffix, and the value that is all of it: Prometheus' base unit, and
# the percent that OpenTelemetry's Prometheus exporters write for the UCUM unit "%".
FULL_SCALES = {RATIO_SUFFIX: 1.0, "_percent": 100.0}
# A classic histogram's buckets (OpenMetrics), scored as this quantile of their rates: high
# enough that a slowdown of one request in ten shows, low enough to be read from the few
# requests a quiet service serves in a step (a p99 of 100 requests is the slowest one or
# two).
BUCKET_SUFFIX = "_bucket"
HISTOGRAM_QUANTILE = 0.9


@dataclass
class SeriesScore:
    metric: str
    labels: dict
    score: float
    direction: int  # +1 up, -1 down, 0 none
    onset: float | None  # unix seconds of the first abnormal incident point
    baseline_median: float | None
    incident_peak: float | None
    counter: bool = False
    # How many separate times the baseline reached the incident's level, when that made it
    # one of the series' usual levels (ROUTINE_RETURNS or more); else 0.
    returns: int = 0
    # The level, as a share, that a `_ratio` or `_percent` series held at its ceiling
    # (see the module's docstring), else None.
    saturated: float | None = None
    # "avg", "max" or "sum": one series of the service, the average of its series (a
    # gauge), their highest (a share) or the sum of their rates (a counter, or a
    # histogram's buckets), read so because the metric's series were over the cap; "" for
    # a series read as it is.
    aggregated: str = ""
    # The quantile a histogram's buckets were read as (HISTOGRAM_QUANTILE), else None.
    quantile: float | None = None
    # Unix seconds of the first sample a steady series no longer reported (see the
    # module's docstring), else None.
    stopped: float | None = None
    # Unix seconds of the step a counter started over in the incident, when it never did
    # in the baseline (see the module's docstring), else None.
    restarted: float | None = None
    # Whether it still moves: its values over the last SILENT_AFTER before "now" differ. A
    # series held at one value (a target's `up` at 0 while its other series went silent,
    # an info series at 1) says nothing of whether its service still works.
    moving: bool = False
    # Whether it held one value through the baseline and another, unchanged, through a
    # stretch of the incident (see the module's docstring); its incident_peak is that one.
    left_constant: bool = False
    # Whether its pod was replaced: it stopped, and a new pod's series took it over (see
    # `successions`); and, for that one, the pods whose series it took over and when it
    # began, else None.
    replaced: bool = False
    replaces: list[str] | None = None
    began: float | None = None
    # For a series of a pod that began beside others (see `successions`), the pods whose
    # series' baselines it was judged by, else None.
    beside: list[str] | None = None
    # The value of its first workload label (its pod), else None.
    workload: str | None = None

    def as_evidence(self, service_label):
        labels = {k: v for k, v in self.labels.items() if k not in ("__name__", service_label)}
        return {
            "kind": "metric",
            "metric": self.metric,
            "labels": labels,
            "score": round(self.score, 2),
            "direction": "up" if self.direction > 0 else "down" if self.direction < 0 else "",
            "onset": self.onset,
            "baseline": self.baseline_median,
            "incident": self.incident_peak,
            "counter": self.counter,
            "returns": self.returns,
            "saturated": self.saturated,
            "aggregated": self.aggregated,
            "quantile": self.quantile,
            "stopped": self.stopped,
            "restarted": self.restarted,
            "left_constant": self.left_constant,
            "replaces": self.replaces,
            "beside": self.beside,
        }


@dataclass
class MetricScan:
    scores: list[SeriesScore] = field(default_factory=list)
    series_found: int = 0
    metrics: int = 0
    truncated: bool = False
    errors: list[str] = field(default_factory=list)
    step_seconds: int = STEP_SECONDS
    aggregated: list[str] = field(default_factory=list)  # metrics read per service
    left_out: list[str] = field(default_factory=list)  # metrics not read, over the cap
    histograms: list[str] = field(default_factory=list)  # read as HISTOGRAM_QUANTILE
    owners: dict = field(default_factory=dict)  # see pod_owners
    # The workload labels as the store names them (OpenTelemetry's k8s_pod_name for pod).
    workload_labels: list[str] = field(default_factory=list)
    newest: float | None = None  # see newest_sample: set when the store is behind
    calls: set = field(default_factory=set)  # (caller, callee) services: see `calls_between`


# The words that tell the two ends of a call apart in the names of a pair of labels, the
# caller's first: a service mesh's source_workload and destination_workload, a tracing
# service graph's client and server, src_ and dst_ prefixes.
CALL_ROLES = (("source", "destination"), ("client", "server"), ("src", "dst"))


def calls_between(series, service_label):
    """{(caller, callee)}: the services in scope that call one another, as the label sets of
    `series` say it: a series with a pair of labels named alike but for CALL_ROLES
    (source_service, destination_service) whose values are two services that the
    `service_label` of some series names."""
    services = {labels.get(service_label) for labels in series} - {None}
    pairs_of, calls = {}, set()
    for labels in series:
        names = frozenset(labels)
        if names not in pairs_of:
            pairs_of[names] = [
                (name, name.replace(caller, callee, 1))
                for name in names
                for caller, callee in CALL_ROLES
                if caller in name and name.replace(caller, callee, 1) in names
            ]
        for caller, callee in pairs_of[names]:
            call = (labels[caller], labels[callee])
            if call[0] != call[1] and set(call) <= services:
                calls.add(call)
    return calls


def plan_reads(series, cap, service_label):
    """(metric names to read series by series, names to read as one series per service,
    names left out), from the label sets of `series`, keeping the series read within
    `cap`. First every metric as one series per service, the cheapest first, as many as
    fit; then, as far as the rest of the cap allows, series by series, the metrics that
    cost the fewest series more first (a metric with one series per service costs none),
    so that a histogram's thousands of buckets are read per service before a hundred gauges
    lose their pods. The store's own `limit` is not enough: Prometheus 2.42 (Debian 12's)
    ignores it and returns every series, and each metric is then read whole."""
    counts, services = Counter(), {}
    for labels in series:
        name = labels.get("__name__", "")
        if name:
            counts[name] += 1
            services.setdefault(name, set()).add(labels.get(service_label))
    per_service = {name: len(services[name]) for name in counts}
    total, whole, left_out = 0, [], []
    for name in sorted(counts, key=lambda n: (per_service[n], counts[n], n)):
        if total + per_service[name] <= cap:
            total += per_service[name]
            whole.append(name)
        else:
            left_out.append(name)
    one_by_one = set()
    for name in sorted(whole, key=lambda n: (counts[n] - per_service[n], n)):
        more = counts[name] - per_service[name]
        if total + more > cap:
            break
        total += more
        one_by_one.add(name)
    aggregated = [name for name in whole if name not in one_by_one]
    return sorted(one_by_one), sorted(aggregated), sorted(left_out)


def pod_owners(series, service_label, workload_labels):
    """{(workload label, value): service} from the label sets `series`: the service a
    workload is named after (kube-state-metrics' deployment="cart" is cart's, where cart
    has series of its own); else, of the services with series on the workload (a pod), the
    one whose series cover the fewest workloads, when it is the only one that few (a tie
    credits no one)."""
    covers, on, named = {}, {}, set()
    for labels in series:
        service = labels.get(service_label)
        named.add(service)
        for name in workload_labels:
            if service and labels.get(name):
                covers.setdefault(service, set()).add((name, labels[name]))
                on.setdefault((name, labels[name]), set()).add(service)
    owners = {}
    for workload, services in on.items():
        fewest = sorted(len(covers[service]) for service in services)
        if workload[1] in named:
            owners[workload] = workload[1]
        elif len(fewest) == 1 or fewest[0] < fewest[1]:
            owners[workload] = min(services, key=lambda service: len(covers[service]))
    return owners


def credit(labels, owners, service_label, workload_labels):
    """`labels` with the service label naming the service that owns its workload (see
    pod_owners), or as they are; the label of the first workload label that has one."""
    for name in workload_labels:
        owner = owners.get((name, labels.get(name)))
        if owner:
            return (
                labels if labels.get(service_label) == owner else {**labels, service_label: owner}
            )
    return labels


def credited(series, histogram_names, owners, service_label, workload_labels):
    """(the label sets `series` credited to their services, as plan_reads is to count them;
    {metric: the workload label to read it by per service}): a metric with series credited
    to another service than their label names is read per service and workload, and
    combined; not a histogram, whose quantile per service cannot be combined, so that read
    per service it stays with the service its label names."""
    pairs = [(labels, credit(labels, owners, service_label, workload_labels)) for labels in series]
    by_workload = {}
    for labels, credited_labels in pairs:
        name = labels.get("__name__", "")
        if name not in histogram_names and credited_labels is not labels:
            by_workload.setdefault(name, next(n for n in workload_labels if labels.get(n)))
    planned = []
    for _, labels in pairs:
        if (name := labels.get("__name__")) in by_workload:
            group = (labels.get(service_label), labels.get(by_workload[name]))
            labels = {**labels, service_label: group}
        planned.append(labels)
    return planned, by_workload


def combine(read, how, owners, service_label, workload_labels):
    """Series read per service and workload (`read`: [(labels, points)]) as one series per
    service they are credited to: their average, highest or sum (`how`) at each step."""
    combined = {}
    for labels, points in read:
        service = credit(labels, owners, service_label, workload_labels).get(service_label)
        for t, v in points:
            combined.setdefault(service, {}).setdefault(t, []).append(v)
    reduce = {"avg": statistics.fmean, "max": max, "sum": math.fsum}[how]
    return [
        ({service_label: service}, [(t, reduce(steps[t])) for t in sorted(steps)])
        for service, steps in combined.items()
        if service
    ]


def histograms(series):
    """The names of the classic histograms among the label sets `series`: `_bucket` series
    with an `le` label (OpenMetrics)."""
    return {
        labels["__name__"]
        for labels in series
        if labels.get("__name__", "").endswith(BUCKET_SUFFIX) and "le" in labels
    }


def bucket_quantile(quantile, buckets):
    """The `quantile` of a histogram's `buckets`, [(upper bound, cumulative count)], by
    linear interpolation within the bucket it falls in, as Prometheus' histogram_quantile
    (the highest finite bound if it falls in +Inf's; NaN with no +Inf bucket or no count).
    Counts are made monotonic first, as a reset or a scrape between buckets can break it."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][0] != math.inf or len(buckets) < 2:
        return math.nan
    counts = list(itertools.accumulate((c for _, c in buckets), max))
    if counts[-1] <= 0:
        return math.nan
    rank = quantile * counts[-1]
    lower, below = 0.0, 0.0
    for (bound, _), count in zip(buckets, counts, strict=True):
        if count >= rank:
            if bound == math.inf:
                return lower
            if lower == 0.0 and bound <= 0:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below or 1)
        lower, below = bound, count
    return lower


def quantile_series(matrix, quantile):
    """[(labels but `le`, [(unix seconds, quantile)])] from a histogram's buckets as read
    step by step (cumulative counts): each bucket's rate per step, then the quantile of
    those rates at each step."""
    grouped = {}
    for s in matrix:
        try:
            bound = float(s.labels.get("le", ""))
        except ValueError:
            continue  # a bucket whose bound is no number is no bucket
        labels = {k: v for k, v in s.labels.items() if k != "le"}
        group = grouped.setdefault(tuple(sorted(labels.items())), (labels, {}))
        for t, rate in as_rates(s.points):
            group[1].setdefault(t, []).append((bound, rate))
    return [
        (labels, [(t, bucket_quantile(quantile, steps[t])) for t in sorted(steps)])
        for labels, steps in grouped.values()
    ]


def per_service_gauge(name):
    """How a gauge read as one series per service combines the service's series: their
    highest for a share (`_ratio`, `_percent`: one container at its limit is the service's
    saturation), else their average."""
    return "max" if full_scale(name) else "avg"


def scan_step(start, end):
    """STEP_SECONDS, or the smallest multiple of it that keeps a series from `start` to
    `end` (datetimes) under Prometheus' cap on points: a long baseline, or a question
    about days, is read coarser rather than refused."""
    points = (end - start).total_seconds() / STEP_SECONDS + 1
    return STEP_SECONDS * max(1, math.ceil(points / MAX_POINTS_PER_SERIES))


def score_series(
    points, baseline, incident, metric="", labels=None, counter=False, resets=(), replaced=False
):
    """The SeriesScore of one series (`metric`, `labels` and `counter` are only carried).

    `points` are (unix seconds, value); `baseline` and `incident` are (start, end) unix
    seconds, the incident's end being the scan's "now". A series with no baseline points but
    incident points appeared: scored as a change from nothing. A steady series that stopped
    reporting in the incident scores as much (see `stopped`), or what its values did before,
    if more; so does a counter that started over in the incident and never in the baseline
    (`resets`: unix seconds of the steps where it fell). Otherwise, with no incident points
    it scores 0. The stop of a series whose pod was `replaced` (see `successions`) is no
    change of its own.
    """
    scored = _score_values(points, baseline, incident, metric, labels, counter)
    now = incident[1]
    latest = {v for t, v in points if now - SILENT_AFTER <= t <= now and math.isfinite(v)}
    scored.moving = len(latest) > 1
    scored.stopped = stopped(points, baseline, now)
    if not any(baseline[0] <= t < baseline[1] for t in resets):
        scored.restarted = next((t for t in resets if incident[0] <= t <= now), None)
    scored.replaced = replaced
    stop = None if replaced else scored.stopped
    changed = stop if stop is not None else scored.restarted
    if changed is not None and scored.score < APPEARED_SCORE:
        scored.score, scored.onset = APPEARED_SCORE, changed
        scored.direction = -1 if stop is not None else 0
        scored.returns, scored.saturated = 0, None
    return scored


def newest_sample(series, now):
    """When nothing in scope has a sample in the last SILENT_AFTER (nor in SILENT_INTERVALS
    of the most frequent series' interval) before `now`: the unix seconds of the newest
    sample of any of `series` (lists of points). None when some series is that recent, or
    none has a point: then the store is up to date, as far as the scan can tell.

    Prometheus behind a remote-write queue that backs up, a Mimir or Thanos Receive whose
    ingestion lags, a scrape pipeline that stopped for the whole scope: every series then
    looks stopped at "now", and the scan would read the store's delay as every service
    going silent at once."""
    times = [[t for t, _ in points] for points in series if len(points) > 1]
    if not times:
        return None
    newest = max(t[-1] for t in times)
    intervals = [statistics.median(b - a for a, b in itertools.pairwise(t)) for t in times]
    shortest = min((i for i in intervals if i > 0), default=0)
    return newest if now - newest >= max(SILENT_AFTER, SILENT_INTERVALS * shortest) else None


def pod_labels(series, service_label, workload_label):
    """{(service, metric): the labels that say where a series runs}: of `series`,
    [(metric, labels)], those that hold one value on each pod of the service (its name,
    its address in `instance`, its node, its version's hash), and those of which no two
    pods of the metric, whatever their service, share a value (a container's cgroup path
    in cAdvisor's `id`, its name or id in the container runtime: one per container of the
    pod, and no other pod's); not what a series measures (a route, a status code, a
    container's name: pods answer with or run several, and the same ones)."""
    grouped, names = {}, {}  # metric -> {service: {pod: [labels]}}, {label names}
    for metric, labels in series:
        service, pod = labels.get(service_label), labels.get(workload_label)
        if service and pod:
            pods = grouped.setdefault(metric, {}).setdefault(service, {})
            pods.setdefault(pod, []).append(labels)
            names.setdefault(metric, set()).update(labels)
    where = {}
    for metric, services in grouped.items():
        for name in names[metric]:
            # {service: [the values each pod holds]}; a label a series lacks (Prometheus
            # drops empty ones) has no value there.
            held = {
                service: [{labels.get(name) for labels in sets} for sets in pods.values()]
                for service, pods in services.items()
            }
            seen = [v for on in held.values() for values in on for v in values if v is not None]
            unique = sum(map(len, held.values())) > 1 and len(seen) == len(set(seen)) > 0
            for service, on in held.items():
                if any(values != {None} for values in on) and (
                    unique or all(len(values) == 1 for values in on)
                ):
                    where.setdefault((service, metric), set()).add(name)
    return where


def successions(series, baseline, incident, service_label, workload_labels):
    """({index of a series of a new pod: indices of the series whose baselines it is
    judged by}, {indices of the series replaced}) among `series`, [(metric, labels,
    points)] with `baseline` and `incident` (start, end) unix seconds.

    A series of a pod that began after the baseline's start and at most SILENT_EARLIER
    before the incident (a rollout takes minutes, and an alert waits its rule's `for`) is
    judged by the series of the same metric and service whose labels, but those that say
    where it runs (see `pod_labels`), are the same: those that reported steadily through
    the baseline and stopped (metrics.stopped), which it replaced; else those that reported
    from the baseline's start and still do, beside which it began (a pod added by an
    autoscaler, a canary: judged as its siblings are)."""
    workload_label = next(iter(workload_labels), None)
    if workload_label is None:
        return {}, set()
    where = pod_labels([(m, labels) for m, labels, _ in series], service_label, workload_label)
    now = incident[1]
    old, running, new = {}, {}, {}  # key -> [(stop, index)], [index], [index]
    for index, (metric, labels, points) in enumerate(series):
        service = labels.get(service_label)
        if not points or not service or not labels.get(workload_label):
            continue
        runs = where.get((service, metric), set())
        key = (service, metric, frozenset((k, v) for k, v in labels.items() if k not in runs))
        began = points[0][0]
        stop = stopped(points, baseline, now)
        if stop is not None:
            old.setdefault(key, []).append((stop, index))
        elif began <= baseline[0] + SILENT_AFTER and points[-1][0] >= incident[0]:
            running.setdefault(key, []).append(index)
        elif began > baseline[0] + SILENT_AFTER and began >= incident[0] - SILENT_EARLIER:
            new.setdefault(key, []).append(index)
    judged = {}
    for key, indices in new.items():
        by = [i for _, i in old[key]] if key in old else running.get(key, [])
        judged.update(dict.fromkeys(indices, by) if by else {})
    replaced = {i for key in new if key in old for _, i in old[key]}
    # A pod replaced stopped as a whole: so did its series no new one took over (a
    # container whose image the rollout changed).
    gone = {(series[i][1][service_label], series[i][1][workload_label]) for i in replaced}
    for key, stops in old.items():
        replaced |= {i for _, i in stops if (key[0], series[i][1][workload_label]) in gone}
    return judged, replaced


def taken_over(predecessors, successor, baseline, incident):
    """(points, baseline, incident) to score `successor`'s points by: the points of all
    its `predecessors` (lists of points) before it began (or before the incident, if
    earlier) as its baseline, in time order, so that a level any of them held is a usual
    one (pods differ: a fresh one's memory, its caches), and everything of its own as the
    incident."""
    cut = min(successor[0][0], incident[0])
    pooled = sorted(
        (p for points in predecessors for p in points if p[0] < cut), key=lambda p: p[0]
    )
    return pooled + list(successor), (baseline[0], cut), (cut, incident[1])


def resets(points):
    """Unix seconds of the points where a counter's value fell: it started over."""
    return [t1 for (_, v0), (t1, v1) in itertools.pairwise(points) if v1 < v0]


def stopped(points, baseline, now):
    """When a series that reported steadily from the start of `baseline` ((start, end) unix
    seconds) stopped: the unix seconds of its first missing sample, when that was at most
    SILENT_EARLIER before the baseline's end and it has been silent since for SILENT_AFTER
    and SILENT_INTERVALS of its usual interval before `now`; else None."""
    times = [t for t, _ in points]
    # Unique: a new pod's series is judged with the points of several (see taken_over).
    usual = sorted({t for t in times if baseline[0] <= t < baseline[1]})
    if len(usual) < 3 or times[-1] < baseline[1] - SILENT_EARLIER:
        return None
    interval = statistics.median(b - a for a, b in itertools.pairwise(usual))
    if interval <= 0:
        return None
    reported = min(times[-1], baseline[1]) - baseline[0]
    if len(usual) < SILENT_COVERAGE * reported / interval:
        return None  # sparse: silence is its habit
    last = times[-1]
    if now - last < max(SILENT_AFTER, SILENT_INTERVALS * interval):
        return None
    return last + interval


def _score_values(points, baseline, incident, metric, labels, counter):
    scored = SeriesScore(metric, labels or {}, 0.0, 0, None, None, None, counter)
    base = [v for t, v in points if baseline[0] <= t < baseline[1] and math.isfinite(v)]
    inside = [(t, v) for t, v in points if incident[0] <= t <= incident[1] and math.isfinite(v)]
    if not inside:
        scored.baseline_median = statistics.median(base) if base else None
        return scored
    if not base:
        peak = max(inside, key=lambda p: abs(p[1]))
        scored.score = APPEARED_SCORE if peak[1] else 0.0
        scored.direction, scored.onset, scored.incident_peak = 1, inside[0][0], peak[1]
        return scored
    median = statistics.median(base)
    mad = statistics.median(abs(v - median) for v in base)
    scale = max(
        MAD_TO_SIGMA * mad or MEANAD_TO_SIGMA * statistics.fmean(abs(v - median) for v in base),
        MIN_RELATIVE_SCALE * abs(median),
        INCIDENT_RELATIVE_SCALE * max(abs(v) for _, v in inside),
        resolution(base),
        1e-9,
    )
    z = [((v - median) / scale, t, v) for t, v in inside]
    lasting, level = lasting_change(z)
    score = min(abs(lasting), MAX_SCORE)
    usual = returns(base, median, scale, level) if score else 0
    if usual >= ROUTINE_RETURNS:
        score, scored.returns = score * ROUTINE_WEIGHT, usual
    # The onset and the peak are the change's own: on its side of the median, not a brief
    # swing the other way (a latency that spiked once and then fell with the traffic).
    side = [item for item in z if item[0] * lasting > 0] or z
    scored.onset = next((t for value, t, _ in side if abs(value) >= CHANGE_SIGMAS), None)
    constant = len(base) >= CONSTANT_POINTS and min(base) == max(base)
    state = new_state(inside, median) if constant and score < APPEARED_SCORE else None
    if state is not None:
        score, lasting, scored.left_constant = APPEARED_SCORE, state - median, True
        scored.onset = next(t for t, v in inside if v != median)
    scored.score = score
    scored.direction = (1 if lasting > 0 else -1) if score else 0
    scored.baseline_median = median
    peak = max(side, key=lambda item: abs(item[0]))[2]
    scored.incident_peak = state if state is not None else peak
    scored.saturated = saturation(metric, median, inside) if score >= CHANGE_SIGMAS else None
    return scored


def full_scale(metric):
    """The value that is all of a share named `metric` (FULL_SCALES), None for a metric
    that is not a share."""
    return next((full for suffix, full in FULL_SCALES.items() if metric.endswith(suffix)), None)


def saturation(metric, median, inside):
    """The level, as a share of its full scale, that a `_ratio` or `_percent` series held
    for HOLD_SECONDS at SATURATION_LEVEL or more in the incident (`inside`: (unix
    seconds, value)) when its baseline `median` was below it; None otherwise."""
    full = full_scale(metric)
    if full is None or median >= SATURATION_LEVEL * full:
        return None
    held = shared_over([(v / full, t, v) for t, v in inside], HOLD_SECONDS)
    return held if held >= SATURATION_LEVEL else None


def new_state(points, value):
    """The value other than `value` that `points` (unix seconds, value) held, unchanged,
    for HOLD_SECONDS; None if none did."""
    first = 0
    for i in range(1, len(points) + 1):
        if i == len(points) or points[i][1] != points[first][1]:
            held, since = points[first][1], points[first][0]
            if held != value and points[i - 1][0] - since >= HOLD_SECONDS:
                return held
            first = i
    return None


def resolution(values):
    """The smallest step between distinct values, when there are at least three (two values
    are two levels, not a grid of steps; else 0). A series that moves in steps (requests
    counted per minute, a latency read off histogram buckets) cannot change by less than
    one: one request more than usual on an idle service is not a thousand-sigma change,
    however flat its baseline."""
    distinct = sorted(set(values))
    if len(distinct) < 3:
        return 0.0
    return min(b - a for a, b in itertools.pairwise(distinct))


def lasting_change(z):
    """The deviation of the incident, from `z`: (deviation, unix seconds, value) in time
    order. The largest that every point of a stretch of HOLD_SECONDS shares (same side of
    the median, the smallest of them), or BRIEF_WEIGHT of the largest that two consecutive
    points share, whichever is larger. An incident shorter than HOLD_SECONDS must agree in
    all its points; a lone point counts half. Returns (deviation, level): the level is the
    deviation the incident reached, before a brief one's weight."""
    held = shared_over(z, HOLD_SECONDS)
    brief = shared_over(z, 0)
    if abs(held) >= abs(BRIEF_WEIGHT * brief):
        return held, held
    return BRIEF_WEIGHT * brief, brief


def returns(values, median, scale, level):
    """In how many separate stretches `values` (the baseline, in time order) reached
    `level`, a deviation from `median` in units of `scale`, on its side of the median."""
    side = 1 if level > 0 else -1
    count, beyond = 0, False
    for value in values:
        was, beyond = beyond, side * (value - median) / scale >= abs(level)
        count += beyond and not was
    return count


def shared_over(z, seconds):
    """The largest deviation that all points of some stretch of `z` at least `seconds`
    long (and at least two points) share, 0 if none is on one side of the median; the
    whole of `z` when it is shorter; half a lone point."""
    if len(z) == 1:
        return z[0][0] / 2
    best = 0.0
    for i in range(len(z) - 1):
        j = i + 1
        while j < len(z) - 1 and z[j][1] - z[i][1] < seconds:
            j += 1
        if z[j][1] - z[i][1] < seconds and i:
            break  # shorter than `seconds` to the end: only the whole incident may be
        stretch = [value for value, _, _ in z[i : j + 1]]
        if all(v > 0 for v in stretch) or all(v < 0 for v in stretch):
            best = max(best, min(stretch, key=abs), key=abs)
    return best


# OpenMetrics names every counter sample <name>_total; histograms and summaries add
# _count, _sum and _bucket, all cumulative. Used only where the store has no metadata.
CUMULATIVE_SUFFIXES = ("_total", "_count", "_sum", "_bucket")


def is_cumulative(name, metadata):
    """Whether metric `name` only goes up (a counter, or a histogram's parts)."""
    declared = {entry.get("type") for entry in metadata.get(name, [])}
    if declared:
        return bool(declared & {"counter", "histogram", "summary"})
    return name.endswith(CUMULATIVE_SUFFIXES)


def as_rates(points):
    """A counter's points as per-second rates; a reset counts from zero."""
    rates = []
    for (t0, v0), (t1, v1) in itertools.pairwise(points):
        if t1 > t0:
            rates.append((t1, (v1 - v0 if v1 >= v0 else v1) / (t1 - t0)))
    return rates


async def scan_metrics(
    prometheus, selector, baseline, incident, *, now, service_label, workload_labels=()
):
    """Score every series under `selector` (e.g. {namespace="shop"}); windows are
    datetimes; `service_label` names a series' service, `workload_labels` the pod it
    describes (see pod_owners)."""
    scan = MetricScan()
    scope_matchers = selector.strip()[1:-1].strip()
    series = await prometheus.series(selector, baseline[0], now, limit=MAX_SERIES_LISTED)
    scan.series_found = len(series)
    scan.truncated = len(series) >= MAX_SERIES_LISTED
    quantiles = histograms(series)
    held = {name for labels in series for name in labels}
    # In place, so that the first still names the pod.
    workload_labels = scan.workload_labels = [held_name(n, held) or n for n in workload_labels]
    scan.owners = pod_owners(series, service_label, workload_labels)
    scan.calls = calls_between(series, service_label)
    crediting = (scan.owners, service_label, workload_labels)
    planned, by_pod = credited(series, quantiles, *crediting)
    names, scan.aggregated, scan.left_out = plan_reads(planned, MAX_SERIES, service_label)
    scan.histograms = sorted(quantiles - set(scan.left_out))
    scan.metrics = len(names) + len(scan.aggregated) + len(scan.left_out)
    try:
        metadata = await prometheus.metadata()
    except TelemetryError:  # not every store keeps metadata (Thanos, remote write)
        metadata = {}
    windows = (
        (baseline[0].timestamp(), baseline[1].timestamp()),
        (incident[0].timestamp(), incident[1].timestamp()),
    )
    limit = asyncio.Semaphore(MAX_CONCURRENT_QUERIES)
    step = scan.step_seconds = scan_step(baseline[0], now)
    cumulative = {name: is_cumulative(name, metadata) for name in [*names, *scan.aggregated]}

    def smeared(name, aggregated):
        """Whether a metric read per service is read as rates (counters, histograms)."""
        return aggregated == "sum" or bool(aggregated and name in quantiles)

    async def fetch(name, per_service):
        """(name, how it was read per service: SeriesScore.aggregated, the result or None)."""
        aggregated = ("sum" if cumulative[name] else per_service_gauge(name)) if per_service else ""
        matcher = ", ".join(m for m in (f"__name__={quote(name)}", scope_matchers) if m)
        # A window 1 ms short of the step, so that no sample counts in two steps (range
        # selectors include both ends before Prometheus 3).
        query = f"avg_over_time({{{matcher}}}[{step * 1000 - 1}ms])"
        # Per service, counters are summed as rates, each over four steps (enough samples
        # at any usual scrape interval): a sum of counters jumps when a pod comes or goes.
        by = f"{service_label}, {by_pod[name]}" if name in by_pod else service_label
        if smeared(name, aggregated):
            rates = f"rate({{{matcher}}}[{4 * step}s])"
            query = (
                f"histogram_quantile({HISTOGRAM_QUANTILE}, sum by ({service_label}, le) ({rates}))"
                if name in quantiles
                else f"sum by ({by}) ({rates})"
            )
        elif aggregated:
            query = f"{aggregated} by ({by}) ({query})"
        async with limit:
            try:
                result = await prometheus.query_range(query, baseline[0], now, step)
                return name, aggregated, result
            except TelemetryError as exc:  # one metric failing must not sink the scan
                scan.errors.append(f"{name}: {exc}")
                return name, aggregated, None

    reads = [fetch(n, False) for n in names] + [fetch(n, True) for n in scan.aggregated]
    found = []  # (name, aggregated, quantile, counter, labels, points, resets)
    for name, aggregated, result in await asyncio.gather(*reads):
        if result is None:
            continue
        quantile = HISTOGRAM_QUANTILE if name in quantiles else None
        counter = cumulative[name] and quantile is None
        # (labels, points, the steps where a counter started over)
        if quantile is not None and not aggregated:
            read = [
                (labels, points, ()) for labels, points in quantile_series(result.matrix, quantile)
            ]
        elif counter and not aggregated:
            read = [(s.labels, as_rates(s.points), resets(s.points)) for s in result.matrix]
        else:
            # Read per service, a counter (or a histogram's quantile) comes as it is scored.
            read = [(s.labels, s.points, ()) for s in result.matrix]
        if aggregated and name in by_pod:
            pairs = combine(
                [(labels, points) for labels, points, _ in read], aggregated, *crediting
            )
            read = [(labels, points, ()) for labels, points in pairs]
        found += [
            (name, aggregated, quantile, counter, credit(labels, *crediting), points, fell)
            for labels, points, fell in read
        ]
    # Read as rates over four steps, a series per service runs on past its last sample.
    scan.newest = newest_sample(
        [points for name, aggregated, _, _, _, points, _ in found if not smeared(name, aggregated)],
        windows[1][1],
    )
    if scan.newest is not None:  # nothing is later, so judge stops by the newest there is
        windows = windows[0], (windows[1][0], scan.newest)
    judged_by, replaced = successions(
        [(name, labels, points) for name, _, _, _, labels, points, _ in found],
        *windows,
        service_label,
        workload_labels,
    )
    for index, (name, aggregated, quantile, counter, labels, points, fell) in enumerate(found):
        judged = (points, *windows)
        if index in judged_by:
            judged = taken_over([found[i][5] for i in judged_by[index]], points, *windows)
        scored = score_series(
            *judged,
            metric=name,
            labels=labels,
            counter=counter,
            resets=fell,
            replaced=index in replaced,
        )
        scored.aggregated, scored.quantile = aggregated, quantile
        scored.workload = next((labels[n] for n in workload_labels if labels.get(n)), None)
        if index in judged_by:
            pods = sorted({found[i][4].get(workload_labels[0]) for i in judged_by[index]})
            if judged_by[index][0] in replaced:
                scored.replaces = pods
            else:
                scored.beside = pods
            scored.began = points[0][0]
        scan.scores.append(scored)
    scan.scores.sort(key=lambda s: s.score, reverse=True)
    return scan
