"""Writes a made-up case pack the size of a production namespace, to measure the signal
scan where it has thousands of series to read.

    .venv/bin/python bench/scale_pack.py OUT_DIR [--series 5000] [--services 40]
        [--cases 6] [--step 30] [--seed 1] [--histograms] [--crashes] [--rollouts]
    .venv/bin/python bench/rca_accuracy.py OUT_DIR

The pack is in the format of shared/data/rca-cases/README.md (metrics only). The real packs
hold 38 to 832 series; a namespace in production often holds thousands, and the scan reads
at most investigations.signals.metrics.MAX_SERIES of them. Here `--services` services,
three pods each, call one another in tiers under `frontend`; each pod has the series of
`FAMILIES` (CPU and memory, request rate, server and client latency, errors) and as many
more application gauges as reach `--series` (queue depths, pool sizes, cache ratios: noise,
drift, and routine jumps such as a job every quarter of an hour). Each case injects one
fault into one service: its CPU held near its limit, its latency up, its errors up, or its
memory leaking; with `--crashes`, every fifth case its pods stop reporting altogether for
the fault's minutes (down, as a crashed pod is), but for the `up` that Prometheus writes
for each pod it scrapes, 0 while it fails; with `--rollouts`, every sixth (fifth without
`--crashes`) a bad rollout: the service's pods are replaced by new ones (new names) whose
latency is five times the old for the fault's minutes. The fault reaches the callers
as it would, scaled down at each hop (their client latency, their errors), and the alert
fires on `frontend` a minute after the injection, as in the real packs.

What this measures is time and what happens at the cap. The accuracy it gives is on data
made up here, tuned by no one, and is no evidence of accuracy on real incidents: the real
packs are.
"""

import argparse
import gzip
import hashlib
import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

