"""Pods replaced in the incident: a rollout's new pods are judged against the old ones.

The scenario, served by a real Prometheus (backfilled by promtool): `web`, the alerting
service, calls `api`; at ONSET `api`'s two pods are replaced by two of a new version
(new names, new addresses in `instance`, one on another node) that answers five times
slower on both its routes, and web slows with it. `db` runs on, untouched, and gets a
second pod at ONSET. A kubelet's cAdvisor and kube-state-metrics describe every pod (and
the deployments), under their own service labels.
"""

import random
import re
from datetime import UTC, datetime, timedelta

import pytest

from investigations.runner import _describe_metric_scan as describe
from investigations.signals import build_report, metrics, rank_suspects
from investigations.signals.metrics import pod_labels, score_series, successions, taken_over
from investigations.signals.report import evidence_gist
from investigations.signals.suspects import changed
from tests.investigations.signals.test_metric_scan import run_scan
from tests.realprometheus import prometheus_fixture

STEP = 15
START = (datetime.now(UTC) - timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)
ONSET = START + timedelta(minutes=60)
NOW = ONSET + timedelta(minutes=6)
WINDOWS = (START, ONSET - timedelta(minutes=2)), (ONSET - timedelta(minutes=2), NOW)
# pod: (service, instance, node, version): 0 runs throughout, 1 until ONSET, 2 from it
PODS = {
    "web-5d8f-x1": ("web", "10.0.0.1:8080", "node-a", 0),
    "db-0": ("db", "10.0.0.2:5432", "node-a", 0),
    "api-7c4b-a1": ("api", "10.0.0.3:8080", "node-a", 1),
    "api-7c4b-a2": ("api", "10.0.0.4:8080", "node-b", 1),
    "api-9e1f-b1": ("api", "10.0.0.5:8080", "node-a", 2),
    "api-9e1f-b2": ("api", "10.0.0.6:8080", "node-c", 2),
    "db-1": ("db", "10.0.0.7:5432", "node-b", 2),  # added beside db-0, as fast
}


def openmetrics():
    rng = random.Random(5)
    end = NOW + timedelta(minutes=30)
    lines = []

    def times(version):
        t = ONSET if version == 2 else START
        until = ONSET - timedelta(seconds=STEP) if version == 1 else end
        while t <= until:
            yield t
            t += timedelta(seconds=STEP)

    def labels(pod, **more):
        service, instance, node, _ = PODS[pod]
        pairs = {"namespace": "shop", "service": service, "pod": pod, "instance": instance}
        return ",".join(f'{k}="{v}"' for k, v in {**pairs, "node": node, **more}.items())

    def latency(service, version, t):
        if service == "api":
            return (0.5 if version == 2 else 0.1) * (1 + rng.gauss(0, 0.05))
        slow = 0.4 if service == "web" and t >= ONSET else 0.0
        return (0.15 + slow) * (1 + rng.gauss(0, 0.05))

    lines += ["# HELP latency_seconds Mean latency.", "# TYPE latency_seconds gauge"]
    for pod, (service, _, _, version) in PODS.items():
        routes = ("/cart", "/pay") if service == "api" else (None,)
        for t in times(version):
            for route in routes:
                named = labels(pod, route=route) if route else labels(pod)
                value = latency(service, version, t)
                lines.append(f"latency_seconds{{{named}}} {value:.4f} {t.timestamp():.0f}")
    # The kubelet's cAdvisor describes every pod: its own service label, and per container
    # (and for the pod's cgroup, container="") a cgroup path and a runtime id no other pod
    # shares. api's new version has a new image; db's added pod runs db's.
    lines += ["# HELP memory_bytes Working set.", "# TYPE memory_bytes gauge"]
    for n, (pod, (service, _, _, version)) in enumerate(PODS.items()):
        for container in ("", "app"):
            cgroup = f"/kubepods/pod{n:04x}" + (f"/c{n}{container}" if container else "")
            release = 2 if (service, version) == ("api", 2) else 1
            image = f"registry/{service}:{release}" if container else ""
            named = (
                f'namespace="shop",service="kubelet",pod="{pod}",container="{container}",'
                f'id="{cgroup}",image="{image}",name="{f"c{n}" if container else ""}"'
            )
            for t in times(version):
                value = 2e8 * (1 + rng.gauss(0, 0.01))
                lines.append(f"memory_bytes{{{named}}} {value:.0f} {t.timestamp():.0f}")
    # kube-state-metrics: a series per pod (its node, its replica set, its uid), and the
    # generation of each deployment, which the rollout bumped.
    lines += ["# HELP pod_info A pod.", "# TYPE pod_info gauge"]
    for n, (pod, (service, _, node, version)) in enumerate(PODS.items()):
        owner = pod if service == "db" else pod.rsplit("-", 1)[0]
        named = (
            f'namespace="shop",service="kube-state-metrics",pod="{pod}",node="{node}",'
            f'created_by_name="{owner}",uid="{n:08x}"'
        )
        lines += [f"pod_info{{{named}}} 1 {t.timestamp():.0f}" for t in times(version)]
    lines += ["# HELP generation A deployment's generation.", "# TYPE generation gauge"]
    for service in ("web", "api"):
        named = f'namespace="shop",service="kube-state-metrics",deployment="{service}"'
        lines += [
            f"generation{{{named}}} {4 if service == 'api' and t >= ONSET else 3} "
            f"{t.timestamp():.0f}"
            for t in times(0)
        ]
    lines += ["# HELP up Whether the target was scraped.", "# TYPE up gauge"]
    for pod, (_, _, _, version) in PODS.items():
        for t in times(version):
            lines.append(f"up{{{labels(pod)}}} 1 {t.timestamp():.0f}")
    return "\n".join([*lines, "# EOF", ""])


