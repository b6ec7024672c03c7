import pytest

from investigations.telemetry import clear_cache


@pytest.fixture(autouse=True)
def fresh_cache():
    """Each test starts with no cached answers (the cache is per process)."""
    clear_cache()
    yield
    clear_cache()
