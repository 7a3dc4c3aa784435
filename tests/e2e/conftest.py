"""Every test module stops the pantsd processes its ./pants runs started (a copy of the
repository shared by the tests of a module keeps its pantsd until the last one)."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.e2e.repo import stop_all_pantsd


@pytest.fixture(autouse=True, scope="module")
def _stop_pantsd() -> Iterator[None]:
    yield
    stop_all_pantsd()
