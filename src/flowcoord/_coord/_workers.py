"""Workers: a long-running conductor process on a ZooKeeper job board, and job posting.

``flowcoord worker --zk HOSTS --namespace NS --journal URL --registry module:attr`` runs
:func:`run_worker`: one ZooKeeper session, one job board, one engine on the journal, one
conductor claiming up to ``capacity`` jobs. SIGTERM or SIGINT stops it gracefully: running
flows start no new task, running tasks finish (up to ``shutdown_timeout``), and their jobs are
abandoned for another worker to resume from the journal; a second signal aborts the running
tasks at once (their jobs are abandoned all the same). Producers post jobs with
:func:`post_jobs` or through :func:`open_board`.

Poison jobs: a job whose earlier claim ended without it finishing runs alone on its worker
(see :class:`~flowcoord.coordination.Conductor`); one claimed more than ``max_claims`` times
(``--max-claims``) or given up after errors ``max_failures`` times (``--max-failures``) goes to
the board's trash with the reason.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog

from .._engine._engine import Engine
from .._journal._contract import JournalBackend
from .._model._registry import FlowRegistry
from ..errors import ConfigurationError, CoordinationUnavailable
from ._conductor import Conductor, ConductorStats
from ._contract import Job
from ._session import SessionChange, SessionState
from ._zk_board import ZooKeeperJobBoard
from ._zk_session import ZooKeeperSession

__all__ = ["DEFAULT_BOARD_PATH", "JobSpec", "open_board", "post_jobs", "run_worker"]

log = structlog.get_logger("flowcoord.worker")

DEFAULT_BOARD_PATH = "/board"


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job to post: the registered flow's name, its inputs, an optional flow id (it makes
    the post idempotent for the journal: a second job with the same id resumes that flow)."""

    flow: str
    inputs: Mapping[str, Any] = field(default_factory=dict)
    flow_id: str | None = None
    priority: int = 0


@asynccontextmanager
async def open_board(
    *,
    zk_hosts: str,
    namespace: str,
    session_timeout: float = 10.0,
    auth: tuple[str, str] | None = None,
    path: str = DEFAULT_BOARD_PATH,
) -> AsyncIterator[ZooKeeperJobBoard]:
    """A job board on its own ZooKeeper session, closed on leaving the block."""
    async with ZooKeeperSession(
        zk_hosts, namespace=namespace, session_timeout=session_timeout, auth=auth
    ) as session:
        yield ZooKeeperJobBoard(session, path=path)


async def post_jobs(
    jobs: Iterable[JobSpec],
    *,
    zk_hosts: str,
    namespace: str,
    session_timeout: float = 10.0,
    auth: tuple[str, str] | None = None,
    path: str = DEFAULT_BOARD_PATH,
) -> list[Job]:
    """Post ``jobs`` (one ZooKeeper write each) and return them as posted."""
    async with open_board(
        zk_hosts=zk_hosts,
        namespace=namespace,
        session_timeout=session_timeout,
        auth=auth,
        path=path,
    ) as board:
        return [
            await board.post(j.flow, j.inputs, flow_id=j.flow_id, priority=j.priority) for j in jobs
        ]


async def run_worker(
    *,
    zk_hosts: str,
    namespace: str,
    journal: JournalBackend,
    registry: FlowRegistry,
    name: str | None = None,
    capacity: int = 10,
    session_timeout: float = 10.0,
    auth: tuple[str, str] | None = None,
    path: str = DEFAULT_BOARD_PATH,
    max_claims: int = 5,
    max_failures: int = 3,
    shutdown_timeout: float = 30.0,
    on_ready: Callable[[Conductor], object] | None = None,
) -> ConductorStats:
    """Run a conductor until SIGTERM/SIGINT (see the module docstring); return its stats.

    ``max_claims`` / ``max_failures``: a job claimed more than ``max_claims`` times without
    finishing (its owners died or lost their sessions; from its second claim on it ran
    alone), or given up after journal errors ``max_failures`` times, is trashed with the
    reason. ``on_ready(conductor)`` is called once the conductor runs (tests and embedders
    hook listeners there). Raises :class:`~flowcoord.errors.CoordinationUnavailable` when no
    ZooKeeper server gives a session within ``session_timeout``, or when the session closes for
    good (e.g. the credentials were refused).
    """
    for what, value in (
        ("capacity", capacity),
        ("max_claims", max_claims),
        ("max_failures", max_failures),
    ):
        if value < 1:
            raise ConfigurationError(f"{what} must be at least 1, got {value}")
    name = name or f"{socket.gethostname()}-{os.getpid()}"
    info = {"host": socket.gethostname(), "pid": os.getpid(), "started_at": time.time()}
    wlog = log.bind(worker=name)
    stop = anyio.Event()
    failure: list[BaseException] = []

    def on_session(change: SessionChange) -> None:
        if change.state is SessionState.CLOSED and not stop.is_set():
            failure.append(CoordinationUnavailable(f"ZooKeeper session closed: {change.reason}"))
            stop.set()

    async with (
        open_board(
            zk_hosts=zk_hosts,
            namespace=namespace,
            session_timeout=session_timeout,
            auth=auth,
            path=path,
        ) as board,
        Engine(journal) as engine,
        anyio.create_task_group() as tg,
    ):
        conductor = Conductor(
            board,
            engine,
            registry,
            name=name,
            capacity=capacity,
            max_claims=max_claims,
            max_failures=max_failures,
            shutdown_timeout=shutdown_timeout,
            info=info,
        )
        tg.start_soon(_watch_signals, stop, conductor)
        unlisten = board.session.add_listener(on_session)
        try:
            async with conductor:
                wlog.info("worker_started", namespace=namespace, capacity=capacity)
                if on_ready is not None:
                    on_ready(conductor)
                await stop.wait()
                wlog.info("worker_stopping", running=len(conductor.running))
        finally:
            unlisten()
            tg.cancel_scope.cancel()
    wlog.info("worker_stopped", **vars(conductor.stats))
    if failure:
        raise failure[0]
    return conductor.stats


async def _watch_signals(stop: anyio.Event, conductor: Conductor) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if not stop.is_set():
                log.info("signal", signal=signal.Signals(signum).name, action="graceful stop")
                stop.set()
                continue
            log.warning("signal", signal=signal.Signals(signum).name, action="abort tasks")
            for running in list(conductor.running.values()):
                if running.handle is not None:
                    running.handle.abort("the worker was told to stop at once")
