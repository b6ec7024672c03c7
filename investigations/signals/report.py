"""The signals-only report: what the scan found, as an SRE would write it up.

It is the whole report when no LLM is configured (or the LLM failed), and the head start
the agents get otherwise. Confidence says how clearly the top suspect stands out.

The list of suspects quotes, for a service suspected by its logs or its requests, the
error template or the step of its requests that tells most (redacted when mined). Only
there: the summary, which briefs the agents, keeps to counts and times, since a log line
can carry anything and the agents read log lines only as tool results.
"""

import math
import re
from datetime import UTC, datetime

from investigations.signals.metrics import CHANGE_SIGMAS, full_scale
from investigations.signals.suspects import ALERT_WEIGHT, MAX_PODS_NAMED

MAX_SUSPECTS_REPORTED = 5


def confidence(suspects):
    """0..1: the top suspect's share of the top two scores, 0 with no evidence. The alert
    as the evidence left (suspects.py) puts a suspect first but is no change found: the
    shares are of what changed."""
    if not suspects or suspects[0].score <= 0:
        return 0.0
    changed = [s.score - ALERT_WEIGHT * s.alert_score for s in suspects[:2]] + [0.0]
    top, second = changed[:2]
    return round(top / (top + second), 2) if top > 0 else 0.0


def build_report(suspects, *, alerting_services, unchecked, evidence_steps=None):
    """(report dict, report text) from ranked Suspects. `evidence_steps` maps an evidence
    kind ("metric", "logs", "paths") to the timeline step that found it, for the text to cite."""
    evidence_steps = evidence_steps or {}
    if not suspects or suspects[0].score <= 0:
        summary = "The signal scan found no service that changed clearly in the incident window"
        # What it could not check may be all there was: say so where it is read first.
        summary += (
            f", but it could not check everything: {_count(len(unchecked), 'gap', 'gaps')} "
            "under Next steps."
            if unchecked
            else "."
        )
        report = {
            "source": "signals",
            "summary": summary,
            "root_cause": None,
            "confidence": 0.0,
            "suspects": [],
            "unchecked": unchecked,
            "next_steps": _next_steps(None, alerting_services, unchecked),
        }
        return report, _text(report)
    top = suspects[0]
    level = confidence(suspects)
    reason = _describe(top)
    where = top.service  # an alert that names no service, or a question
    if top.service in alerting_services:
        where = f"{top.service}, the alerting service itself"
    elif alerting_services:
        where = f"{top.service} (the alert fired on {', '.join(sorted(alerting_services))})"
    summary = f"Most likely root cause: {where}. {reason}"
    report = {
        "source": "signals",
        "summary": summary,
        "root_cause": {"service": top.service, "explanation": reason},
        "confidence": level,
        "suspects": [
            {
                "service": s.service,
                "score": round(s.score, 3),
                "why": _describe(s),
                "example": _example(s),
            }
            for s in suspects[:MAX_SUSPECTS_REPORTED]
        ],
        "evidence_steps": evidence_steps,
        "evidence": top.evidence,
        "unchecked": unchecked,
        "next_steps": _next_steps(top, alerting_services, unchecked, suspects),
    }
    return report, _text(report)