prometheus_url = prometheus_fixture(openmetrics)


def test_the_labels_that_say_where_a_series_runs():
    series = [
        ("m", {"service": "api", "pod": "a1", "instance": "10.0.0.3", "node": "n1", "code": "200"}),
        ("m", {"service": "api", "pod": "a1", "instance": "10.0.0.3", "node": "n1", "code": "503"}),
        ("m", {"service": "api", "pod": "b1", "instance": "10.0.0.5", "node": "n1", "code": "200"}),
        ("m", {"service": "api", "pod": "b2", "instance": "10.0.0.6", "node": "n2", "code": "200"}),
        ("up", {"service": "api", "pod": "a1", "instance": "10.0.0.3"}),
        ("m", {"service": "db", "pod": "db-0", "instance": "10.0.0.2"}),
    ]
    where = pod_labels(series, "service", "pod")
    # A status code that a pod answers with several of says what a series measures.
    assert where[("api", "m")] == {"service", "pod", "instance", "node"}
    assert where[("api", "up")] == {"service", "pod", "instance"}
    assert where[("db", "m")] == {"service", "pod", "instance"}

    # cAdvisor: a cgroup path and a runtime id per container, no other pod's; an image the
    # replicas share; codes a pod answers with.
    def container(pod, name, image, code):
        cgroup = f"/kubepods/{pod}" + (f"/{name}" if name else "")
        labels = {"service": pod[:3], "pod": pod, "id": cgroup, "code": code}
        return "c", {**labels, **({"container": name, "image": image} if name else {})}

    series = [
        container(pod, name, image, code)
        for pod, codes in (("api-1", "2"), ("api-2", "2"), ("web-1", "2"), ("api-3", "25"))
        for code in codes
        for name, image in (("", ""), ("app", f"{pod[:3]}:1"), ("proxy", "envoy:1"))
    ]
    where = pod_labels(series, "service", "pod")
    assert where[("api", "c")] == {"service", "pod", "id"}
    assert where[("web", "c")] == {"service", "pod", "id", "code"}  # one pod: one value


def test_what_the_new_pods_run_that_the_old_did_not():
    def pod(n, image, node, **more):
        return {"id": {f"/kubepods/{n}"}, "image": {image, "envoy:1"}, "node": {node}, **more}

    old = [pod(1, "api:1", "n1"), pod(2, "api:1", "n1")]
    new = [pod(3, "api:2", "n2", route={"/v2"}), pod(4, "api:2", "n2")]
    assert changed(old, new) == {"image": [["api:1"], ["api:2"]], "node": [["n1"], ["n2"]]}
    # One pod a side: its own values (a cgroup path) say nothing of a version.
    assert changed(old[:1], new[:1]) == {}
    assert changed(old[:1], new) == {"image": [["api:1"], ["api:2"]], "node": [["n1"], ["n2"]]}
    assert changed(old, old) == {}
    # Past MAX_CHANGED_LABELS, the labels more of the new pods' series carry come first:
    # an image on every container metric before an info metric's replica set name.
    old = [{**p, "a_set": {"api-7c4b"}, "a_zone": {"z1"}} for p in old]
    new = [{**p, "a_set": {"api-9e1f"}, "a_zone": {"z2"}} for p in new]
    carried = {"image": 40, "id": 40, "node": 10, "a_zone": 10, "a_set": 1}
    assert list(changed(old, new, carried)) == ["image", "a_zone", "node"]
    assert list(changed(old, new)) == ["a_set", "a_zone", "image"]


