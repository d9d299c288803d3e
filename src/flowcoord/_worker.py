"""The worker: a long-running conductor process on a ZooKeeper job board, and job posting.

``flowcoord worker --zk HOSTS --namespace NS --journal URL --registry module:attr`` runs
:func:`run_worker`: one ZooKeeper session, one job board, one engine on the journal, one
conductor claiming up to ``capacity`` jobs. SIGTERM or SIGINT stops it gracefully: running
flows start no new task, running tasks finish (up to ``shutdown_timeout``), and their jobs are
abandoned for another worker to resume from the journal; a second signal aborts the running
tasks at once (their jobs are abandoned all the same). Producers post jobs with
:func:`post_jobs` or through :func:`open_board`.

Poison jobs: a job whose earlier claim ended without it finishing runs alone on its worker
(see :class:`~flowcoord.Conductor`); one claimed more than ``max_claims`` times (``--max-claims``)
or given up after errors ``max_failures`` times (``--max-failures``) goes to the board's trash
with the reason.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog

from ._args import int_in
from ._coord._conductor import Conductor, ConductorStats
from ._coord._contract import Job
from ._coord._zk_board import ZooKeeperJobBoard
from ._coord._zk_session import ZooKeeperSession
from ._coord._zk_types import SessionState, StateChange
from ._engine._engine import Engine
from ._journal._contract import JournalBackend
from ._registry import FlowRegistry
from .errors import ConfigurationError, CoordinationUnavailable

__all__ = ["JobSpec", "open_board", "post_jobs", "run_worker", "worker_options", "worker_parser"]

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
    hook listeners there). Raises :class:`~flowcoord.CoordinationUnavailable` when no ZooKeeper
    server gives a session within ``session_timeout``, or when the session closes for good
    (e.g. the credentials were refused).
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

    def on_session(change: StateChange) -> None:
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


def worker_parser(prog: str = "flowcoord worker") -> argparse.ArgumentParser:
    """The ``flowcoord worker`` options (parsed by the CLI, run by :func:`run_worker`)."""
    p = argparse.ArgumentParser(
        prog=prog, description="Take flows from a ZooKeeper job board and run them."
    )
    p.add_argument("--zk", required=True, metavar="HOSTS", help="host:port[,host:port...]")
    p.add_argument("--namespace", default="/flowcoord", help="ZooKeeper chroot (/flowcoord)")
    p.add_argument("--journal", required=True, metavar="URL", help="the journal's URL")
    p.add_argument("--registry", required=True, metavar="module:attr", help="a FlowRegistry")
    p.add_argument("--capacity", type=_positive_int, default=10, help="jobs at once (10)")
    p.add_argument("--name", help="member name (default: host-pid)")
    p.add_argument(
        "--session-timeout", type=_positive_float, default=10.0, metavar="S", help="seconds (10)"
    )
    p.add_argument("--board", default=DEFAULT_BOARD_PATH, help="board path in the namespace")
    p.add_argument(
        "--gc-threshold",
        type=_positive_int,
        metavar="N",
        help="raise the garbage collector's first threshold to N (e.g. 20000): far fewer "
        "full collections when many flows start at once; Python's default is 700",
    )
    p.add_argument(
        "--zk-auth",
        metavar="USER:PASS",
        default=os.environ.get("FLOWCOORD_ZK_AUTH"),
        help="ZooKeeper digest credentials (or $FLOWCOORD_ZK_AUTH); nodes get a digest ACL",
    )
    p.add_argument(
        "--max-claims",
        type=_positive_int,
        default=5,
        metavar="N",
        help="trash a job claimed more than N times without finishing, i.e. whose owners "
        "kept dying (5). A job re-claimed after its owner died runs alone, so a poison job "
        "is charged its own deaths and the jobs beside it survive; keep N >= 2",
    )
    p.add_argument(
        "--max-failures",
        type=_positive_int,
        default=3,
        metavar="N",
        help="trash a job given up after journal errors N times (3)",
    )
    p.add_argument(
        "--shutdown-timeout",
        type=_positive_float,
        default=30.0,
        metavar="S",
        help="on SIGTERM, wait this long for running tasks before aborting them (30)",
    )
    return p


def worker_options(argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``flowcoord worker`` arguments (exits with status 2 on bad usage)."""
    return worker_parser().parse_args(list(argv))


def _positive_int(text: str) -> int:
    return int_in(text, 1, None, "a positive integer")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value
