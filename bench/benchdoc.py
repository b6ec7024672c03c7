"""What the benchmarks share to write docs/BENCHMARKS.md: the commit they measured, the
percentile they report, and replacing their own section (or subsections) while keeping
everything else."""

import math
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def git_describe():
    """`git describe --always --dirty` of the checkout, or "unknown"."""
    described = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    )
    return described.stdout.strip() or "unknown"


def nearest_rank(values, share):
    """The `share` (0..1] percentile of `values` by the nearest-rank method: the smallest
    value with at least that share of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


def replace_section(path, title, section):
    """Replace the section that starts with `title` ("## ..."), or add it at the end."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    head, found, rest = text.partition(title)
    if found:
        _, next_title, tail = rest.partition("\n## ")
        text = head + section + ("\n## " + tail if next_title else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def replace_subsections(path, title, intro, sections, order):
    """Rewrite section `title` ("## ...") as `intro` and its "### " subsections: those in
    `sections` ({name: text}) replace or join the ones there, the others (hand-written
    ones included) are kept; `order(names)` gives the order. Other sections stay."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    head, found, rest = text.partition(title + "\n")
    rest, sep, after = rest.partition("\n## ")
    kept = {}
    for chunk in ("\n" + rest).split("\n### ")[1:] if found else []:
        kept[chunk.split("\n", 1)[0].strip()] = "### " + chunk.strip() + "\n"
    kept.update(sections)
    body = "\n".join(kept[name] for name in order(list(kept)))
    tail = f"\n## {after}" if sep else ""
    path.write_text(f"{head.rstrip()}\n\n{title}\n\n{intro}\n{body}{tail}")
