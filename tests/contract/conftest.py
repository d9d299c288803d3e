"""One contract, every backend: the ``journal_backend`` fixture yields each journal in turn,
``board_service`` (and ``boards``, two boards of it) each job board."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import TaskGroup, TaskStatus

from flowcoord._coord._contract import JobBoard
from flowcoord._coord._memory import MemoryCoordinator, MemoryJobBoard
from flowcoord._journal._contract import JournalBackend
from flowcoord._journal._memory import MemoryJournal


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def journal_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[JournalBackend]:
    backend: JournalBackend
    if request.param == "memory":
        backend = MemoryJournal()
    elif request.param == "sqlite":
        from flowcoord._journal._sqlite import SQLiteJournal

        backend = SQLiteJournal(tmp_path / "journal.sqlite")
    else:
        from flowcoord._journal._postgres import PostgresJournal

        dsn: str = request.getfixturevalue("pg_dsn")
        backend = PostgresJournal(dsn, schema=f"t_{uuid.uuid4().hex[:12]}")
    async with backend:
        yield backend


# -- job boards -----------------------------------------------------------------------------


class BoardService:
    """Job boards on one coordination service (an in-memory coordinator, or a ZooKeeper
    server and namespace), each with its own session; ``close`` ends a board's session as
    a dead owner's ends (its claims, slots and memberships vanish). A ZooKeeper session
    runs in a task of its own, so sessions can close in any order."""

    def __init__(self, kind: str, tg: TaskGroup, hosts: str = "", namespace: str = "") -> None:
        self.kind = kind
        self.hosts = hosts
        self.namespace = namespace
        self._tg = tg
        self._coords: dict[float, MemoryCoordinator] = {}
        self._stops: dict[int, tuple[anyio.Event, anyio.Event]] = {}

    async def board(self, *, key_retention: float = 86400.0, shard_size: int = 512) -> JobBoard:
        if self.kind == "memory":
            coord = self._coords.setdefault(
                key_retention, MemoryCoordinator(key_retention=key_retention)
            )
            return coord.board()
        from flowcoord._coord._zk_board import ZooKeeperJobBoard

        stop, stopped = anyio.Event(), anyio.Event()
        session = await self._tg.start(self._session, stop, stopped)
        board = ZooKeeperJobBoard(session, key_retention=key_retention, shard_size=shard_size)
        self._stops[id(board)] = (stop, stopped)
        return board

    async def _session(
        self, stop: anyio.Event, stopped: anyio.Event, *, task_status: TaskStatus[Any]
    ) -> None:
        from flowcoord._coord._zk_session import ZooKeeperSession

        try:
            async with ZooKeeperSession(
                self.hosts, namespace=self.namespace, session_timeout=4.0
            ) as session:
                task_status.started(session)
                await stop.wait()
        finally:
            stopped.set()

    async def close(self, board: JobBoard) -> None:
        if self.kind == "memory":
            assert isinstance(board, MemoryJobBoard)
            board.session.close()
            return
        stop, stopped = self._stops.pop(id(board))
        stop.set()
        with anyio.fail_after(10):
            await stopped.wait()

    async def aclose(self) -> None:
        for stop, stopped in list(self._stops.values()):
            stop.set()
            with anyio.fail_after(10):
                await stopped.wait()
        self._stops.clear()


@pytest.fixture(params=["memory", pytest.param("zookeeper", marks=pytest.mark.zookeeper)])
async def board_service(request: pytest.FixtureRequest) -> AsyncIterator[BoardService]:
    """Makes job boards of one kind (memory, then ZooKeeper) sharing one service."""
    hosts = namespace = ""
    if request.param == "zookeeper":
        hosts = request.getfixturevalue("zk_hosts")
        namespace = request.getfixturevalue("zk_namespace")
    async with anyio.create_task_group() as tg:
        service = BoardService(request.param, tg, hosts, namespace)
        try:
            yield service
        finally:
            await service.aclose()


@pytest.fixture
async def boards(board_service: BoardService) -> tuple[JobBoard, JobBoard]:
    """Two boards on one coordination service, each with its own session."""
    return await board_service.board(), await board_service.board()
