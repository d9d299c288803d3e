"""The conductor: claims jobs from a board and runs them on an engine, one owner at a time."""

from __future__ import annotations

import functools
import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from types import TracebackType
from typing import Any

import anyio
import structlog
from anyio.abc import TaskGroup

from .._aio import close_task_group
from .._engine._engine import Engine, FlowHandle
from .._model._registry import FlowRegistry
from .._states import FlowState
from ..errors import (
    ConfigurationError,
    CoordinationError,
    FlowDefinitionError,
    JournalError,
    OwnershipLost,
    UnknownQueue,
)
from ._claims_held import ClaimKeeper, ConductorStats, Running
from ._contract import Job, JobBoard, SessionChange, SessionState
from ._hand_back import check_hand_back_after, hand_back_time
from ._queueing import DEFAULT_QUEUE, check_limit, check_queue_name

__all__ = ["Conductor", "ConductorStats", "current_job"]

log = structlog.get_logger("flowcoord.conductor")

#: The job whose flow runs in this context (set by a conductor before it starts the flow, so
#: the flow's tasks see it too): what tracing reads a producer's context from (``headers``).
current_job: ContextVar[Job | None] = ContextVar("flowcoord_current_job", default=None)

_FINAL = (FlowState.SUCCESS, FlowState.REVERTED, FlowState.FAILED, FlowState.CANCELLED)