def _describe(suspect):
    parts = []
    for item in suspect.evidence[:3]:
        if item["kind"] == "alert":
            parts.append(
                "no service in scope changed clearly (no series by "
                f"{CHANGE_SIGMAS:.0f} robust deviations or more, no error-like lines or "
                "requests that surged, nothing saturated, stopped or replaced), so the alert "
                "is the evidence left, and it fired here"
                + ("" if item["services"] == 1 else f" and on {item['services'] - 1} more")
            )
        elif item["kind"] == "metric":
            series = _series_name(item)
            when = f" from {clock(item['onset'])}" if item.get("onset") else ""
            if item.get("restarted") is not None:
                when += f", started over at {clock(item['restarted'])}"
            if item.get("stopped") is not None:
                when += f", then stopped reporting from {clock(item['stopped'])}"
            if item.get("stopped") is not None and item.get("onset") == item["stopped"]:
                parts.append(
                    f"{series} stopped reporting from {clock(item['stopped'])} (baseline "
                    f"median {_num(item['baseline'])})"
                )
                continue
            if item.get("restarted") is not None and item.get("onset") == item["restarted"]:
                parts.append(
                    f"{series} started over at {clock(item['restarted'])} (a counter that "
                    "never did in the baseline: its process restarted)"
                )
                continue
            if item.get("saturated") is not None:
                parts.append(
                    f"{series} held at {percent(item['saturated'])} or more "
                    f"of its full scale, saturated (baseline median "
                    f"{item['baseline'] / (full_scale(item['metric']) or 1):.1%}){when}"
                )
                continue
            if item.get("left_constant"):
                parts.append(
                    f"{series} went {item['direction']} from {_num(item['baseline'])}, its "
                    f"only value through the baseline, to {_num(item['incident'])} "
                    f"({item['incident'] - item['baseline']:+.4g}){when}"
                )
                continue
            usual = (
                f"; a level it reached {item['returns']} separate times in the baseline"
                if item.get("returns")
                else ""
            )
            for pods, which in (("replaces", "it replaced"), ("beside", "beside it")):
                if item.get(pods):
                    named = _names(item[pods][:MAX_PODS_NAMED], len(item[pods]))
                    whose = "the pod" if len(item[pods]) == 1 else "the pods"
                    usual += f"; a new pod, against the baseline of {whose} {which}, {named}"
            parts.append(
                f"{series} went {item['direction'] or 'off'} "
                f"({_num(item['baseline'])} -> {_num(item['incident'])}, "
                f"{item['score']:.0f} robust deviations{usual}){when}"
            )
        elif item["kind"] == "silence":
            parts.append(
                f"all {_count(item['series'], 'series', 'series')} of it that reported "
                f"steadily through the baseline ({_count(item['metrics'], 'metric', 'metrics')})"
                f" stopped reporting from {clock(item['onset'])}"
                + (f" to {clock(item['last'])}" if item["last"] != item["onset"] else "")
                + ", and none of its series still moves"
                + _late(item)
            )
        elif item["kind"] == "rollout":
            parts.append(
                f"{_count(item['pods_replaced'], 'pod', 'pods')} of it "
                f"({_names(item['replaced'], item['pods_replaced'])}) stopped and "
                f"{_count(item['pods_new'], 'new one', 'new ones')} "
                f"({_names(item['new'], item['pods_new'])}) took over their series from "
                f"{clock(item['onset'])}: a rollout, or pods evicted or rescheduled"
                + (f"; the new pods differ in {changes}" if (changes := _changes(item)) else "")
                + _late(item)
            )
        elif item["kind"] == "paths":
            parts.append(
                f"{item['incident_diverged']} of {item['incident_requests']} requests in the "
                "incident window stopped going through it as they used to (in the calmest "
                f"stretch of the baseline: {item['baseline_diverged']} of "
                f"{item['baseline_requests']}){_began(item)}"
            )
        else:
            new = f", {item['new_template_lines']} in templates new to the incident"
            expected = item.get("expected_lines")
            calm = f"; its calmest stretch predicts {expected:.0f}" if expected is not None else ""
            parts.append(
                f"{item['incident_lines']} error-like log lines in the incident window "
                f"(baseline: {item['baseline_lines']}{calm}"
                f"{new if item['new_template_lines'] else ''}){_began(item)}"
            )
    if parts and suspect.evidence[0]["kind"] != "metric":  # a metric's name keeps its case
        parts[0] = parts[0][:1].upper() + parts[0][1:]
    return "; ".join(parts) + "." if parts else "No specific evidence."


def _example(suspect):
    """The words behind a suspect's first log or path evidence, to quote: its newest and
    most frequent error template, or the step its requests most often no longer reached;
    None without either."""
    for item in suspect.evidence:
        if item["kind"] == "logs" and item.get("templates"):
            best = max(item["templates"], key=lambda t: (t["new"], t["lines"]))
            return {
                "kind": "logs",
                "text": best["template"],
                "count": best["lines"],
                "new": best["new"],
            }
        if item["kind"] == "paths" and item.get("missing_steps"):
            step = item["missing_steps"][0]
            return {"kind": "paths", "text": step["step"], "count": step["requests"]}
    return None


def _quote(example):
    """An example (see _example) as a sentence with the words in a Markdown code span."""
    if not example:
        return ""
    text = " ".join(example["text"].split())
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    code = f"{fence} {text} {fence}" if "`" in text else f"{fence}{text}{fence}"
    if example["kind"] == "logs" and example["new"]:
        return f" Most often: {code} ({example['count']} lines, new to the incident)."
    if example["kind"] == "logs":  # a surged template's lines are both windows'
        return f" Most often: {code} (surged; {example['count']} lines in both windows)."
    return f" The step most often no longer reached: {code} ({example['count']} requests)."


