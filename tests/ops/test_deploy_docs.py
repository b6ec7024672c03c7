"""docs/deploy.md and docs/prometheus/rootline.rules.yml: what they tell an operator to
paste is what Prometheus and Alertmanager accept, and names only metrics Rootline has."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from investigations.models import ToolCall
from rca_site.metrics import registry
from tests.factories import make_investigation
from tests.realprometheus import PROMTOOL, require_prometheus

DOCS = Path(settings.BASE_DIR) / "docs"
DEPLOY = DOCS / "deploy.md"
RULES = DOCS / "prometheus" / "rootline.rules.yml"
RULE_TESTS = Path(__file__).with_name("rootline.rules.test.yml")
METRIC_NAME = re.compile(r"\brootline_[a-z_]+")


def run(*args, cwd=None):
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )
    assert done.returncode == 0, f"{args}:\n{done.stdout}{done.stderr}"
    return done.stdout


def doc_block(first_line):
    """The fenced block of docs/deploy.md whose first line is `first_line`."""
    for block in re.findall(r"```[a-z]*\n(.*?)```", DEPLOY.read_text(), flags=re.S):
        if block.startswith(first_line + "\n"):
            return block
    raise AssertionError(f"no block starting with {first_line!r} in {DEPLOY}")


@pytest.fixture
def families(db):
    """The metric families of a scrape, with a row behind each series."""
    investigation = make_investigation(
        status="completed", started_at=timezone.now(), finished_at=timezone.now(), model="m"
    )
    ToolCall.start(investigation, "lead", "llm_turn").end()
    return list(text_string_to_metric_families(generate_latest(registry()).decode()))


def test_the_rules_and_the_docs_name_only_metrics_rootline_exposes(families):
    exposed = {f.name for f in families} | {s.name for f in families for s in f.samples}
    named = set(METRIC_NAME.findall(RULES.read_text() + DEPLOY.read_text()))

    assert named - exposed == set()


def test_every_metric_is_in_the_docs_table(families):
    """A counter is documented with its `_total`, as it is queried."""
    table = DEPLOY.read_text()
    documented = {f.name for f in families if f"| `{f.name}` |" in table}
    documented |= {f.name for f in families if f"| `{f.name}_total` |" in table}

    assert {f.name for f in families} - documented == set()


@pytest.mark.slow
def test_the_rules_load_and_their_unit_tests_pass():
    require_prometheus()
    run(PROMTOOL, "check", "rules", RULES)
    run(PROMTOOL, "test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)


@pytest.mark.slow
def test_the_scrape_config_in_the_docs_is_valid(tmp_path):
    require_prometheus()
    token = tmp_path / "rootline-metrics-token"
    token.write_text("test-metrics-token")
    config = doc_block("# prometheus.yml").replace(
        "/etc/prometheus/secrets/rootline-metrics-token", str(token)
    )
    (tmp_path / "prometheus.yml").write_text(config)
    shutil.copy(RULES, tmp_path / "rootline.rules.yml")

    output = run(PROMTOOL, "check", "config", tmp_path / "prometheus.yml")

    assert "SUCCESS: 5 rules found" in output


@pytest.mark.slow
def test_the_alertmanager_config_in_the_docs_is_valid(tmp_path):
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool is not installed (Debian package prometheus-alertmanager)")
    token = tmp_path / "rootline-webhook-token"
    token.write_text("test-webhook-token")
    config = doc_block("# alertmanager.yml").replace(
        "/etc/alertmanager/secrets/rootline-webhook-token", str(token)
    )
    (tmp_path / "alertmanager.yml").write_text(config)

    run(amtool, "check-config", tmp_path / "alertmanager.yml")