class Conductor(ClaimKeeper):
    """Claims up to ``capacity`` jobs from ``board`` and runs each with ``engine``.

    ``async with Conductor(board, engine, registry) as conductor:`` — it registers as a live
    member, watches the board, claims jobs (highest priority first), runs their flows with the
    claim's fencing token (resuming from the journal when the flow has entries), and consumes
    a job once its flow has finished, succeeded or failed-and-reverted. When its session is
    suspended no running flow starts new tasks; when the session is lost every owned flow is
    aborted at once, writing nothing more. Leaving the block stops the running flows
    gracefully and releases their jobs (see below).

    Poison jobs: a job claimed before whose claim ended without it finishing (``claims > 1``
    once claimed here: its owner died, lost its session or gave it up; a clean release does
    not count) is a *suspect*; it
    may be what killed that owner. A suspect runs alone: it is claimed only when nothing runs
    here, and nothing else is claimed while it runs, so that if it kills this process too, the
    death is charged to it alone (one more claim), not to the jobs beside it. When a suspect is
    next in line (priority, then age), the conductor takes no further job until what it runs
    has finished, then takes the suspect; a suspect therefore waits at most that long.

    A job claimed more than ``max_claims`` times without finishing (its owners kept dying, and
    since its second claim it ran alone), or given up after errors ``max_failures`` times,
    goes to the trash with the reason instead of cycling. An innocent job killed once beside
    a poison job runs alone next time, so ``max_claims >= 2`` keeps it out of the trash.

    Queues: it serves ``queues`` (declared on the board, else
    :class:`~flowcoord.errors.UnknownQueue` on entering), taking the highest priority first
    across them, at most ``worker_limits[queue]`` jobs of a queue at once here (within
    ``capacity``), and never more than a queue's global limit across the board (the board
    refuses a claim beyond it), nor beyond its partition or rate limits (a full partition's
    jobs are passed over, the others' claimed; a rate-limited queue waits for its next start).
    Every ``key_sweep_interval`` seconds it asks the board to forget some expired idempotency
    keys.

    Waiting jobs: a job whose workflow only waits (``ctx.sleep``, ``ctx.wait_event``: see
    :attr:`FlowHandle.waiting <flowcoord.FlowHandle.waiting>`) keeps its claim — another
    owner resumes it if this one dies — but not its slot of ``capacity`` nor of its queue's
    worker limit: the conductor claims other jobs meanwhile, holding at most ``max_waiting``
    waiting jobs besides ``capacity`` busy ones. When sleepers wake together more than
    ``capacity`` jobs may run here for a while; nothing new is claimed until they are fewer.
    (A queue's global and partition limits count every claimed job, waiting or not.)

    Hand-back: a workflow that only sleeps (no event wait pending) and wakes
    ``hand_back_after`` seconds from now or later is stopped and its job released to the
    board until it wakes (:mod:`flowcoord._coord._hand_back`): it holds no claim, memory or
    slot meanwhile, and is claimed again, by any conductor and under every limit, when it
    falls due. None keeps every sleeper here.

    Leaving the block (or a hand-back) stops flows cleanly: their jobs are released, not
    abandoned, so their next claim does not make them suspects.
    """

    def __init__(
        self,
        board: JobBoard,
        engine: Engine,
        registry: FlowRegistry,
        *,
        name: str | None = None,
        capacity: int = 10,
        max_claims: int = 5,
        max_failures: int = 3,
        rescan_interval: float = 5.0,
        shutdown_timeout: float = 30.0,
        info: Mapping[str, Any] | None = None,
        queues: Sequence[str] = (DEFAULT_QUEUE,),
        worker_limits: Mapping[str, int] | None = None,
        key_sweep_interval: float = 60.0,
        max_waiting: int = 100,
        hand_back_after: float | None = 60.0,
    ) -> None:
        self.queues = tuple(dict.fromkeys(check_queue_name(q) for q in queues))
        if not self.queues:
            raise ConfigurationError("a conductor serves at least one queue")
        self.worker_limits = {
            q: check_limit(n, f"the worker limit of queue {q!r}")
            for q, n in (worker_limits or {}).items()
        }
        if unserved := set(self.worker_limits) - set(self.queues):
            raise ConfigurationError(
                f"worker limits for queues it does not serve: {sorted(unserved)}",
                hint=f"it serves {list(self.queues)}",
            )
        self.key_sweep_interval = key_sweep_interval
        self.board = board
        self.engine = engine
        self.registry = registry
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.capacity = capacity
        if isinstance(max_waiting, bool) or not isinstance(max_waiting, int) or max_waiting < 0:
            raise ConfigurationError(
                f"max_waiting must be an int of at least 0, got {max_waiting!r}",
                hint="0: a waiting job keeps its slot of the capacity",
            )
        self.max_waiting = max_waiting
        self.hand_back_after = check_hand_back_after(hand_back_after)
        self.max_claims = max_claims
        self.max_failures = max_failures
        self.rescan_interval = rescan_interval
        self.shutdown_timeout = shutdown_timeout
        self.info = dict(info or {})
        self.stats = ConductorStats()
        self.running: dict[str, Running] = {}
        self._tg: TaskGroup | None = None
        self._wake = anyio.Event()
        self._closing = False
        self._suspect: str | None = None  # the job id of the suspect running alone here
        self._registered_generation = -1
        self._unlisten: Any = None
        self._log = log.bind(conductor=self.name)

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> Conductor:
        for queue in self.queues:
            try:
                await self.board.queue(queue)
            except UnknownQueue:
                raise  # refused before anything runs
            except CoordinationError as exc:
                self._log.warning("board_unavailable", error=str(exc))
                break
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._unlisten = self.board.session.add_listener(self._on_session)
        self._tg.start_soon(self._main)
        self._tg.start_soon(self._sweep_keys)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._closing = True
        self._wake.set()
        with anyio.CancelScope(shield=True):
            for r in list(self.running.values()):
                if r.handle is not None:
                    if r.hand_back is None:  # a sleeper is given back until it wakes
                        r.hand_back = r.handle.waiting_until
                    r.handle.stop()
            with anyio.move_on_after(self.shutdown_timeout):
                for r in list(self.running.values()):
                    await r.done.wait()
            for r in list(self.running.values()):
                if r.handle is not None:
                    r.handle.abort("the conductor shut down")
            with anyio.move_on_after(5):
                for r in list(self.running.values()):
                    await r.done.wait()
        if self._unlisten is not None:
            self._unlisten()
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        return await close_task_group(self._tg, exc_type, exc, tb)

    async def wait_idle(self) -> None:
        """Wait until the queues it serves have no job left and nothing runs here (bound it
        with ``anyio.fail_after``; handy in tests and batch runs)."""
        while True:
            if not self.running:
                try:
                    if not [q for q in self.queues if await self.board.jobs(queue=q, limit=1)]:
                        return
                except CoordinationError:
                    pass
            with anyio.move_on_after(0.2):
                await self.board.wait_changed()

    # -- session -------------------------------------------------------------------------------

    def _on_session(self, change: SessionChange) -> None:
        self._log.info("session", state=change.state.value, generation=change.generation)
        if change.state is SessionState.SUSPENDED:
            for r in self.running.values():
                if r.handle is not None:
                    r.handle.suspend()
        elif change.state in (SessionState.LOST, SessionState.CLOSED):
            for r in self.running.values():
                if r.handle is not None:
                    r.handle.abort(f"coordination session {change.state.value}")
        elif change.state is SessionState.CONNECTED and self._tg is not None:
            for job_id, r in list(self.running.items()):
                self._tg.start_soon(self._recheck, job_id, r)
        self._wake.set()

    async def _recheck(self, job_id: str, r: Running) -> None:
        """After a reconnect: resume flows whose claim still holds, abort the others."""
        try:
            held = await self.board.holds(r.claim)
        except CoordinationError:
            return  # the next transition decides
        if r.handle is None:
            return
        if held and r.claim.generation == self.board.session.generation:
            r.handle.resume()
        else:
            r.handle.abort("the job's claim vanished while disconnected")

    # -- claiming ------------------------------------------------------------------------------

    async def _main(self) -> None:
        while not self._closing:
            self._wake = anyio.Event()
            if self.board.session.state is SessionState.CONNECTED:
                try:
                    await self._register()
                    await self._claim_some()
                except CoordinationError as exc:
                    self._log.warning("board_unavailable", error=str(exc))
            async with anyio.create_task_group() as tg:

                async def board_changed() -> None:
                    with anyio.move_on_after(self.rescan_interval):
                        await self.board.wait_changed()
                    tg.cancel_scope.cancel()

                async def woken() -> None:
                    await self._wake.wait()
                    tg.cancel_scope.cancel()

                tg.start_soon(board_changed)
                tg.start_soon(woken)

    async def _register(self) -> None:
        gen = self.board.session.generation
        if gen != self._registered_generation:
            info = {**self.info, "capacity": self.capacity, "queues": list(self.queues)}
            if self.worker_limits:
                info["worker_limits"] = dict(self.worker_limits)
            await self.board.register(self.name, info)
            self._registered_generation = gen

    async def _sweep_keys(self) -> None:
        while True:
            await anyio.sleep(self.key_sweep_interval)
            if self.board.session.state is SessionState.CONNECTED:
                try:
                    await self.board.expire_keys()
                except CoordinationError as exc:
                    self._log.debug("key_sweep_failed", error=str(exc))

    # -- running one job -----------------------------------------------------------------------

    async def _run_job(self, r: Running) -> None:
        claim = r.claim
        job = claim.job
        jlog = self._log.bind(job=job.job_id, flow_id=job.flow_id, token=claim.token)
        current_job.set(job)  # this task's own context: the flow it starts inherits it
        try:
            try:
                flow = self.registry.build(job.flow)
                r.handle = await self.engine.start(
                    flow, job.inputs, flow_id=job.flow_id, token=claim.token
                )
            except FlowDefinitionError as exc:
                await self._trash(claim, f"cannot run: {exc}")
                return
            except OwnershipLost:
                self.stats.lost += 1
                return
            except JournalError as exc:
                jlog.warning("journal_unavailable", error=str(exc))
                await self._give_up(claim, failed=True)
                return
            if self.board.session.state is not SessionState.CONNECTED:
                r.handle.suspend()
            r.handle.on_waiting(functools.partial(self._on_waiting, r))
            jlog.info("job_started")
            try:
                await r.handle.wait()
                if self._stopped_here(r):  # a workflow's run ends SUSPENDED, not raising
                    await self._release(claim, r.hand_back)
                    return
            except OwnershipLost as exc:
                if self._closing and r.claim.generation == self.board.session.generation:
                    await self._give_up(claim, failed=False)  # aborted by our own shutdown
                    return
                jlog.warning("job_lost", error=str(exc))
                self.stats.lost += 1
                return
            except JournalError as exc:
                jlog.warning("journal_unavailable", error=str(exc))
                await self._give_up(claim, failed=True)
                return
            except FlowDefinitionError as exc:
                # this code cannot go on with the journaled flow (a workflow changed under a
                # run in flight, a child's id taken): no other claim would do better with the
                # same code; trashed with the reason, the flow stays in the journal as it is
                await self._trash(claim, f"cannot resume: {exc}")
                return
            except Exception as exc:
                if self._stopped_here(r):  # a pattern flow's stopped run raises
                    await self._release(claim, r.hand_back)
                    return
                if r.handle.state not in _FINAL:
                    (jlog.info if self._closing else jlog.warning)(
                        "job_handed_over", state=r.handle.state.value, error=repr(exc)
                    )
                    await self._give_up(claim, failed=False)  # stopped: hand it over
                    return
                self.stats.failed += 1
            await self._consume(claim, r.handle.state.value)
            jlog.info("job_finished", state=r.handle.state.value)
        finally:
            self.running.pop(job.job_id, None)
            if self._suspect == job.job_id:
                self._suspect = None
            r.done.set()
            self._wake.set()

    def _on_waiting(self, r: Running, waiting: bool) -> None:
        if not waiting:
            return
        self._wake.set()  # a slot of the capacity is free while it waits: claim again
        after = self.hand_back_after
        if after is not None and r.handle is not None and not r.deciding and self._tg is not None:
            r.deciding = True
            self._tg.start_soon(self._maybe_hand_back, r, r.handle, after)

    async def _maybe_hand_back(self, r: Running, handle: FlowHandle, after: float) -> None:
        try:
            until = await hand_back_time(handle, after)
        finally:
            r.deciding = False
        if until is None or self._closing or handle.done or r.hand_back is not None:
            return
        r.hand_back = until
        self._log.info("job_handing_back", job=r.claim.job.job_id, until=until)
        handle.stop()

    def _stopped_here(self, r: Running) -> bool:
        """Whether ``r``'s flow ended SUSPENDED because this conductor stopped it (shutting
        down, handing it back): its job is released, not consumed (another stop is an
        operator's: the job ends, the flow waits for them in the journal)."""
        assert r.handle is not None
        stopped = r.handle.state is FlowState.SUSPENDED
        return stopped and (self._closing or r.hand_back is not None)
