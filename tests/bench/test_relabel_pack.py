"""bench/relabel_pack.py: a pack's copy with its alerts and log streams named otherwise,
the true root causes and the metrics as they were."""

import argparse
import gzip
import json

import pytest
from relabel_pack import label_pair, relabel

METRICS = (
    "# TYPE up gauge\n"
    'up{namespace="shop",service="db",pod="db-1"} 1 1\n'
    'edge{namespace="shop",service="db",source_service="web",destination_service="db",'
    'note="a \\"quoted\\" value"} 2 1\n'
    "# EOF\n"
)


def write_pack(pack):
    pack.mkdir()
    (pack / "pack.json").write_text(json.dumps({"name": "tiny", "modalities": ["metrics", "logs"]}))
    with gzip.open(pack / "metrics.om.gz", "wt") as out:
        out.write(METRICS)
    cases = [
        {
            "id": f"case-{n}",
            "alert": {"labels": {"alertname": "SLOBurn", "namespace": "shop", "service": "web"}},
            "truth": {"service": "db"},
        }
        for n in range(2)
    ]
    (pack / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    line = {
        "labels": {"namespace": "shop", "service": "db", "pod": "db-1", "container": "server"},
        "ts_ns": "1",
        "line": "ERROR lost",
    }
    with gzip.open(pack / "logs.jsonl.gz", "wt") as out:
        out.write(json.dumps(line) + "\n")
    return cases


def samples(out):
    """The sample lines of the copy's metrics, after checking the rest is the pack's."""
    with gzip.open(out / "metrics.om.gz", "rt") as metrics:
        lines = metrics.read().splitlines()
    assert (lines[0], lines[-1]) == ("# TYPE up gauge", "# EOF")
    return lines[1:-1]


@pytest.mark.parametrize("loki_names", [False, True])
def test_the_copy_names_alerts_and_streams_otherwise(tmp_path, loki_names):
    pack, out = tmp_path / "pack", tmp_path / "out"
    cases = write_pack(pack)

    relabel(pack, out, {"cluster": "eu1"}, loki_names)

    copied = [json.loads(line) for line in (out / "cases.jsonl").read_text().splitlines()]
    assert [c["alert"]["labels"] for c in copied] == [
        {**c["alert"]["labels"], "cluster": "eu1"} for c in cases
    ]
    assert [(c["id"], c["truth"]) for c in copied] == [(c["id"], c["truth"]) for c in cases]
    for name in ("pack.json", "metrics.om.gz"):
        assert (out / name).read_bytes() == (pack / name).read_bytes()
    with gzip.open(out / "logs.jsonl.gz", "rt") as logs:
        [record] = [json.loads(line) for line in logs]
    expected = (
        {
            "k8s_namespace_name": "shop",
            "service_name": "db",
            "k8s_pod_name": "db-1",
            "k8s_container_name": "server",
        }
        if loki_names
        else {"namespace": "shop", "service": "db", "pod": "db-1", "container": "server"}
    )
    assert record == {"labels": expected, "ts_ns": "1", "line": "ERROR lost"}


def test_in_opentelemetry_s_names_metrics_and_alerts_are_renamed_too(tmp_path):
    # ... and the alerts name no namespace (dropped, in the copy's name for it).
    pack, out = tmp_path / "pack", tmp_path / "out"
    cases = write_pack(pack)

    relabel(pack, out, {}, otel_metrics=True, dropped=["k8s_namespace_name"])

    assert json.loads((out / "pack.json").read_text()) == {
        "name": "tiny",
        "modalities": ["metrics", "logs"],
        "service_label": "service_name",
    }
    assert samples(out) == [
        'up{k8s_namespace_name="shop",service_name="db",k8s_pod_name="db-1",job="db"} 1 1',
        'edge{k8s_namespace_name="shop",service_name="db",source_service="web",'
        'destination_service="db",note="a \\"quoted\\" value",job="db"} 2 1',
    ]
    copied = [json.loads(line) for line in (out / "cases.jsonl").read_text().splitlines()]
    assert copied[0]["alert"]["labels"] == {
        "alertname": "SLOBurn",
        "service_name": "web",
        "job": "web",
    }
    assert [(c["id"], c["truth"]) for c in copied] == [(c["id"], c["truth"]) for c in cases]
    with gzip.open(out / "logs.jsonl.gz", "rt") as logs:  # as Promtail names them
        [record] = [json.loads(line) for line in logs]
    assert set(record["labels"]) == {"namespace", "service", "pod", "container"}


def test_with_namespaced_jobs_the_service_and_its_namespace_are_the_job(tmp_path):
    # OpenTelemetry's exporters with no resource attribute promoted, and its Loki.
    pack, out = tmp_path / "pack", tmp_path / "out"
    write_pack(pack)

    relabel(pack, out, {}, loki_names=True, otel_jobs=True)

    assert json.loads((out / "pack.json").read_text())["service_label"] == "job"
    assert samples(out) == [
        'up{job="shop/db",instance="db-1"} 1 1',
        'edge{job="shop/db",source_service="web",destination_service="db",'
        'note="a \\"quoted\\" value"} 2 1',
    ]
    copied = [json.loads(line) for line in (out / "cases.jsonl").read_text().splitlines()]
    assert copied[0]["alert"]["labels"] == {"alertname": "SLOBurn", "job": "shop/web"}
    assert [c["truth"] for c in copied] == [{"service": "shop/db"}] * 2
    with gzip.open(out / "logs.jsonl.gz", "rt") as logs:
        [record] = [json.loads(line) for line in logs]
    assert record["labels"] == {
        "k8s_namespace_name": "shop",
        "service_name": "db",
        "service_namespace": "shop",
        "k8s_pod_name": "db-1",
        "k8s_container_name": "server",
    }


def test_a_label_must_be_a_name_and_a_value():
    assert label_pair("cluster=eu1") == ("cluster", "eu1")
    for bad in ("cluster", "=eu1", "cluster="):
        with pytest.raises(argparse.ArgumentTypeError, match="expected NAME=VALUE"):
            label_pair(bad)
