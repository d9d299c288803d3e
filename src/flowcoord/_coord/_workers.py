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

Queues: a worker serves ``queues`` (``--queue``, default ``default``) and declares them on
the board when they are not there yet; ``queue_limits`` (``--queue-limit NAME=N``) sets a
queue's global limit across the fleet, ``partition_limits`` (``--partition-limit NAME=N``) its
limit per partition key, ``rate_limits`` (``--rate-limit NAME=COUNT/PERIOD``) its rate limit,
``worker_limits`` (``--worker-limit NAME=N``) this worker's own.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio
import structlog

from .._engine._engine import Engine
from .._journal._contract import JournalBackend
from .._model._registry import FlowRegistry
from ..errors import ConfigurationError, CoordinationUnavailable, UnknownQueue
from ._conductor import Conductor, ConductorStats
from ._contract import Job, JobBoard, QueueConfig
from ._queueing import (
    DEFAULT_KEY_RETENTION,
    DEFAULT_QUEUE,
    check_limit,
    check_queue_name,
    check_rate_limit,
)
from ._session import SessionChange, SessionState
from ._zk_board import ZooKeeperJobBoard
from ._zk_session import ZooKeeperSession

__all__ = [
    "DEFAULT_BOARD_PATH",
    "JobSpec",
    "declare_queues",
    "open_board",
    "post_jobs",
    "run_worker",
]

log = structlog.get_logger("flowcoord.worker")

