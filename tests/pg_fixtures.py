"""PostgreSQL fixtures (session-scoped temporary cluster, per-test schema).

- ``postgres_server``: one temporary cluster for the whole session (``None`` when the
  environment variable ``FLOWCOORD_TEST_PG_DSN`` names a server to use instead).
- ``pg_dsn``: the DSN tests connect to. Tests keep apart by schema, not by database.
- ``fresh_postgres``: a private cluster for one test, which may stop or crash it at will.

When a test fails, the part of each server log written during the test is added to its report.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator

import pytest

from flowcoord.testing import TemporaryPostgres

DSN_ENV = "FLOWCOORD_TEST_PG_DSN"
_LOG_TAIL_LINES = 150
_USED = pytest.StashKey[list[tuple[str, TemporaryPostgres, int]]]()


def _track(request: pytest.FixtureRequest, label: str, server: TemporaryPostgres) -> None:
    used = request.node.stash.setdefault(_USED, [])
    used.append((label, server, len(server.log_text())))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[TemporaryPostgres | None]:
    if os.environ.get(DSN_ENV):
        yield None
        return
    with TemporaryPostgres() as server:
        yield server


@pytest.fixture
def pg_dsn(request: pytest.FixtureRequest, postgres_server: TemporaryPostgres | None) -> str:
    if postgres_server is None:
        return os.environ[DSN_ENV]
    _track(request, "postgres_server", postgres_server)
    return postgres_server.dsn


@pytest.fixture
def fresh_postgres(request: pytest.FixtureRequest) -> Iterator[TemporaryPostgres]:
    with TemporaryPostgres() as server:
        _track(request, "fresh_postgres", server)
        yield server


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and report.when != "teardown":
        for label, server, offset in item.stash.get(_USED, []):
            lines = server.log_text()[offset:].splitlines()[-_LOG_TAIL_LINES:]
            report.sections.append((f"{label} log (tail)", "\n".join(lines) or "(empty)"))
    return report
