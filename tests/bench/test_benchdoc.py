"""The percentile every benchmark reports (bench/benchdoc.py)."""

import pytest
from benchdoc import nearest_rank


@pytest.mark.parametrize(
    ("share", "expected"), [(0.05, 15), (0.3, 20), (0.4, 20), (0.5, 35), (0.95, 50), (1.0, 50)]
)
def test_nearest_rank_is_the_smallest_value_with_that_share_at_or_below_it(share, expected):
    assert nearest_rank([50, 15, 40, 20, 35], share) == expected  # order does not matter


def test_the_p95_of_twenty_latencies_is_the_nineteenth():
    assert nearest_rank(range(1, 21), 0.95) == 19