DEFAULT_BOARD_PATH = "/board"


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job to post: the registered flow's name, its inputs, an optional flow id, and where
    and when it runs (``queue``, ``priority``, ``not_before``). ``key`` (default: the flow
    id) makes the post idempotent: posting the same key again returns the job it names (see
    :meth:`JobBoard.post <flowcoord.coordination.JobBoard.post>`)."""

    flow: str
    inputs: Mapping[str, Any] = field(default_factory=dict)
    flow_id: str | None = None
    priority: int = 0
    queue: str = DEFAULT_QUEUE
    key: str | None = None
    not_before: float | datetime | None = None
    partition: str | None = None
    headers: Mapping[str, str] | None = None


@asynccontextmanager
async def open_board(
    *,
    zk_hosts: str,
    namespace: str,
    session_timeout: float = 10.0,
    auth: tuple[str, str] | None = None,
    path: str = DEFAULT_BOARD_PATH,
    key_retention: float = DEFAULT_KEY_RETENTION,
) -> AsyncIterator[ZooKeeperJobBoard]:
    """A job board on its own ZooKeeper session, closed on leaving the block.
    ``key_retention``: seconds a job's key stays taken after the job ended (every client of
    a board should use the same)."""
    async with ZooKeeperSession(
        zk_hosts, namespace=namespace, session_timeout=session_timeout, auth=auth
    ) as session:
        yield ZooKeeperJobBoard(session, path=path, key_retention=key_retention)


async def post_jobs(
    jobs: Iterable[JobSpec],
    *,
    zk_hosts: str,
    namespace: str,
    session_timeout: float = 10.0,
    auth: tuple[str, str] | None = None,
    path: str = DEFAULT_BOARD_PATH,
    key_retention: float = DEFAULT_KEY_RETENTION,
) -> list[Job]:
    """Post ``jobs`` (one ZooKeeper write each) and return them as posted: a job whose key
    was posted before comes back as the job it names (``deduplicated``; for one that ended
    within ``key_retention``, with its ``state`` and ``outcome``)."""
    async with open_board(
        zk_hosts=zk_hosts,
        namespace=namespace,
        session_timeout=session_timeout,
        auth=auth,
        path=path,
        key_retention=key_retention,
    ) as board:
        return [
            await board.post(
                j.flow,
                j.inputs,
                flow_id=j.flow_id,
                priority=j.priority,
                queue=j.queue,
                key=j.key,
                not_before=j.not_before,
                partition=j.partition,
                headers=j.headers,
            )
            for j in jobs
        ]


async def declare_queues(
    board: JobBoard,
    queues: Sequence[str],
    limits: Mapping[str, int] | None = None,
    *,
    partition_limits: Mapping[str, int] | None = None,
    rate_limits: Mapping[str, tuple[int, float]] | None = None,
) -> None:
    """Make sure ``queues`` exist on ``board``: those in ``limits`` get that global limit,
    those in ``partition_limits`` that limit per partition, those in ``rate_limits`` that
    rate limit (a limit not given stays as the board has it); the others are declared
    without limits unless they exist already (then left as they are)."""
    limits, partitions, rates = limits or {}, partition_limits or {}, rate_limits or {}
    for queue in queues:
        try:
            now = await board.queue(queue)
        except UnknownQueue:
            now = QueueConfig(queue)
        else:
            if not (queue in limits or queue in partitions or queue in rates):
                continue
        await board.declare_queue(
            queue,
            concurrency=limits.get(queue, now.concurrency),
            partition_limit=partitions.get(queue, now.partition_limit),
            rate_limit=rates.get(queue, now.rate_limit),
        )


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
    max_waiting: int = 100,
    hand_back_after: float | None = 60.0,
    shutdown_timeout: float = 30.0,
    on_ready: Callable[[Conductor], object] | None = None,
    queues: Sequence[str] = (DEFAULT_QUEUE,),
    queue_limits: Mapping[str, int] | None = None,
    worker_limits: Mapping[str, int] | None = None,
    key_retention: float = DEFAULT_KEY_RETENTION,
    partition_limits: Mapping[str, int] | None = None,
    rate_limits: Mapping[str, tuple[int, float]] | None = None,
) -> ConductorStats:
    """Run a conductor until SIGTERM/SIGINT (see the module docstring); return its stats.

    ``max_claims`` / ``max_failures``: a job claimed more than ``max_claims`` times without
    finishing (its owners died or lost their sessions; from its second claim on it ran
    alone), or given up after journal errors ``max_failures`` times, is trashed with the
    reason. ``max_waiting``: how many jobs whose workflows only wait it holds besides
    ``capacity`` busy ones; ``hand_back_after``: a workflow that only sleeps and wakes that
    many seconds from now or later is handed back to the board until it wakes (None: never;
    see :class:`~flowcoord.coordination.Conductor`).
    ``on_ready(conductor)`` is called once the conductor runs (tests and embedders
    hook listeners there). Raises :class:`~flowcoord.errors.CoordinationUnavailable` when no
    ZooKeeper server gives a session within ``session_timeout``, or when the session closes for
    good (e.g. the credentials were refused).

    ``queues``: the queues it serves, declared on the board when absent (see
    :func:`declare_queues`); ``queue_limits`` sets their global limits across the fleet (the
    last worker to start with one wins), ``partition_limits`` their limits per partition key
    and ``rate_limits`` their rate limits ``(count, period)`` likewise, ``worker_limits`` this
    worker's limit per queue. A limit below 1, or one for a queue it does not serve, is a
    ConfigurationError.
    """
    for what, value in (
        ("capacity", capacity),
        ("max_claims", max_claims),
        ("max_failures", max_failures),
    ):
        if value < 1:
            raise ConfigurationError(f"{what} must be at least 1, got {value}")
    queues = tuple(dict.fromkeys(check_queue_name(q) for q in queues))
    for queue, rate in (rate_limits or {}).items():
        check_rate_limit(rate, f"the rate limit of queue {queue!r}")
    checked = [
        ("--queue-limit", queue_limits),
        ("--worker-limit", worker_limits),
        ("--partition-limit", partition_limits),
    ]
    for what, limits in [*checked, ("--rate-limit", {q: 1 for q in rate_limits or {}})]:
        for queue, limit in (limits or {}).items():
            check_limit(limit, f"the limit of queue {queue!r}")
            if queue not in queues:
                raise ConfigurationError(
                    f"{what} for queue {queue!r}, which this worker does not serve",
                    hint=f"it serves {list(queues)}; add --queue {queue}",
                )
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
            key_retention=key_retention,
        ) as board,
        Engine(journal) as engine,
        anyio.create_task_group() as tg,
    ):
        await declare_queues(
            board,
            queues,
            queue_limits,
            partition_limits=partition_limits,
            rate_limits=rate_limits,
        )
        conductor = Conductor(
            board,
            engine,
            registry,
            name=name,
            capacity=capacity,
            max_claims=max_claims,
            max_failures=max_failures,
            max_waiting=max_waiting,
            hand_back_after=hand_back_after,
            shutdown_timeout=shutdown_timeout,
            info=info,
            queues=queues,
            worker_limits=worker_limits,
        )
        tg.start_soon(_watch_signals, stop, conductor)
        unlisten = board.session.add_listener(on_session)
        try:
            async with conductor:
                wlog.info(
                    "worker_started", namespace=namespace, capacity=capacity, queues=list(queues)
                )
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
