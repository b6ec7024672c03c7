"""Writes a copy of a case pack whose labels are named as another deployment names them,
to measure the signal scan where the stores do not hold the alerts' labels as they are.

    .venv/bin/python bench/relabel_pack.py PACK_DIR OUT_DIR [--alert-label cluster=eu1]
        [--drop-alert-label namespace] [--loki-names] [--otel-metrics | --otel-jobs]
    .venv/bin/python bench/rca_accuracy.py OUT_DIR

`--alert-label NAME=VALUE` (repeatable) adds a label to every case's alert and to nothing
else: a Prometheus server's external labels, which Alertmanager receives on each alert but
the server's own series lack. `--drop-alert-label NAME` (repeatable) takes a label from
every case's alert, as the copy names it: a rule that aggregates it away, or a target
outside Kubernetes. `--loki-names` renames the labels of the log streams as Loki
names the resource attributes it indexes from OpenTelemetry logs (`namespace` ->
`k8s_namespace_name`, `service` -> `service_name`, `pod` -> `k8s_pod_name`, `container` ->
`k8s_container_name`). `--otel-metrics` names the metrics and the alerts so, as a
deployment whose metrics come through OpenTelemetry stores them: Prometheus' OTLP
receiver with those attributes promoted to labels, `job` set from `service.name`, and
alert rules over such series. Both options together: everything through OpenTelemetry;
`--otel-metrics` alone: logs still shipped by Promtail. `--otel-jobs` names the metrics
and the alerts as OpenTelemetry's Prometheus exporters do with no resource attribute
promoted to a label (Prometheus' OTLP receiver by default, the collector's remote write):
`job` is `<namespace>/<service>` (service.namespace/service.name), `instance` the pod
(service.instance.id), and namespace, service and pod are gone; the true root causes are
named by that job too. With `--loki-names`, the log streams also carry `service_namespace`,
as Loki indexes it from such logs. What is not renamed is linked, not copied. The true
root causes are the pack's: only names change.
"""

import argparse
import gzip
import json
import re
from pathlib import Path

LOKI_NAMES = {
    "namespace": "k8s_namespace_name",
    "service": "service_name",
    "pod": "k8s_pod_name",
    "container": "k8s_container_name",
}
# A label of an OpenMetrics sample line: name="value", the value with its escapes.
OM_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def relabel(
    pack, out, alert_labels, loki_names=False, otel_metrics=False, dropped=(), otel_jobs=False
):
    """Write `pack`'s copy to `out` (Paths): alerts with `alert_labels` ({name: value})
    added and the labels `dropped` (names, as the copy names them) taken out, log streams
    renamed to LOKI_NAMES when `loki_names`, and the metrics' and alerts' labels as
    otel_labels names them when `otel_metrics`, as job_labels does when `otel_jobs`."""
    out.mkdir(parents=True, exist_ok=True)
    renamed = job_labels if otel_jobs else otel_labels if otel_metrics else None
    otel_metrics = renamed is not None
    linked = ["pack.json", "metrics.om.gz"] if not otel_metrics else []
    for name in ("pack.json", "metrics.om.gz"):
        (out / name).unlink(missing_ok=True)
        if name in linked:
            (out / name).symlink_to((pack / name).resolve())
    if otel_metrics:
        meta = json.loads((pack / "pack.json").read_text())
        meta["service_label"] = "job" if otel_jobs else LOKI_NAMES["service"]
        (out / "pack.json").write_text(json.dumps(meta, indent=2) + "\n")
        with (
            gzip.open(pack / "metrics.om.gz", "rt") as source,
            gzip.open(out / "metrics.om.gz", "wt") as target,
        ):
            for line in source:
                target.write(line if line.startswith("#") else otel_sample(line, renamed))
    with (pack / "cases.jsonl").open() as source, (out / "cases.jsonl").open("w") as target:
        for line in source:
            case = json.loads(line)
            labels = case["alert"]["labels"]
            case["alert"]["labels"] = {**(renamed(labels) if otel_metrics else labels)}
            if otel_jobs:  # the true root cause named as its series now are
                truth = {**labels, "service": case["truth"]["service"]}
                case["truth"]["service"] = job_labels(truth)["job"]
            case["alert"]["labels"].update(alert_labels)
            for name in dropped:
                case["alert"]["labels"].pop(name, None)
            target.write(json.dumps(case) + "\n")
    logs = pack / "logs.jsonl.gz"
    if not logs.exists():
        return
    names = LOKI_NAMES if loki_names else {}
    with gzip.open(logs, "rt") as source, gzip.open(out / "logs.jsonl.gz", "wt") as target:
        for line in source:
            record = json.loads(line)
            labels = record["labels"]
            record["labels"] = {names.get(k, k): v for k, v in labels.items()}
            if loki_names and otel_jobs and "namespace" in labels:
                record["labels"]["service_namespace"] = labels["namespace"]
            target.write(json.dumps(record) + "\n")


def otel_labels(labels):
    """`labels` ({name: value}) as Prometheus' OTLP receiver stores them: LOKI_NAMES'
    renamed, and `job` the service's name."""
    renamed = {LOKI_NAMES.get(k, k): v for k, v in labels.items()}
    if "service" in labels:
        renamed["job"] = labels["service"]
    return renamed


def job_labels(labels):
    """`labels` as OpenTelemetry's Prometheus exporters store them with no resource
    attribute promoted: `job` service.namespace/service.name, `instance` the pod, the
    rest (a series' own attributes) as they are."""
    kept = {k: v for k, v in labels.items() if k not in ("namespace", "service", "pod")}
    if "service" not in labels:
        return kept
    namespace = f"{labels['namespace']}/" if "namespace" in labels else ""
    instance = {"instance": labels["pod"]} if "pod" in labels else {}
    return {"job": namespace + labels["service"], **instance, **kept}


def otel_sample(line, renamed=otel_labels):
    """An OpenMetrics sample line with its labels `renamed` (otel_labels, job_labels)."""
    name, brace, rest = line.partition("{")
    if not brace:
        return line
    inner, _, tail = rest.partition("} ")
    labels = renamed(dict(OM_LABEL.findall(inner)))
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "} " + tail


def label_pair(text):
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pack", type=Path, help="a case pack directory")
    parser.add_argument("out", type=Path, help="where to write the copy")
    parser.add_argument(
        "--alert-label", type=label_pair, action="append", default=[], metavar="NAME=VALUE"
    )
    parser.add_argument("--drop-alert-label", action="append", default=[], metavar="NAME")
    parser.add_argument("--loki-names", action="store_true")
    otel = parser.add_mutually_exclusive_group()
    otel.add_argument("--otel-metrics", action="store_true")
    otel.add_argument("--otel-jobs", action="store_true")
    args = parser.parse_args()
    if args.out.resolve() == args.pack.resolve():
        parser.error("OUT_DIR must not be the pack itself")
    relabel(
        args.pack,
        args.out,
        dict(args.alert_label),
        args.loki_names,
        args.otel_metrics,
        args.drop_alert_label,
        args.otel_jobs,
    )


if __name__ == "__main__":
    main()
