"""The one way tests read shared/fixtures (never copied into the tree)."""

import json
import os
from pathlib import Path

# ROOTLINE_SHARED_DIR, else shared/ beside the checkout (/work/main -> /work/shared), else
# the workplace's /work/shared (a clone elsewhere, e.g. CI's).
_CANDIDATES = [Path(__file__).resolve().parents[2] / "shared", Path("/work/shared")]
SHARED_DIR = Path(
    os.getenv("ROOTLINE_SHARED_DIR") or next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0])
)
FIXTURES_DIR = SHARED_DIR / "fixtures"


def fixture(name):
    """A recorded response, e.g. fixture("alertmanager/firing_group_of_13.json")."""
    return json.loads((FIXTURES_DIR / name).read_text())


def alertmanager_body(name):
    """The webhook JSON of one recorded Alertmanager delivery."""
    return fixture(f"alertmanager/{name}.json")["body"]


def alertmanager_fixture_names():
    return sorted(p.stem for p in (FIXTURES_DIR / "alertmanager").glob("*.json"))
