"""Suspects: the services in scope ranked by what changed in them, with the evidence.

Each modality ranks services on its own, then the two are combined:

- metrics: a service's score on one metric is its most abnormal series of that metric;
  that score is divided by the number of services abnormal on the same metric at the
  same time (a change every service shows, like the CPU of a shared node or the latency
  of every caller of a slow callee, is evidence they share, not evidence against each);
  the service's metric score is its best one.
- logs: how far the incident's error-like lines surged above the service's own baseline
  rate, counting twice those of templates the baseline never showed (see
  logs.score_logs); a service that always logs errors scores nothing for them.
- request paths: how far the requests that stopped going as usual at the service surged
  above their baseline rate (see paths.score_paths).
- saturation: a ratio of the service held at its ceiling (a CPU or memory limit used up;
  see metrics.py), 1 shared among the services saturated on the same metric.
- silence: every series of the service that reported steadily stopped in the incident
  and none still reports a value that moves (see metrics.py's `stopped`): the service is
  down or gone, or Prometheus no longer reaches it; 1 shared among the services that went
  silent.
- rollout: pods of the service were replaced in the incident (a new version rolled out,
  pods evicted or rescheduled; see metrics.py's `successions`); 1 shared among the
  services rolled at once.

Each is scaled to 0..1 by the best service of its kind and they are added, so that a
service abnormal in several leads; metrics by no less than a series that appeared scores
(10), so that when the strongest change is a few robust deviations, it counts as little as
it is, not as much as the best of its kind. Request paths count twice and, where there is log
evidence, metrics count half (measured on the case pack with logs: every service's metrics
move with load, error lines come from where the code fails, and a faulty service that logs
no error still stops the requests through it; docs/BENCHMARKS.md). Saturation counts as
much as the best service of a kind: a limit used up throttles whatever runs there, and its
size in robust deviations says little (a CPU from 1% of its limit to 100% moves less than
an idle caller's sparse latency). Silence counts as much as request paths: both say the
service stopped doing its work, and a service that no longer reports at all cannot show
its fault in its values, while its callers' failures show in their metrics and their logs
(up to 1.5 together) and must not outweigh it. A rollout counts half as much as the best
service of a kind: it says that something changed there, not that it failed, so a healthy
one does not outrank a service whose values changed most; a new version that fails shows
in its new pods' series as well, judged against the old pods' baseline, and then leads.
Ties go to the earliest change: a fault shows first where it is.

Where nothing changed clearly (no series by CHANGE_SIGMAS, no error-like lines, requests,
saturation, silence or rollout) but the scan did read something, the alert is the only
evidence left, and it is on the alerting service: `alert` counts there as much as a change
at CHANGE_SIGMAS would (on each, where the alerts name several services: each alert fired
on its own), so the search starts where users feel the incident, not at the service whose
noise happened to be loudest. An alert fires because the alerting service's own symptom
crossed its threshold; that symptom is often not among the series in scope (a probe, a rule
over a recording, a load balancer's), and changes below the scan's own threshold rank
services by chance (measured on the case packs: docs/BENCHMARKS.md).

A change that began after the alert fired did not cause it: error lines and diverging
requests whose service's first one came more than LATE_AFTER after the alert's start count
LATE_WEIGHT (a minute of slack for clocks and rule evaluation; weak evidence, not none),
and so does a silence or a rollout that began then (pods replaced after the alert are more
often its remedy than its cause). Log lines, requests and stops carry their own
time. A metric's onset is only when a 30-second step first crossed CHANGE_SIGMAS, and a
change that builds (a CPU saturating, a queue filling) crosses late, so metrics are not
judged by it (measured on the case packs: it cost the largest pack a case;
docs/BENCHMARKS.md).
"""

import math
from collections import Counter
from dataclasses import dataclass, field

from investigations.signals.metrics import APPEARED_SCORE, CHANGE_SIGMAS

MAX_EVIDENCE = 5
# The metric scores are scaled by the best service's, but by no less than this: a scan
# whose strongest change is a few robust deviations found no clear metric suspect.
METRIC_SCALE_FLOOR = APPEARED_SCORE
MAX_PODS_NAMED = 3
MAX_CHANGED_LABELS = 3
METRIC_WEIGHT_WITH_LOGS = 0.5
PATH_WEIGHT = 2.0
SATURATION_WEIGHT = 1.0
SILENCE_WEIGHT = 2.0
ROLLOUT_WEIGHT = 0.5
# The alert as the evidence of last resort: as much as a change at CHANGE_SIGMAS scores.
ALERT_WEIGHT = CHANGE_SIGMAS / METRIC_SCALE_FLOOR
LATE_AFTER = 60
LATE_WEIGHT = 0.1