def _series_name(item):
    """A metric evidence item's series: its name and labels, or what a series read per
    service stands for (metrics.SeriesScore.aggregated); a histogram's, as the quantile
    its buckets were read as."""
    metric = item["metric"]
    if item.get("quantile") is not None:
        metric = f"{percentile(item['quantile'])} of {metric}"
    if item.get("aggregated") == "sum" and item.get("quantile") is not None:
        return f"{metric} (all the service's series together)"
    if item.get("aggregated") == "sum":
        return f"{metric} (the sum of the service's series, as rates)"
    if item.get("aggregated") == "max":
        return f"{metric} (the highest of the service's series)"
    if item.get("aggregated"):
        return f"{metric} (the average of the service's series)"
    labels = ",".join(f"{k}={v}" for k, v in sorted(item["labels"].items()))
    return f"{metric}{{{labels}}}"


def evidence_gist(item):
    """One evidence item (Suspect.evidence) in a few words, for the suspect lists of the
    admin and the investigation page; "" for a kind it does not know."""
    kind = item.get("kind")
    if kind == "metric" and item.get("stopped") and item.get("onset") == item["stopped"]:
        text = f"{metric_label(item)} stopped ({item['score']:.1f})"
    elif kind == "metric" and item.get("restarted") and item.get("onset") == item["restarted"]:
        text = f"{metric_label(item)} restarted ({item['score']:.1f})"
    elif kind == "metric":
        text = f"{metric_label(item)} {item.get('direction', '')} ({item['score']:.1f})"
        text += ", a usual level" if item.get("returns") else ""
        text += ", off its only value" if item.get("left_constant") else ""
        text += ", saturated" if item.get("saturated") is not None else ""
        text += ", all its series" if item.get("aggregated") else ""
        text += ", then stopped" if item.get("stopped") is not None else ""
    elif kind == "alert":
        text = "the alert fired here; nothing changed clearly"
    elif kind == "silence":
        text = f"stopped reporting ({_count(item['series'], 'series', 'series')})"
    elif kind == "rollout":
        text = f"pods replaced ({item['pods_replaced']} by {item['pods_new']})"
    elif kind == "paths":
        text = f"{item['incident_diverged']} requests stopped here"
    elif kind == "logs":
        text = f"{item['incident_lines']} error-like lines, {item['new_template_lines']} new"
    else:
        return ""
    return text + (", after the alert fired" if item.get("late") else "")


def _began(item):
    """When a log or path change began, and whether it came too late to be the cause."""
    if not item.get("onset"):
        return ""
    return f", from {clock(item['onset'])}{_late(item)}"


def _changes(item):
    """What the new pods of a `rollout` run that the old did not, as their labels say."""
    return "; ".join(
        f"{name} {', '.join(went)} -> {', '.join(came)}"
        for name, (went, came) in item.get("changed", {}).items()
    )


def _late(item):
    """What the report adds to evidence that began after the alert fired."""
    return ", after the alert fired, so weak evidence" if item.get("late") else ""


def _next_steps(top, alerting_services, unchecked, suspects=()):
    steps = []
    changed = [s for s in suspects if s.score > 0]
    if len(changed) > 1 and all(s.silence_score > 0 for s in changed):
        steps.append(
            f"All {len(changed)} services that changed stopped reporting their metrics: look "
            "first at what they share, Prometheus' way to them (a network policy, its service "
            "discovery and credentials, a node they all run on), then at each service."
        )
    if top is not None:
        when = "when the alert fired" if top.alert_score else "the onset above"
        steps.append(
            f"Check {top.service}: recent deploys, config changes and resource limits around "
            f"{when}; read its error logs in the incident window."
        )
        if top.callers and _did_less(top):
            steps.append(_callers_step(top, suspects))
        full = [item for item in top.evidence if item.get("saturated") is not None]
        if full:
            steps.append(
                f"{top.service}'s {full[0]['metric']} held at its ceiling: find what uses it "
                "(a hot loop, a neighbour on the node, more traffic) and whether its limit "
                "fits; throttling there slows every request through it."
            )
        if rollout := next((item for item in top.evidence if item["kind"] == "rollout"), None):
            steps.append(
                f"{top.service}'s pods were replaced around the onset: find what rolled out "
                "(its rollout history, the image and config of the new pods"
                + (f": {changes}" if (changes := _changes(rollout)) else "")
                + ") or why the old pods went (evicted, node drained), and roll back if the "
                "change began there."
            )
        if any(item["kind"] == "silence" for item in top.evidence):
            steps.append(
                f"{top.service} stopped reporting its metrics: check that its pods are running "
                "(deleted, evicted, crash-looping, scaled to zero) and that Prometheus still "
                "scrapes them (their targets' `up`)."
            )
        if top.alert_score:
            steps.append(
                "Nothing the scan reads changed clearly: look where it does not read, "
                f"{top.service}'s own errors and traces, and what it depends on outside the "
                "scope (a database, an external API, DNS, certificates)."
            )
        if alerting_services and top.service not in alerting_services:
            path = _call_path(alerting_services, top.service, suspects)
            if path:
                steps.append(
                    f"{path[0]} calls {top.service}"
                    + (f" through {', '.join(path[1:-1])}" if len(path) > 2 else "")
                    + f" ({' -> '.join(path)}): confirm that those calls fail or slow down."
                )
            else:
                steps.append(
                    f"Confirm that {', '.join(sorted(alerting_services))} depends on "
                    f"{top.service} (its calls to it fail or slow down)."
                )
    for item in unchecked:
        steps.append(f"Not checked: {item}")
    if not steps:
        steps.append("Widen the scope or check the alerting service directly.")
    return steps


