"""Shared test configuration. Server fixtures live in their own plugin modules."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.pg_fixtures", "tests.zk_fixtures"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
