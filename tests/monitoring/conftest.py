from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.monitoring import gateway


@pytest.fixture(autouse=True)
def _empty_queues() -> Iterator[None]:
    """Each test starts and ends with empty metrics and mirror-pair lists in the real Redis."""
    gateway.clear()
    yield
    gateway.clear()