def test_a_new_pod_s_series_is_judged_by_the_pod_it_replaced_or_one_beside_it():
    def every(start, end):
        return [(t, 1.0) for t in range(start, end + 1, 30)]

    baseline, incident = (0, 3600), (3600, 3900)
    series = [
        ("m", {"service": "api", "pod": "a1", "route": "/x"}, every(0, 3630)),  # stopped
        ("m", {"service": "api", "pod": "a1", "route": "/y"}, every(0, 3630)),
        ("m", {"service": "api", "pod": "a2", "route": "/x"}, every(0, 3690)),
        ("m", {"service": "api", "pod": "b1", "route": "/x"}, every(3660, 3900)),
        ("m", {"service": "api", "pod": "b1", "route": "/y"}, every(3660, 3900)),
        ("m", {"service": "api", "pod": "b1", "route": "/z"}, every(3660, 3900)),  # new route
        ("n", {"service": "api", "pod": "b1", "route": "/x"}, every(3660, 3900)),  # new metric
        ("m", {"service": "db", "pod": "db-0"}, every(0, 3900)),
        ("m", {"service": "db", "pod": "db-1"}, every(2700, 3900)),  # long before: no
        ("m", {"service": "db", "pod": "db-2"}, every(3720, 3900)),  # beside db-0
    ]
    judged = successions(series, baseline, incident, "service", ["pod"])
    assert judged == ({3: [0, 2], 4: [1], 9: [7]}, {0, 1, 2})
    # Judged by all the pods it replaced: pods differ (a fresh one's memory, its caches),
    # and a level one of them held is no change.
    old = [[(t, 20.0 + n % 3) for n, t in enumerate(range(0, 3600, 30))], every(0, 3600)]
    old[1] = [(t, 850.0 + n % 5) for n, (t, _) in enumerate(old[1])]
    fresh = [(t, 853.0) for t in range(3630, 3900, 30)]
    assert score_series(*taken_over(old, fresh, baseline, incident)).score < 3
    assert score_series(*taken_over(old[:1], fresh, baseline, incident)).score > 100
    # A pod that began long before the incident replaced nothing in it.
    early = [series[0], ("m", series[3][1], every(2400, 3900))]
    assert successions(early, baseline, incident, "service", ["pod"]) == ({}, set())
    assert successions(series, baseline, incident, "service", []) == ({}, set())


