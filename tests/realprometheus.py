"""A real Prometheus (the Debian package) serving a backfilled scenario, for tests.

    with running_prometheus(openmetrics_text, tmp_path) as url:
        ...  # url is http://127.0.0.1:<port>, its TSDB holds exactly that scenario

The samples are written into blocks with `promtool tsdb create-blocks-from openmetrics`
before Prometheus starts, so queries see them at their own timestamps (Prometheus keeps
them for 100 years). By default nothing is scraped, and times at least 3 hours in the past
keep the scenario clear of the head block. With a `config` that scrapes (and `rules` to
evaluate), the history may run up to the present: Prometheus takes scraped samples newer
than the newest backfilled one, so a history labelled as the scrape labels its samples
(`job`, `instance`) continues as one series. Where Prometheus is not installed the test
is skipped, saying so; under CI=true it fails instead, because CI is meant to have it.
"""

import contextlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.processes import Process, free_port, wait_ready

PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")
READY_TIMEOUT_SECONDS = 30
# Scrapes nothing: the backfilled blocks are all the data there is.
CONFIG = {"global": {"evaluation_interval": "1m"}}


def require_prometheus():
    missing = [str(p) for p in (PROMETHEUS, PROMTOOL) if not os.access(p, os.X_OK)]
    if not missing:
        return
    reason = f"{', '.join(missing)} not installed (Debian package prometheus)"
    if os.getenv("CI") == "true":
        pytest.fail(f"{reason}, and CI must run the real-Prometheus tests", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def running_prometheus(openmetrics_text, tmp_path, *, config=None, rules=None):
    """Backfill `openmetrics_text` (ending in "# EOF") and serve it; yields the base URL.

    `config` (a dict) replaces the configuration that scrapes nothing; `rules`, a list of
    rule groups, is written to a rule file the configuration loads. Prometheus is always
    stopped on the way out (SIGTERM, then SIGKILL).
    """
    require_prometheus()
    tmp_path = Path(tmp_path)
    scenario = tmp_path / "scenario.om"
    scenario.write_text(openmetrics_text)
    tsdb = tmp_path / "tsdb"
    backfill = subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", scenario, tsdb],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if backfill.returncode != 0:
        pytest.fail(f"promtool could not backfill:\n{backfill.stdout}{backfill.stderr}")
    settings = dict(CONFIG if config is None else config)
    if rules is not None:
        rule_file = tmp_path / "rules.yml"
        rule_file.write_text(json.dumps({"groups": rules}))  # JSON is YAML
        settings["rule_files"] = [str(rule_file)]
    with serving_prometheus(json.dumps(settings), tmp_path) as url:
        yield url


@contextlib.contextmanager
def serving_prometheus(config_text, tmp_path):
    """Prometheus with `config_text` as its configuration and its TSDB in tmp_path/tsdb,
    on a free loopback port; yields the base URL once it is ready, stops it afterwards."""
    require_prometheus()
    tmp_path = Path(tmp_path)
    config = tmp_path / "prometheus.yml"
    config.write_text(config_text)
    port = free_port()
    process = Process(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            "--storage.tsdb.retention.time=100y",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        tmp_path / "prometheus.log",
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(process, url, READY_TIMEOUT_SECONDS)
        yield url
    finally:
        process.stop()


def prometheus_fixture(scenario, *, config=None):
    """A module-scoped fixture, `prometheus_url`, of a real Prometheus serving the
    OpenMetrics text `scenario()` returns (see running_prometheus, and for `config`):

        prometheus_url = prometheus_fixture(openmetrics)
    """

    @pytest.fixture(scope="module")
    def prometheus_url(tmp_path_factory):
        tmp_path = tmp_path_factory.mktemp("prometheus")
        with running_prometheus(scenario(), tmp_path, config=config) as url:
            yield url

    return prometheus_url
