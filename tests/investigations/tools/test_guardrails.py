"""investigations/tools/guardrails.py: what a query may ask for."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from investigations.tools.guardrails import (
    MAX_LOG_RANGE,
    MAX_POINTS_PER_SERIES,
    GuardrailError,
    check_query,
    check_series_count,
    choose_step,
    line_limit,
    parse_time,
    time_range,
)

NOW = datetime(2026, 11, 25, 4, 30, tzinfo=UTC)
INCIDENT = (NOW - timedelta(minutes=30), NOW)


def logs_range(start=None, end=None):
    return time_range(
        start, end, default=INCIDENT, now=NOW, max_range=MAX_LOG_RANGE, what="a log query"
    )


def test_the_default_range_is_the_incident_window():
    assert (logs_range().start, logs_range().end) == INCIDENT


def test_times_are_rfc3339_or_unix_seconds():
    assert parse_time("2026-11-25T04:00:00Z", "start") == datetime(2026, 11, 25, 4, tzinfo=UTC)
    assert parse_time("2026-11-25T05:00:00+01:00", "start") == datetime(2026, 11, 25, 4, tzinfo=UTC)
    assert parse_time(1795579200, "start") == datetime.fromtimestamp(1795579200, UTC)
    with pytest.raises(GuardrailError, match="start='yesterday' is not a time; use RFC 3339"):
        parse_time("yesterday", "start")


def test_no_data_after_the_investigations_now_is_read():
    assert logs_range(end="2026-11-25T09:00:00Z").end == NOW


def test_an_empty_range_is_refused_saying_why():
    with pytest.raises(GuardrailError, match="the range is empty"):
        logs_range(start="2026-11-25T05:00:00Z")


def test_a_range_over_the_cap_is_refused_with_what_to_narrow():
    with pytest.raises(GuardrailError, match=r"at most 6h; this range covers 7h\. Narrow"):
        logs_range(start=NOW - timedelta(hours=7))


@given(st.integers(min_value=1, max_value=400 * 86400))
def test_the_chosen_step_stays_in_bounds_and_under_the_point_cap(range_seconds):
    step = choose_step(range_seconds)

    assert range_seconds / step <= MAX_POINTS_PER_SERIES
    assert step >= 60
    if range_seconds <= 300 * MAX_POINTS_PER_SERIES:
        assert step <= 300


@pytest.mark.parametrize(("hours", "step"), [(0.5, 60), (1, 60), (6, 180), (24, 300)])
def test_steps_for_common_ranges(hours, step):
    assert choose_step(hours * 3600) == step


def test_a_requested_step_over_the_point_cap_is_refused_with_the_smallest_that_fits():
    with pytest.raises(GuardrailError, match=r"use step >= 8s"):
        choose_step(86400, requested=1)
    assert choose_step(3600, requested=15) == 15


def test_line_limits():
    assert line_limit(None) == 500
    assert line_limit(20) == 20
    with pytest.raises(GuardrailError, match=r"outside 1\.\.1000"):
        line_limit(5000)


def test_queries_must_be_present_and_short():
    assert check_query('  {service="x"} ', "LogQL") == '{service="x"}'
    with pytest.raises(GuardrailError, match="LogQL query is empty"):
        check_query("", "LogQL")
    with pytest.raises(GuardrailError, match="over 2000 characters"):
        check_query("x" * 2001, "PromQL")


def test_too_many_series_are_refused_with_advice_to_aggregate():
    check_series_count(200, "up")
    with pytest.raises(GuardrailError, match="aggregate it"):
        check_series_count(201, "up")