@dataclass
class Suspect:
    service: str
    score: float = 0.0
    metric_score: float = 0.0
    log_score: float = 0.0
    path_score: float = 0.0
    saturation_score: float = 0.0
    silence_score: float = 0.0
    rollout_score: float = 0.0
    alert_score: float = 0.0
    onset: float | None = None
    evidence: list[dict] = field(default_factory=list)
    # The services in scope that call it, where series name both ends of their calls
    # (metrics.calls_between); they do not score.
    callers: list[str] = field(default_factory=list)

    def as_dict(self):
        return {
            "service": self.service,
            "score": round(self.score, 3),
            "metric_score": round(self.metric_score, 3),
            "log_score": round(self.log_score, 3),
            "path_score": round(self.path_score, 3),
            "saturation_score": round(self.saturation_score, 3),
            "silence_score": round(self.silence_score, 3),
            "rollout_score": round(self.rollout_score, 3),
            "alert_score": round(self.alert_score, 3),
            "onset": self.onset,
            "evidence": self.evidence,
            "callers": self.callers,
        }


def rank_suspects(
    metric_scores,
    service_logs,
    service_label,
    services_in_scope=(),
    service_paths=None,
    alert_start=None,
    alerting_services=(),
    calls=(),
):
    """Suspects, best first, from SeriesScores (metrics.py), ServiceLogs (logs.py) and
    ServicePaths (paths.py); `alert_start` (unix seconds) is when the first alert fired,
    None for a question asked without one; `alerting_services` are the services the alerts
    name; `calls` the (caller, callee) services that call one another, for each suspect's
    callers."""
    best = {}  # (service, metric) -> SeriesScore
    saturated = {}  # (service, metric) -> the series held highest at its ceiling
    for series in metric_scores:
        service = series.labels.get(service_label)
        if not service:
            continue
        key = (service, series.metric)
        if key not in best or series.score > best[key].score:
            best[key] = series
        if series.saturated is not None and (
            key not in saturated or series.saturated > saturated[key].saturated
        ):
            saturated[key] = series
    abnormal = Counter(metric for (_, metric), s in best.items() if s.score >= CHANGE_SIGMAS)
    sharing = Counter(metric for _, metric in saturated)
    suspects = {name: Suspect(name) for name in services_in_scope}
    weighted = {}
    for (service, metric), series in best.items():
        suspect = suspects.setdefault(service, Suspect(service))
        weight = 1 / max(abnormal[metric], 1)
        weighted[service, metric] = series.score * weight
        suspect.metric_score = max(suspect.metric_score, series.score * weight)
        if series.score >= CHANGE_SIGMAS and series.onset is not None:
            suspect.onset = (
                series.onset if suspect.onset is None else min(suspect.onset, series.onset)
            )
    for (service, metric), series in saturated.items():
        suspect = suspects.setdefault(service, Suspect(service))
        suspect.saturation_score = max(suspect.saturation_score, 1 / sharing[metric])
        if len(suspect.evidence) < MAX_EVIDENCE:
            suspect.evidence.append(series.as_evidence(service_label))
    for (service, metric), value in sorted(weighted.items(), key=lambda kv: -kv[1]):
        if (service, metric) in saturated:
            continue
        if value >= CHANGE_SIGMAS / 2 and len(suspects[service].evidence) < MAX_EVIDENCE:
            suspects[service].evidence.append(best[service, metric].as_evidence(service_label))

    def late(onset):
        """Whether a change that began at `onset` (unix seconds, or None) began more than
        LATE_AFTER after the alert fired."""
        return alert_start is not None and onset is not None and onset > alert_start + LATE_AFTER

    def weigh(suspect, found):
        """`found`'s score (ServiceLogs or ServicePaths), a late one's at LATE_WEIGHT;
        adds its evidence and its onset to the suspect's."""
        began_late = late(found.onset)
        suspect.evidence.insert(0, {**found.as_evidence(), "late": began_late})
        if found.score > 0 and found.onset is not None:
            suspect.onset = min(found.onset, suspect.onset or found.onset)
        return found.score * (LATE_WEIGHT if began_late else 1.0)

    for service, logs in service_logs.items():
        suspect = suspects.setdefault(service, Suspect(service))
        if logs.incident_lines:
            suspect.log_score = weigh(suspect, logs)
    for service, paths in (service_paths or {}).items():
        if paths.score > 0:
            suspect = suspects.setdefault(service, Suspect(service))
            suspect.path_score = weigh(suspect, paths)
    for kind, found in (
        ("rollout", rollouts(metric_scores, service_label)),
        ("silence", silences(metric_scores, service_label)),
    ):
        for service, evidence in found.items():
            suspect = suspects.setdefault(service, Suspect(service))
            # Stops and starts are timed to the sample: one after the alert fired is
            # judged as logs are.
            began_late = late(evidence["onset"])
            setattr(suspect, f"{kind}_score", (LATE_WEIGHT if began_late else 1.0) / len(found))
            suspect.evidence.insert(0, {**evidence, "late": began_late})
            suspect.onset = min(evidence["onset"], suspect.onset or evidence["onset"])
    top_metric = max([s.metric_score for s in suspects.values()] + [METRIC_SCALE_FLOOR])
    top_log = max((s.log_score for s in suspects.values()), default=0)
    top_path = max((s.path_score for s in suspects.values()), default=0)
    metric_weight = METRIC_WEIGHT_WITH_LOGS if top_log or top_path else 1.0
    clear = top_log or top_path or any(s.score >= CHANGE_SIGMAS for s in best.values())
    clear = clear or any(
        s.saturation_score or s.silence_score or s.rollout_score for s in suspects.values()
    )
    read = best or any(logs.incident_lines or logs.baseline_lines for logs in service_logs.values())
    if read and not clear:
        for service in alerting_services:
            suspect = suspects.setdefault(service, Suspect(service))
            suspect.alert_score = 1.0
            suspect.evidence.insert(0, {"kind": "alert", "services": len(alerting_services)})
    for suspect in suspects.values():
        suspect.score = (
            metric_weight * suspect.metric_score / top_metric
            + (suspect.log_score / top_log if top_log else 0.0)
            + (PATH_WEIGHT * suspect.path_score / top_path if top_path else 0.0)
            + SATURATION_WEIGHT * suspect.saturation_score
            + SILENCE_WEIGHT * suspect.silence_score
            + ROLLOUT_WEIGHT * suspect.rollout_score
            + ALERT_WEIGHT * suspect.alert_score
        )
    for caller, callee in sorted(calls):
        if callee in suspects:
            suspects[callee].callers.append(caller)
    return sorted(
        suspects.values(),
        key=lambda s: (-round(s.score, 6), s.onset if s.onset is not None else math.inf, s.service),
    )