@pytest.mark.slow
def test_a_slower_version_rolled_out_leads_its_caller(prometheus_url, monkeypatch):
    scan = run_scan(prometheus_url, *WINDOWS, workload_labels=["pod", "deployment"])

    new = [s for s in scan.scores if s.replaces]
    assert {
        (s.metric, s.workload, s.labels.get("route", s.labels.get("container"))) for s in new
    } == {
        (metric, pod, route)
        for pod in ("api-9e1f-b1", "api-9e1f-b2")
        for metric, route in (
            ("latency_seconds", "/cart"),
            ("latency_seconds", "/pay"),
            ("up", None),
            # The pod's cgroup (container="", a label Prometheus drops), though its path
            # is the new pod's own; not the container whose image changed.
            ("memory_bytes", None),
            ("pod_info", None),  # its node, replica set and uid are the new pod's own
        )
    }
    latency = [s for s in new if s.metric == "latency_seconds"]
    # Judged against the old pods' 0.1 s: five times slower is a change, not an appearance.
    assert all(s.score > 20 and s.direction == 1 for s in latency)
    assert all(s.baseline_median == pytest.approx(0.1, rel=0.1) for s in latency)
    assert all(s.replaces == ["api-7c4b-a1", "api-7c4b-a2"] for s in new)
    # The old pods' series stopped, replaced: no change of their own.
    # So did the old image's container, taken over by none: its pod was replaced.
    old = [s for s in scan.scores if s.replaced]
    assert len(old) == 12 and all(s.stopped is not None and s.score < 3 for s in old)
    assert "taken over by new pods: 10 series of api; " in describe(scan, "service")[1]
    # The exporter's deployment series is api's: the generation the rollout bumped.
    [bumped] = [s for s in scan.scores if s.metric == "generation" and s.score > 0]
    assert bumped.labels["service"] == "api" and bumped.left_constant
    image = [s for s in scan.scores if s.labels.get("image") == "registry/api:2"]
    assert len(image) == 2 and not any(s.replaces or s.beside for s in image)
    # db's new pod is judged by db-0's baseline, beside which it began: as fast, no change.
    added = [s for s in scan.scores if s.workload == "db-1"]
    assert len(added) == 5 and all(s.beside == ["db-0"] and s.score < 3 for s in added)

    ranked = rank_suspects(scan.scores, {}, "service", services_in_scope=["web"])
    assert [s.service for s in ranked[:2]] == ["api", "web"]
    assert next(s for s in ranked if s.service == "db").evidence == []  # no rollout
    api = ranked[0]
    assert api.silence_score == 0 and api.rollout_score == 1.0
    rollout = api.evidence[0]
    assert (rollout["kind"], rollout["replaced"], rollout["new"]) == (
        "rollout",
        ["api-7c4b-a1", "api-7c4b-a2"],
        ["api-9e1f-b1", "api-9e1f-b2"],
    )
    assert abs(rollout["onset"] - ONSET.timestamp()) <= 30
    # What the new pods run: the image both hold and neither old one did. Not their nodes
    # (one new pod is on an old one's), nor what each pod alone holds (its cgroup paths).
    assert rollout["changed"] == {
        "created_by_name": [["api-7c4b"], ["api-9e1f"]],
        "image": [["registry/api:1"], ["registry/api:2"]],
    }
    assert evidence_gist(rollout) == "pods replaced (2 by 2)"
    report, text = build_report(ranked, alerting_services=["web"], unchecked=[])
    assert report["root_cause"]["service"] == "api"
    assert (
        "2 pods of it (api-7c4b-a1, api-7c4b-a2) stopped and 2 new ones (api-9e1f-b1, "
        "api-9e1f-b2) took over their series from " in text
    )
    assert (
        "a rollout, or pods evicted or rescheduled; the new pods differ in created_by_name "
        "api-7c4b -> api-9e1f; image registry/api:1 -> registry/api:2" in text
    )
    assert re.search(
        r"pod=api-9e1f-b\d,route=/\w+\} went up \(0\.\d+ -> 0\.\d+, \d+ robust deviations; "
        r"a new pod, against the baseline of the pods it replaced, api-7c4b-a1, api-7c4b-a2\)",
        text,
    )
    assert any(
        "pods were replaced around the onset" in step
        and "the new pods: created_by_name api-7c4b -> api-9e1f; image registry/api:1 -> "
        "registry/api:2)"
        in step
        for step in report["next_steps"]
    )

    # Rolled out more than a minute after the alert fired: a remediation, weak evidence.
    late = rank_suspects(scan.scores, {}, "service", ["web"], alert_start=rollout["onset"] - 61)
    assert next(s for s in late if s.service == "api").rollout_score == pytest.approx(0.1)

    # Without workload labels the exporters' series are their own, and kube-state-metrics,
    # whose pods' series began and stopped, leads; by pods alone, its deployment series is
    # still its own.
    unnamed = run_scan(prometheus_url, *WINDOWS)
    assert rank_suspects(unnamed.scores, {}, "service", ["web"])[0].service == "kube-state-metrics"
    by_pods = rank_suspects(
        run_scan(prometheus_url, *WINDOWS, workload_labels=["pod"]).scores, {}, "service", ["web"]
    )
    assert "kube-state-metrics" in {s.service for s in by_pods if s.score > 0}
    # Pod by pod, with no successions, the new version is only series that appeared, and
    # its caller's slowness leads.
    monkeypatch.setattr(metrics, "successions", lambda *args: ({}, set()))
    unlinked = run_scan(prometheus_url, *WINDOWS, workload_labels=["pod", "deployment"])
    assert not any(s.replaces for s in unlinked.scores)
    ranked = rank_suspects(unlinked.scores, {}, "service", services_in_scope=["web"])
    assert [s.service for s in ranked[:2]] == ["web", "api"]
