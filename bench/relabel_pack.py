"""Writes a copy of a case pack whose labels are named as another deployment names them,
to measure the signal scan where the stores do not hold the alerts' labels as they are.

    .venv/bin/python bench/relabel_pack.py PACK_DIR OUT_DIR [--alert-label cluster=eu1]
        [--loki-names]
    .venv/bin/python bench/rca_accuracy.py OUT_DIR

`--alert-label NAME=VALUE` (repeatable) adds a label to every case's alert and to nothing
else: a Prometheus server's external labels, which Alertmanager receives on each alert but
the server's own series lack. `--loki-names` renames the labels of the log streams as Loki
names the resource attributes it indexes from OpenTelemetry logs (`namespace` ->
`k8s_namespace_name`, `service` -> `service_name`, `pod` -> `k8s_pod_name`, `container` ->
`k8s_container_name`). Metrics and pack.json are linked, not copied. The true root causes
are the pack's: only names change.
"""

import argparse
import gzip
import json
from pathlib import Path

LOKI_NAMES = {
    "namespace": "k8s_namespace_name",
    "service": "service_name",
    "pod": "k8s_pod_name",
    "container": "k8s_container_name",
}


def relabel(pack, out, alert_labels, loki_names):
    """Write `pack`'s copy to `out` (Paths): alerts with `alert_labels` ({name: value})
    added, log streams renamed to LOKI_NAMES when `loki_names`."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("pack.json", "metrics.om.gz"):
        (out / name).unlink(missing_ok=True)
        (out / name).symlink_to((pack / name).resolve())
    with (pack / "cases.jsonl").open() as source, (out / "cases.jsonl").open("w") as target:
        for line in source:
            case = json.loads(line)
            case["alert"]["labels"].update(alert_labels)
            target.write(json.dumps(case) + "\n")
    logs = pack / "logs.jsonl.gz"
    if not logs.exists():
        return
    names = LOKI_NAMES if loki_names else {}
    with gzip.open(logs, "rt") as source, gzip.open(out / "logs.jsonl.gz", "wt") as target:
        for line in source:
            record = json.loads(line)
            record["labels"] = {names.get(k, k): v for k, v in record["labels"].items()}
            target.write(json.dumps(record) + "\n")


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
    parser.add_argument("--loki-names", action="store_true")
    args = parser.parse_args()
    if args.out.resolve() == args.pack.resolve():
        parser.error("OUT_DIR must not be the pack itself")
    relabel(args.pack, args.out, dict(args.alert_label), args.loki_names)


if __name__ == "__main__":
    main()
