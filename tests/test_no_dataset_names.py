"""No name from the case packs appears in product code: not a dataset, system or namespace,
no service name that is not a plain word, no metric family. The signal scan must work on
metrics and services it has never seen (issue 4); the packs are for measuring it, not for
fitting it to them."""

import gzip
import json
import re
from pathlib import Path

import pytest

from tests.shared import SHARED_DIR

ROOT = Path(__file__).resolve().parent.parent
PRODUCT_DIRS = ("accounts", "alerts", "investigations", "rca_site", "templates")
PRODUCT_SUFFIXES = {".py", ".html", ".txt", ".md"}
PACKS_DIR = SHARED_DIR / "data" / "rca-cases"
# A plain word ("user", "orders", "frontend") names a service in a pack and a thing in the
# code alike; an identifier (a hyphen, an underscore, a digit, an inner capital, a
# "...service") names only the pack's.
IDENTIFIER = re.compile(r"[-_ 0-9]|[a-z][A-Z]|service$")


def pack_names():
    """The names to look for: every pack's name and the dataset it names first ("nezha" of
    "nezha-ob"), its system and namespace, and the services, alert names and metric
    families of its cases that are identifiers."""
    always, names = set(), set()
    for pack_json in sorted(PACKS_DIR.glob("*/pack.json")):
        pack = json.loads(pack_json.read_text())
        always |= {pack["name"], pack["name"].split("-")[0], pack["system"], pack["namespace"]}
        for line in (pack_json.parent / "cases.jsonl").read_text().splitlines():
            case = json.loads(line)
            names |= {case["truth"]["service"], case["alert"]["labels"]["alertname"]}
        with gzip.open(pack_json.parent / "metrics.om.gz", "rt") as metrics:
            names |= {line.split()[2] for line in metrics if line.startswith("# TYPE ")}
    return always | {name for name in names if IDENTIFIER.search(name)}


def test_no_pack_name_in_product_code():
    names = pack_names()
    if not names:
        pytest.skip(f"no case packs under {PACKS_DIR}")
    pattern = re.compile("|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)), re.I)
    found = [
        f"{path.relative_to(ROOT)}:{number}: {match[0]}"
        for directory in PRODUCT_DIRS
        for path in sorted((ROOT / directory).rglob("*"))
        if path.suffix in PRODUCT_SUFFIXES
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if (match := pattern.search(line))
    ]
    assert found == []
