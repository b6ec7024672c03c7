"""demo/cut_case.py: one case out of a pack, with only its window's samples and lines."""

import gzip
import json

from demo.cut_case import cut_case

# 2023-01-29T09:00:00Z and the case's window around it.
T = 1674982800
WINDOW = {"start": "2023-01-29T08:59:00Z", "end": "2023-01-29T09:01:00Z"}
LABELS = '{namespace="shop",service="cart",pod="cart-1"}'


def case(case_id, window):
    return {"id": case_id, "alert": {"labels": {}}, "truth": {"service": "cart"}, "window": window}


def write_pack(path, modalities=("metrics", "logs")):
    path.mkdir()
    pack = {"name": "shop", "cases": 2, "modalities": list(modalities), "notes": "As recorded."}
    (path / "pack.json").write_text(json.dumps(pack))
    later = {"start": "2023-01-29T10:00:00Z", "end": "2023-01-29T10:05:00Z"}
    cases = [case("shop-1", WINDOW), case("shop-2", later)]
    (path / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    metrics = [
        "# HELP cpu_ratio CPU\n",
        "# TYPE cpu_ratio gauge\n",
        f"cpu_ratio{LABELS} 0.1 {T - 120}.000\n",
        f"cpu_ratio{LABELS} 0.2 {T - 60}.000\n",
        f"cpu_ratio{LABELS} 0.9 {T + 59}.500\n",
        f"cpu_ratio{LABELS} 0.3 {T + 3600}.000\n",
        "# HELP queue_depth Later only\n",
        "# TYPE queue_depth gauge\n",
        f"queue_depth{LABELS} 7 {T + 3600}.000\n",
        "# HELP memory_ratio Memory\n",
        "# TYPE memory_ratio gauge\n",
        f"memory_ratio{LABELS} 0.5 {T}.000\n",
        "# EOF\n",
    ]
    with gzip.open(path / "metrics.om.gz", "wt") as out:
        out.writelines(metrics)
    lines = [(T - 61, "before"), (T, "during"), (T + 60, "at the end"), (T + 3600, "later")]
    with gzip.open(path / "logs.jsonl.gz", "wt") as out:
        for ts, line in lines:
            entry = {"labels": {"service": "cart"}, "ts_ns": str(ts * 10**9), "line": line}
            out.write(json.dumps(entry) + "\n")


def read_gz(path):
    with gzip.open(path, "rt") as lines:
        return lines.read().splitlines()


def test_only_the_case_and_its_window_are_kept(tmp_path):
    write_pack(tmp_path / "shop")

    cut = cut_case(tmp_path / "shop", "shop-1", tmp_path / "shop-demo")

    out = tmp_path / "shop-demo"
    assert [json.loads(line)["id"] for line in (out / "cases.jsonl").read_text().splitlines()] == [
        "shop-1"
    ]
    assert read_gz(out / "metrics.om.gz") == [
        "# HELP cpu_ratio CPU",
        "# TYPE cpu_ratio gauge",
        f"cpu_ratio{LABELS} 0.2 {T - 60}.000",
        f"cpu_ratio{LABELS} 0.9 {T + 59}.500",
        "# HELP memory_ratio Memory",
        "# TYPE memory_ratio gauge",
        f"memory_ratio{LABELS} 0.5 {T}.000",
        "# EOF",
    ]
    assert [json.loads(line)["line"] for line in read_gz(out / "logs.jsonl.gz")] == [
        "during",
        "at the end",
    ]
    assert json.loads((out / "pack.json").read_text()) == cut
    assert (cut["name"], cut["cases"]) == ("shop-demo", 1)
    assert cut["notes"].startswith("Cut from the shop pack by demo/cut_case.py: case shop-1")
    assert "3 metric samples and 2 log lines" in cut["notes"]
    assert cut["notes"].endswith("As recorded.")


def test_a_pack_without_logs_gets_none(tmp_path):
    write_pack(tmp_path / "shop", modalities=("metrics",))

    cut_case(tmp_path / "shop", "shop-1", tmp_path / "shop-demo")

    assert not (tmp_path / "shop-demo" / "logs.jsonl.gz").exists()


def test_the_same_cut_is_the_same_bytes(tmp_path):
    write_pack(tmp_path / "shop")

    cut_case(tmp_path / "shop", "shop-1", tmp_path / "a" / "shop-demo")
    cut_case(tmp_path / "shop", "shop-1", tmp_path / "b" / "shop-demo")

    for name in ("metrics.om.gz", "logs.jsonl.gz", "pack.json", "cases.jsonl"):
        assert (tmp_path / "a" / "shop-demo" / name).read_bytes() == (
            tmp_path / "b" / "shop-demo" / name
        ).read_bytes()