def _did_less(suspect):
    """Whether all `suspect`'s evidence is of series that went down: it did less work."""
    kinds = {item["kind"] for item in suspect.evidence}
    return kinds == {"metric"} and all(item["direction"] == "down" for item in suspect.evidence)


def _callers_step(top, suspects):
    """The next step that points from a `top` suspect that did less work to its callers,
    with where each ranks among `suspects` and when its change began."""
    ranked = {s.service: (n, s) for n, s in enumerate(suspects, 1)}
    called_by = []
    for caller in top.callers[:MAX_SUSPECTS_REPORTED]:
        if caller not in ranked:
            called_by.append(f"{caller} (not among the suspects)")
            continue
        rank, suspect = ranked[caller]
        began = ""
        if suspect.onset is not None and top.onset is not None and suspect.onset < top.onset:
            began = f", changed from {clock(suspect.onset)}, before it"
        called_by.append(f"{caller} (suspect {rank}{began})")
    return (
        f"{top.service} did less work (every change found in it went down), as a service "
        "does when its callers stop calling it or call it less. It is called by "
        + _names(called_by, len(top.callers))
        + ": where one of them changed first or fails its calls, look there first."
    )


def _call_path(sources, target, suspects):
    """The shortest chain of calls [source, ..., target] from one of `sources` to `target`
    through the callers of `suspects`; None where their callers show none."""
    callers = {s.service: s.callers for s in suspects}
    chains, seen = [[target]], {target}
    while chains:
        chain = chains.pop(0)
        for caller in callers.get(chain[0], ()):
            if caller in sources:
                return [caller, *chain]
            if caller not in seen:
                seen.add(caller)
                chains.append([caller, *chain])
    return None


def _text(report):
    """The report as Markdown (pages render it sanitised)."""
    lines = [report["summary"], ""]
    if report["root_cause"]:
        lines.append(f"**Confidence:** {report['confidence']:.0%} (signal scan, no LLM)")
        lines += ["", "### Suspects", ""]
        cited = sorted(set(report.get("evidence_steps", {}).values()))
        lines += [
            f"{n}. **{s['service']}**: {s['why']}{_quote(s.get('example'))}"
            for n, s in enumerate(report["suspects"], 1)
        ]
        if cited:
            lines += ["", "Found by " + ", ".join(f"[step {n}](#step-{n})" for n in cited) + "."]
        lines.append("")
    lines += ["### Next steps", ""]
    lines += [f"- {step}" for step in report["next_steps"]]
    return "\n".join(lines)


def percent(share):
    """A share as a whole percent rounded down, so that a level held "at 99% or more" is
    not said to be 100%."""
    return f"{math.floor(share * 100 + 1e-9)}%"


def metric_label(item):
    """A metric evidence item's metric, with the quantile a histogram was read as."""
    quantile = item.get("quantile")
    return item["metric"] + (f" {percentile(quantile)}" if quantile is not None else "")


def percentile(quantile):
    """A quantile as SREs write it: 0.9 -> "p90"."""
    return f"p{round(quantile * 100, 1):g}"


def clock(seconds):
    """Unix `seconds` as the report writes a moment: "14:02:30 UTC"."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%H:%M:%S UTC")


def _names(names, count):
    """Up to a few `names` of `count`, saying how many more there are."""
    more = count - len(names)
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def _count(n, one, many):
    return f"{n} {one if n == 1 else many}"


def _num(value):
    return "none" if value is None else f"{value:.4g}"
