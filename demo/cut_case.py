"""Cut one incident out of a case pack: a pack of its own, holding that case and only the
metric samples and log lines inside its window.

    .venv/bin/python demo/cut_case.py PACK_DIR CASE_ID OUT_DIR

This is how demo/data/ was made from shared/data/rca-cases (its README says from what).
Nothing is changed on the way: every kept line is the pack's own, in the pack's format
(shared/data/rca-cases/README.md), so the cut replays exactly as the full pack would for
that case, as long as the window covers what an investigation reads.
"""

import argparse
import gzip
import io
import json
from datetime import datetime
from pathlib import Path

NANOSECONDS_PER_SECOND = 10**9
CUT_NOTES_END = "The pack's own notes follow."


def cut_case(pack_dir, case_id, out_dir):
    """Write the cut into `out_dir` (created) and return its pack.json as a dict."""
    pack_dir, out_dir = Path(pack_dir), Path(out_dir)
    pack = json.loads((pack_dir / "pack.json").read_text())
    lines = (pack_dir / "cases.jsonl").read_text().splitlines()
    case_line = next((line for line in lines if json.loads(line)["id"] == case_id), None)
    if case_line is None:
        raise SystemExit(f"no case {case_id} in {pack_dir / 'cases.jsonl'}")
    window = json.loads(case_line)["window"]
    start, end = (datetime.fromisoformat(window[k]).timestamp() for k in ("start", "end"))

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "cases.jsonl").write_text(case_line + "\n")
    samples = _cut_metrics(pack_dir / "metrics.om.gz", out_dir / "metrics.om.gz", start, end)
    log_lines = 0
    if "logs" in pack.get("modalities", []):
        log_lines = _cut_logs(pack_dir / "logs.jsonl.gz", out_dir / "logs.jsonl.gz", start, end)
    notes = (
        f"Cut from the {pack['name']} pack by demo/cut_case.py: case {case_id} only, with the "
        f"{samples} metric samples and {log_lines} log lines of its window, {window['start']} "
        f"to {window['end']}. {CUT_NOTES_END} {pack['notes']}"
    )
    cut = {**pack, "name": out_dir.name, "cases": 1, "notes": notes}
    (out_dir / "pack.json").write_text(json.dumps(cut, indent=2) + "\n")
    return cut


def _gzip_text(path):
    """A gzip file to write text to, the same bytes for the same text (no time in it)."""
    return io.TextIOWrapper(gzip.GzipFile(path, "wb", mtime=0), encoding="utf-8")


def _cut_metrics(source, target, start, end):
    """Keep each family's HELP and TYPE lines and its samples inside [start, end]; a family
    left without samples is dropped. Returns the number of samples kept."""
    kept = 0
    family, header, header_written = None, [], False
    with gzip.open(source, "rt", encoding="utf-8") as lines, _gzip_text(target) as out:
        for line in lines:
            if line.startswith("# EOF"):
                break
            if line.startswith("#"):
                name = line.split(maxsplit=3)[2]
                if name != family:
                    family, header, header_written = name, [], False
                header.append(line)
                continue
            # name{labels} value timestamp: the timestamp is the last field.
            if start <= float(line.rsplit(" ", 1)[1]) <= end:
                if not header_written:
                    out.writelines(header)
                    header_written = True
                out.write(line)
                kept += 1
        out.write("# EOF\n")
    return kept


def _cut_logs(source, target, start, end):
    kept = 0
    low, high = start * NANOSECONDS_PER_SECOND, end * NANOSECONDS_PER_SECOND
    with gzip.open(source, "rt", encoding="utf-8") as lines, _gzip_text(target) as out:
        for line in lines:
            if low <= int(json.loads(line)["ts_ns"]) <= high:
                out.write(line)
                kept += 1
    return kept


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pack", type=Path, help="a case pack directory")
    parser.add_argument("case", help="the id of one case in its cases.jsonl")
    parser.add_argument("out", type=Path, help="the directory to write the cut pack to")
    args = parser.parse_args()
    cut = cut_case(args.pack, args.case, args.out)
    print(cut["notes"].split(CUT_NOTES_END)[0].strip())


if __name__ == "__main__":
    main()