def silences(metric_scores, service_label):
    """{service: its `silence` evidence} for the services whose every steady series stopped
    in the incident (SeriesScore.stopped) while none of theirs still reports anything that
    moves: a target that can no longer be scraped keeps its `up` at 0, and the exporter
    that describes its pod keeps its info series at 1 (SeriesScore.moving)."""
    stopped, reporting = {}, set()
    for series in metric_scores:
        service = series.labels.get(service_label)
        if not service:
            continue
        if series.stopped is not None:
            stopped.setdefault(service, []).append(series)
        elif series.moving:
            reporting.add(service)
    return {
        service: {
            "kind": "silence",
            "series": len(found),
            "metrics": len({s.metric for s in found}),
            "onset": min(s.stopped for s in found),
            "last": max(s.stopped for s in found),
        }
        for service, found in stopped.items()
        if service not in reporting
    }


def rollouts(metric_scores, service_label):
    """{service: its `rollout` evidence} for the services some of whose pods were replaced
    in the incident: their series stopped and a new pod's took them over (see
    metrics.successions). `replaced` and `new` name up to MAX_PODS_NAMED of the pods."""
    gone, new, times = {}, {}, {}
    for series in metric_scores:
        service = series.labels.get(service_label)
        if not service or not series.workload:
            continue
        if series.replaced:
            gone.setdefault(service, set()).add(series.workload)
            times.setdefault(service, []).append(series.stopped)
        elif series.replaces:
            new.setdefault(service, set()).add(series.workload)
            times.setdefault(service, []).append(series.began)
    held = {}  # (service, pod) -> {label: values}, of the pods replaced and the new ones
    carried = {}  # service -> Counter of the labels its new pods' series carry
    for series in metric_scores:
        service, pod = series.labels.get(service_label), series.workload
        if pod in gone.get(service, ()) or pod in new.get(service, ()):
            on = held.setdefault((service, pod), {})
            for name, value in series.labels.items():
                if name != service_label and value != pod:
                    on.setdefault(name, set()).add(value)
            if pod in new.get(service, ()):
                carried.setdefault(service, Counter()).update(series.labels.keys())
    return {
        service: {
            "kind": "rollout",
            "replaced": sorted(gone[service])[:MAX_PODS_NAMED],
            "new": sorted(pods)[:MAX_PODS_NAMED],
            "pods_replaced": len(gone[service]),
            "pods_new": len(pods),
            "onset": min(times[service]),
            "changed": changed(
                [held.get((service, pod), {}) for pod in gone[service]],
                [held.get((service, pod), {}) for pod in pods],
                carried.get(service, {}),
            ),
        }
        for service, pods in new.items()
        if service in gone
    }


def changed(old, new, carried=None):
    """{label: [the values every old pod held and no new one, the new pods' likewise]},
    up to MAX_CHANGED_LABELS, of the pods' labels ([{label: values}] each): what the new
    pods run that the old did not (an image, a template's hash, a node). Where a side has
    one pod, its values are its own (a cgroup path, an address) and only the other side's
    shared ones tell: a label counts where both sides differ. Labels that more series
    carry (`carried`: cAdvisor's image is on each container's every metric, an info
    metric's replica set name on one) come first."""
    if len(old) < 2 and len(new) < 2:
        return {}

    def common(pods, name):
        return set.intersection(*(pod.get(name, set()) for pod in pods))

    def any_of(pods, name):
        return set().union(*(pod.get(name, set()) for pod in pods))

    found = {}
    names = {name for pod in old + new for name in pod}
    for name in sorted(names, key=lambda name: (-(carried or {}).get(name, 0), name)):
        went, came = common(old, name) - any_of(new, name), common(new, name) - any_of(old, name)
        if went and came and len(found) < MAX_CHANGED_LABELS:
            found[name] = [sorted(went)[:MAX_PODS_NAMED], sorted(came)[:MAX_PODS_NAMED]]
    return found
