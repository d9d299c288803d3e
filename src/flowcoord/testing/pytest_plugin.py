"""flowcoord's pytest plugin: crash-exactness checks and throw-away servers for your tests.

Installed with flowcoord (a ``pytest11`` entry point), so its fixtures are there in any test
suite that has flowcoord installed::

    async def test_provision_is_crash_exact(crash_explorer):
        await crash_explorer(make_provision_flow, {"size": 2})              # in memory
        await crash_explorer(make_provision_flow, {"size": 2}, journal="sqlite")

Fixtures:

- ``crash_explorer``: an async callable ``(flow, inputs=None, *, journal="memory", **options)``
  that runs :class:`~flowcoord.testing.CrashExplorer` over the flow and fails the test with
  every violation found; it returns the :class:`~flowcoord.testing.ExplorationReport`.
  ``journal`` is ``"memory"``, ``"sqlite"`` (a file in the test's tmp_path), ``"postgres"``
  (a fresh schema on ``flowcoord_postgres``) or a journal backend; ``options`` go to the
  explorer (``depth=2``, ``actions=[...]``, ``sample=50``, ``faults=False`` …).
- ``flowcoord_postgres``: the DSN of a PostgreSQL server for the session: a temporary cluster
  (``initdb`` on a free loopback port; needs the PostgreSQL server binaries), or the server
  named by the ``FLOWCOORD_TEST_PG_DSN`` environment variable.
- ``flowcoord_zookeeper``: a 3-node :class:`~flowcoord.testing.ZooKeeperEnsemble` on loopback
  for the session (needs ZooKeeper and Java); its ``hosts`` is the connection string.
- ``flowcoord_fault_proxy``: an async factory ``(host, port) -> FaultProxy`` whose proxies
  are closed at the end of the test; ``await proxy.cut()`` resets every connection.

Async tests need an async test runner: with anyio's pytest plugin, mark them
``@pytest.mark.anyio``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from .._journal._contract import JournalBackend
from .._model._flow import Flow
from ._explorer import CrashExplorer, ExplorationReport
from ._postgres import TemporaryPostgres
from ._proxy import FaultProxy
from ._zookeeper import ZooKeeperEnsemble

__all__ = [
    "crash_explorer",
    "flowcoord_fault_proxy",
    "flowcoord_postgres",
    "flowcoord_zookeeper",
]

PG_DSN_ENV = "FLOWCOORD_TEST_PG_DSN"

ExploreFn = Callable[..., Awaitable[ExplorationReport]]


@pytest.fixture(scope="session")
def flowcoord_postgres() -> Iterator[str]:
    """The DSN of a PostgreSQL server for this test session."""
    dsn = os.environ.get(PG_DSN_ENV)
    if dsn:
        yield dsn
        return
    with TemporaryPostgres() as server:
        yield server.dsn


@pytest.fixture(scope="session")
def flowcoord_zookeeper() -> Iterator[ZooKeeperEnsemble]:
    """A 3-node ZooKeeper ensemble on loopback for this test session."""
    with ZooKeeperEnsemble(3) as ensemble:
        yield ensemble


@pytest.fixture
async def flowcoord_fault_proxy() -> AsyncIterator[Callable[[str, int], Awaitable[FaultProxy]]]:
    """``proxy = await flowcoord_fault_proxy(host, port)``: a loopback proxy to break."""
    async with AsyncExitStack() as stack:

        async def make(host: str, port: int) -> FaultProxy:
            return await stack.enter_async_context(FaultProxy(host, port))

        yield make


@pytest.fixture
def crash_explorer(request: pytest.FixtureRequest, tmp_path: Path) -> ExploreFn:
    """``await crash_explorer(flow, inputs, journal="sqlite", **options)``: explore every
    crash and backend fault of ``flow``; fail the test on any violation."""

    async def explore(
        flow: Flow | Callable[[], Flow],
        inputs: Mapping[str, Any] | None = None,
        *,
        journal: str | JournalBackend = "memory",
        **options: Any,
    ) -> ExplorationReport:
        backend = _backend(request, tmp_path, journal)
        report = await CrashExplorer(flow, inputs, journal=backend, **options).explore()
        print(report)  # shown by pytest -s, and with the failure's captured output
        report.check()
        return report

    return explore


def _backend(
    request: pytest.FixtureRequest, tmp_path: Path, journal: str | JournalBackend
) -> JournalBackend | None:
    if isinstance(journal, JournalBackend):
        return journal
    if journal == "memory":
        return None
    if journal == "sqlite":
        from .._journal._sqlite import SQLiteJournal

        return SQLiteJournal(tmp_path / f"explore-{uuid.uuid4().hex[:8]}.sqlite")
    if journal == "postgres":
        from .._journal._postgres import PostgresJournal

        dsn: str = request.getfixturevalue("flowcoord_postgres")
        return PostgresJournal(dsn, schema=f"explore_{uuid.uuid4().hex[:12]}")
    raise ValueError(
        f"journal must be 'memory', 'sqlite', 'postgres' or a journal backend, got {journal!r}"
    )