NAMESPACE = "scale"
START = datetime(2024, 3, 1, tzinfo=UTC)
FIRST_INJECTION_MINUTES = 70  # a full hour of baseline before the first case
CASE_SPACING_MINUTES = 25
FAULT_MINUTES = 8
PODS = 3
HOPS_DECAY = 0.6  # how much of a fault's effect reaches each caller up the tree
FAULTS = ("cpu", "latency", "errors", "memory")
CRASH = "crash"  # --crashes: no sample of the service's pods while it lasts
ROLLOUT = "rollout"  # --rollouts: new pods replace the old ones, slower for a while
# (name, kind): the series every pod has; APP_KINDS fill the rest.
FAMILIES = (
    ("process_cpu_usage_ratio", "cpu"),
    ("process_memory_working_set_bytes", "memory"),
    ("http_server_requests_per_second", "load"),
    ("http_server_latency_p50_seconds", "server_latency"),
    ("http_server_latency_p99_seconds", "server_latency"),
    ("http_client_latency_p99_seconds", "client_latency"),
    ("http_server_errors_per_second", "errors"),
)
# Every pod also has a runtime's gauges (as a Go or JVM client exports) and its requests
# per route; each service has application gauges of its own, each with a few label values
# (a queue, a pool, a cache each), drawn from a pool shared by about a third of them.
# --histograms: the server latency as a histogram with OpenTelemetry's default bucket bounds
# (seconds), its requests' durations log-normal around the pod's latency.
HISTOGRAM = "http_server_request_duration_seconds"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
DURATION_SIGMA = 0.5
RUNTIME_FAMILIES = 10
ROUTES = 8
ITEMS = 4
APP_KINDS = ("noise", "drift", "routine", "sparse")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--series", type=int, default=5000)
    parser.add_argument("--services", type=int, default=40)
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--step", type=int, default=30, help="seconds between samples")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--histograms", action="store_true", help="server latency as a classic histogram"
    )
    parser.add_argument(
        "--crashes", action="store_true", help="every fifth fault: the service stops reporting"
    )
    parser.add_argument(
        "--rollouts", action="store_true", help="a fault is a slower version rolled out"
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    services = ["frontend"] + [f"svc-{i:02d}" for i in range(1, args.services)]
    callers = call_tree(services, rng)
    faults = (*FAULTS, *[CRASH] * args.crashes, *[ROLLOUT] * args.rollouts)
    cases = plan_cases(services, args.cases, rng, faults)
    end = cases[-1]["inject"] + timedelta(minutes=FAULT_MINUTES + 10)
    times = [
        START + timedelta(seconds=s)
        for s in range(0, int((end - START).total_seconds()) + 1, args.step)
    ]
    families = plan_families(services, args.series, args.histograms, args.crashes or args.rollouts)
    effects = fault_effects(cases, callers)
    args.out.mkdir(parents=True, exist_ok=True)
    count = write_metrics(args.out / "metrics.om.gz", families, services, times, effects, rng)
    write_cases(args.out, cases)
    (args.out / "pack.json").write_text(
        json.dumps(
            {
                "name": args.out.name,
                "source": {"generator": "bench/scale_pack.py", "seed": args.seed},
                "license": "generated",
                "system": f"made up ({len(services)} services, {count} series)",
                "namespace": NAMESPACE,
                "service_label": "service",
                "cases": len(cases),
                "modalities": ["metrics"],
                "notes": f"Written by bench/scale_pack.py {vars_text(args)}.",
            },
            indent=2,
        )
        + "\n"
    )
    print(f"{args.out}: {len(services)} services, {count} series, {len(times)} samples each")


def vars_text(args):
    return " ".join(
        f"--{k}" if v is True else f"--{k} {v}"
        for k, v in vars(args).items()
        if k != "out" and v is not None and v is not False
    )


def plan_families(services, target, histograms=False, scraped=False):
    """[(name, kind, label name, label values, services that have it)], about `target`
    series in all; with `histograms`, the server latency as one histogram; with `scraped`,
    each pod's `up`."""
    everyone = set(services)
    families = [
        (name, kind, "", [""], everyone)
        for name, kind in FAMILIES
        if not (histograms and kind == "server_latency")
    ]
    if scraped:
        families.append(("up", "up", "", [""], everyone))
    if histograms:
        families.append((HISTOGRAM, "histogram", "", [""], everyone))
    routes = [f"/api/v1/r{n}" for n in range(ROUTES)]
    families.append(("http_route_requests_per_second", "load", "route", routes, everyone))
    for n in range(RUNTIME_FAMILIES):
        kind = ("noise", "drift")[n % 2]
        families.append((f"runtime_gauge_{n:02d}_bytes", kind, "", [""], everyone))
    per_pod = target / (len(services) * PODS)
    fixed = sum(
        len(BUCKETS) + 3 if kind == "histogram" else len(v) for _, kind, _, v, _ in families
    )
    own = max(0, math.ceil((per_pod - fixed) / ITEMS))  # application families per service
    pool = 3 * own
    items = [f"i{n}" for n in range(ITEMS)]
    for n in range(pool):
        having = {s for i, s in enumerate(services) if (n - i * own) % pool < own}
        if having:
            kind = APP_KINDS[n % len(APP_KINDS)]
            families.append((f"app_{kind}_{n:03d}_items", kind, "item", items, having))
    return families


def call_tree(services, rng):
    """{service: its callers}: services in tiers of about five, each called by one or two
    services of the tier above; frontend calls the first tier."""
    callers = {"frontend": []}
    tier = ["frontend"]
    rest = services[1:]
    while rest:
        width = min(len(rest), max(3, len(tier) * 2))
        nxt, rest = rest[:width], rest[width:]
        for service in nxt:
            callers[service] = rng.sample(tier, min(len(tier), rng.choice((1, 1, 2))))
        tier = nxt
    return callers


def plan_cases(services, count, rng, faults=FAULTS):
    cases = []
    for n in range(count):
        inject = START + timedelta(minutes=FIRST_INJECTION_MINUTES + n * CASE_SPACING_MINUTES)
        service, fault = rng.choice(services[1:]), faults[n % len(faults)]
        cases.append({"service": service, "fault": fault, "inject": inject})
    return cases


def fault_effects(cases, callers):
    """[(start, end, {(service, kind): strength})]: each case's fault at full strength on
    its service's own series, and scaled down by HOPS_DECAY per hop on its callers' client
    latency and errors."""
    effects = []
    for case in cases:
        strength = {(case["service"], case["fault"]): 1.0}
        if case["fault"] in ("cpu", "latency", ROLLOUT):
            strength[(case["service"], "server_latency")] = 1.0
        hop, frontier = HOPS_DECAY, [case["service"]]
        while frontier:
            above = sorted({c for s in frontier for c in callers[s]})
            for service in above:
                kind = "errors" if case["fault"] in ("errors", CRASH) else "client_latency"
                strength[(service, kind)] = max(strength.get((service, kind), 0), hop)
                if kind == "client_latency" and case["fault"] != "memory":
                    strength[(service, "server_latency")] = max(
                        strength.get((service, "server_latency"), 0), hop
                    )
            frontier, hop = above, hop * HOPS_DECAY
        end = case["inject"] + timedelta(minutes=FAULT_MINUTES)
        effects.append((case["inject"], end, strength))
    return effects


def write_metrics(path, families, services, times, effects, rng):
    # A rolled service's first PODS pods run until its rollout, the next PODS from it.
    rolled = {s: start for start, _, strength in effects for s, kind in strength if kind == ROLLOUT}
    count = 0
    with gzip.open(path, "wt", compresslevel=3) as out:
        for name, kind, label, values, having in families:
            gauge = "histogram" if kind == "histogram" else "gauge"
            out.write(f"# HELP {name} made up\n# TYPE {name} {gauge}\n")
            for service in services:
                if service not in having:
                    continue
                for pod in range(PODS * (2 if service in rolled else 1)):
                    alive = lifetime(pod, rolled.get(service))
                    for value in values:
                        labels = (
                            f'namespace="{NAMESPACE}",service="{service}",'
                            f'pod="{service}-{pod_hash(service, pod)}"'
                            + (f',{label}="{value}"' if label else "")
                        )
                        if kind == "histogram":
                            count += write_histogram(
                                out, name, labels, service, times, effects, rng, alive
                            )
                            continue
                        points = series(kind, service, times, effects, rng, alive)
                        out.writelines(
                            f"{name}{{{labels}}} {v:.6g} {t.timestamp():.3f}\n"
                            for t, v in zip(times, points, strict=True)
                            if v is not None
                        )
                        count += 1
        out.write("# EOF\n")
    return count


def lifetime(pod, rollout):
    """When pod number `pod` runs, as a test of a time: always, but for a rolled service
    (`rollout`: when), whose first PODS pods run until it and the next PODS from it."""
    if rollout is None:
        return lambda t: True
    return (lambda t: t < rollout) if pod < PODS else (lambda t: t >= rollout)


def write_histogram(out, name, labels, service, times, effects, rng, alive):
    """One pod's server latency as a histogram: its requests each step (about its load),
    their durations log-normal around its latency (faults included), counted into BUCKETS;
    returns the number of series written."""
    latency = series("server_latency", service, times, effects, rng, alive)
    load = rng.uniform(5, 200)
    step = (times[1] - times[0]).total_seconds()
    bounds = (*BUCKETS, math.inf)
    counts, total, requests, rows = [0] * len(bounds), 0, 0, []
    for level in latency:
        if level is None:  # down: no request served, no sample written
            rows.append(None)
            continue
        n = max(0, round(rng.gauss(load * step, math.sqrt(load * step))))
        for i, bound in enumerate(bounds):
            below = 0.5 * (1 + math.erf(math.log(bound / level) / (DURATION_SIGMA * math.sqrt(2))))
            counts[i] += n if bound == math.inf else round(n * below)
        requests += n
        total += n * level * math.exp(DURATION_SIGMA**2 / 2)
        rows.append((list(counts), requests, total))
    stamps = [f"{t.timestamp():.3f}" for t in times]
    for i, bound in enumerate(bounds):
        le = "+Inf" if bound == math.inf else f"{bound:g}"
        out.writelines(
            f'{name}_bucket{{{labels},le="{le}"}} {row[0][i]} {t}\n'
            for t, row in zip(stamps, rows, strict=True)
            if row
        )
    out.writelines(
        f"{name}_count{{{labels}}} {row[1]} {t}\n"
        for t, row in zip(stamps, rows, strict=True)
        if row
    )
    out.writelines(
        f"{name}_sum{{{labels}}} {row[2]:.3f} {t}\n"
        for t, row in zip(stamps, rows, strict=True)
        if row
    )
    return len(bounds) + 2


def pod_hash(service, pod):
    return hashlib.sha256(f"{service}/{pod}".encode()).hexdigest()[:5]


def series(kind, service, times, effects, rng, alive):
    """One pod's values of a series of `kind`, faults included (None where it is down, or
    where the pod does not run: `alive`)."""
    base = [
        v if alive(t) else None for t, v in zip(times, baseline(kind, len(times), rng), strict=True)
    ]
    for start, end, strength in effects:
        if strength.get((service, CRASH)):
            down = 0.0 if kind == "up" else None  # Prometheus still writes up, at 0
            base = [
                down if start <= t < end and v is not None else v
                for t, v in zip(times, base, strict=True)
            ]
        s = strength.get((service, kind), 0)
        if not s:
            continue
        for i, t in enumerate(times):
            if start <= t < end and base[i] is not None:
                minutes = (t - start).total_seconds() / 60
                base[i] = faulty(kind, base[i], s, minutes, rng)
    return base


def baseline(kind, n, rng):
    if kind == "up":
        return [1.0] * n
    if kind == "cpu":
        level = rng.uniform(0.05, 0.45)
        return [max(0.0, level * rng.gauss(1, 0.15)) for _ in range(n)]
    if kind == "memory":
        level, values = rng.uniform(100, 800) * 2**20, []
        for i in range(n):  # a garbage collector's sawtooth
            values.append(level * (1 + 0.05 * ((i % 20) / 20)) * rng.gauss(1, 0.005))
        return values
    if kind == "load":
        level = rng.uniform(5, 200)
        return [rng.gauss(level, math.sqrt(level)) for _ in range(n)]
    if kind in ("server_latency", "client_latency"):
        level = rng.uniform(0.005, 0.3)
        spike = [4 if rng.random() < 0.01 else 1 for _ in range(n)]  # a slow request now and then
        return [level * rng.lognormvariate(0, 0.25) * s for s in spike]
    if kind == "errors":
        return [poisson(0.02, rng) / 30 for _ in range(n)]
    if kind == "drift":
        value, values = rng.uniform(10, 1000), []
        for _ in range(n):
            value = max(0.0, value + rng.gauss(0, value * 0.01))
            values.append(value)
        return values
    if kind == "routine":  # a job every 15 minutes doubles the level for 2 minutes
        level, offset = rng.uniform(10, 1000), rng.randrange(30)
        return [level * (2 if (i + offset) % 30 < 4 else 1) * rng.gauss(1, 0.05) for i in range(n)]
    if kind == "sparse":
        return [float(poisson(0.3, rng)) for _ in range(n)]
    level = rng.uniform(1, 1000)  # noise
    return [level * rng.gauss(1, 0.1) for _ in range(n)]


def faulty(kind, value, strength, minutes, rng):
    """`value` as the fault changes it, `minutes` into the fault, at `strength` (1 for the
    faulty service itself)."""
    if kind == "cpu":
        return rng.uniform(0.85, 1.0) if strength >= 1 else value
    if kind == "memory":
        return value * (1 + 0.04 * strength * minutes)
    if kind in ("server_latency", "client_latency"):
        return value * (1 + 4 * strength)
    if kind == "errors":
        return value + 3 * strength * rng.uniform(0.8, 1.2)
    return value


def poisson(lam, rng):
    """Knuth's method; fine for the small rates used here."""
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def write_cases(out, cases):
    lines = []
    for case in cases:
        starts = case["inject"] + timedelta(seconds=60)
        case_id = f"{out.name}-{case['inject']:%Y%m%dT%H%M%SZ}"
        labels = {
            "alertname": "FrontendLatencyHigh",
            "namespace": NAMESPACE,
            "service": "frontend",
            "severity": "critical",
        }
        key = json.dumps({"id": case_id, "labels": labels}, sort_keys=True, separators=(",", ":"))
        fingerprint = hashlib.sha256(key.encode()).hexdigest()[:16]
        lines.append(
            json.dumps(
                {
                    "id": case_id,
                    "alert": {
                        "status": "firing",
                        "labels": labels,
                        "annotations": {"summary": "frontend is slow or failing"},
                        "startsAt": rfc3339(starts),
                        "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": "",
                        "fingerprint": fingerprint,
                    },
                    "truth": {
                        "service": case["service"],
                        "fault": case["fault"],
                        "inject_time": rfc3339(case["inject"]),
                    },
                    "window": {
                        "start": rfc3339(starts - timedelta(minutes=60)),
                        "end": rfc3339(starts + timedelta(minutes=10)),
                    },
                }
            )
        )
    (out / "cases.jsonl").write_text("\n".join(lines) + "\n")


def rfc3339(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


if __name__ == "__main__":
    main()
