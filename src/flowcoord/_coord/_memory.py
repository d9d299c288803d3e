"""The in-memory coordination twin: a real job board and session, kept in this process.

Tests (and single-process deployments) use it where ZooKeeper would be: the same conductor
code runs on it. Sessions can be suspended, reconnected and expired by hand, which is how the
tests drive fail-over without a server.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import anyio

from ..errors import (
    CoordinationUnavailable,
    JobAlreadyClaimed,
    JobNotFound,
    OwnershipLost,
    SessionLost,
)
from ._contract import Claim, Job, JobBoard, Member, TrashedJob
from ._session import SessionChange, SessionListener, SessionState

__all__ = ["MemoryCoordinator", "MemoryJobBoard", "MemorySession"]


class MemorySession:
    """A session of the in-memory coordinator; its state is driven by the caller."""

    def __init__(self, coordinator: MemoryCoordinator) -> None:
        self._coord = coordinator
        self._state = SessionState.CONNECTED
        self._generation = 0
        self._listeners: list[SessionListener] = []
        self._changed = anyio.Event()
        self.session_id = coordinator._next_zxid()

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def generation(self) -> int:
        return self._generation

    def add_listener(self, listener: SessionListener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    async def wait_for(self, state: SessionState) -> None:
        while self._state is not state:
            await self._changed.wait()

    def _set(self, new: SessionState, reason: str) -> None:
        old = self._state
        if old is new:
            return
        if new is SessionState.LOST:
            self._generation += 1
            self._coord._drop_session(self)
        self._state = new
        change = SessionChange(
            new, old, self._generation, self.session_id, time.monotonic(), reason
        )
        for listener in list(self._listeners):
            listener(change)
        self._changed.set()
        self._changed = anyio.Event()

    # -- driven by tests -----------------------------------------------------------------------

    def suspend(self) -> None:
        self._set(SessionState.SUSPENDED, "suspended by hand")

    def reconnect(self) -> None:
        self._set(SessionState.CONNECTED, "reconnected by hand")

    def expire(self) -> None:
        """Lose the session (its claims and memberships vanish), then start a new one."""
        self._set(SessionState.LOST, "expired by hand")
        self.session_id = self._coord._next_zxid()
        self._set(SessionState.CONNECTED, "new session")

    def close(self) -> None:
        self._coord._drop_session(self)
        self._set(SessionState.CLOSED, "closed")


class MemoryCoordinator:
    """The shared state of in-memory boards (what a ZooKeeper ensemble is to ZooKeeper
    boards). Create one and hand out :meth:`board` objects, one per conductor."""

    def __init__(self) -> None:
        self._zxid = 0
        self._seq = 0
        self.jobs: dict[str, Job] = {}
        self.locks: dict[str, tuple[str, int, object]] = {}
        self.trash: list[TrashedJob] = []
        self.members: dict[str, tuple[Mapping[str, Any], object]] = {}
        self._changed = anyio.Event()
        self.writes = 0
        self.version = 0  # grows with every change a board's wait_changed() reports

    def _next_zxid(self) -> int:
        self._zxid += 1
        return self._zxid

    def _touch(self) -> None:
        self.writes += 1
        self._changed_now()

    def _changed_now(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = anyio.Event()

    def _drop_session(self, session: MemorySession) -> None:
        for job_id, (_, _, s) in list(self.locks.items()):
            if s is session:
                del self.locks[job_id]
        for name, (_, s) in list(self.members.items()):
            if s is session:
                del self.members[name]
        self._changed_now()

    def board(self, session: MemorySession | None = None) -> MemoryJobBoard:
        return MemoryJobBoard(self, session or MemorySession(self))


class MemoryJobBoard(JobBoard):
    """A client of a :class:`MemoryCoordinator`, with its own session."""

    session: MemorySession

    def __init__(self, coordinator: MemoryCoordinator, session: MemorySession) -> None:
        self.coordinator = coordinator
        self.session = session
        self._seen: int | None = None  # the coordinator's version at the last jobs()

    def _check(self) -> None:
        state = self.session.state
        if state is SessionState.CONNECTED:
            return
        if state is SessionState.SUSPENDED:
            raise CoordinationUnavailable("the coordination session is suspended")
        raise SessionLost(f"the coordination session is {state.value}")

    def _view(self, job: Job) -> Job:
        lock = self.coordinator.locks.get(job.job_id)
        return replace(job, owner=lock[0] if lock else None)

    async def post(
        self,
        flow: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        flow_id: str | None = None,
        priority: int = 0,
    ) -> Job:
        self._check()
        c = self.coordinator
        c._seq += 1
        job = Job(
            job_id=f"job-{c._seq:010d}",
            flow=flow,
            flow_id=flow_id or uuid.uuid4().hex,
            inputs=dict(inputs or {}),
            priority=priority,
            created_at=time.time(),
        )
        c.jobs[job.job_id] = job
        c._touch()
        return job

    async def jobs(self) -> list[Job]:
        self._check()
        self._seen = self.coordinator.version
        return sorted((self._view(j) for j in self.coordinator.jobs.values()), key=Job.sort_key)

    async def get(self, job_id: str) -> Job:
        self._check()
        job = self.coordinator.jobs.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id!r} on the board")
        return self._view(job)

    async def claimed_job(self, flow_id: str) -> Job | None:
        """Scans the claims only (a session's claims vanish with it, so every one is live)."""
        self._check()
        c = self.coordinator
        for job_id, (owner, _, _) in sorted(c.locks.items()):
            job = c.jobs.get(job_id)
            if job is not None and job.flow_id == flow_id:
                return replace(job, owner=owner)
        return None

    async def claim(self, job: Job, owner: str) -> Claim:
        self._check()
        c = self.coordinator
        current = c.jobs.get(job.job_id)
        if current is None:
            raise JobNotFound(f"job {job.job_id!r} is gone (consumed or trashed)")
        if job.job_id in c.locks:
            raise JobAlreadyClaimed(f"job {job.job_id!r} is claimed by {c.locks[job.job_id][0]}")
        token = c._next_zxid()
        current = replace(current, claims=current.claims + 1, version=current.version + 1)
        c.jobs[job.job_id] = current
        c.locks[job.job_id] = (owner, token, self.session)
        c._touch()
        return Claim(replace(current, owner=owner), owner, token, self.session.generation)

    async def holds(self, claim: Claim) -> bool:
        self._check()
        lock = self.coordinator.locks.get(claim.job.job_id)
        return lock is not None and lock[1] == claim.token and lock[2] is self.session

    async def _release(self, claim: Claim) -> Job:
        if not await self.holds(claim):
            raise OwnershipLost(
                f"job {claim.job.job_id!r}: claim {claim.token} is no longer held",
                flow_id=claim.job.flow_id,
            )
        del self.coordinator.locks[claim.job.job_id]
        return self.coordinator.jobs[claim.job.job_id]

    async def consume(self, claim: Claim) -> None:
        job = await self._release(claim)
        del self.coordinator.jobs[job.job_id]
        self.coordinator._touch()

    async def abandon(self, claim: Claim, *, failed: bool = False) -> None:
        job = await self._release(claim)
        if failed:
            self.coordinator.jobs[job.job_id] = replace(
                job, failures=job.failures + 1, version=job.version + 1
            )
        self.coordinator._touch()

    async def trash(self, claim: Claim, reason: str) -> None:
        job = await self._release(claim)
        del self.coordinator.jobs[job.job_id]
        self.coordinator.trash.append(TrashedJob(job, reason, time.time()))
        self.coordinator._touch()

    async def trashed(self) -> list[TrashedJob]:
        self._check()
        return list(self.coordinator.trash)

    async def wait_changed(self) -> None:
        """Return when the board changed since the last :meth:`jobs` or :meth:`claimable`
        (at once if it did already) or since the last return of this call."""
        c = self.coordinator
        if self._seen is None or self._seen == c.version:
            await c._changed.wait()
        self._seen = c.version

    async def register(self, name: str, info: Mapping[str, Any]) -> None:
        self._check()
        self.coordinator.members[name] = (dict(info), self.session)
        self.coordinator._touch()

    async def members(self) -> list[Member]:
        self._check()
        c = self.coordinator
        owned: dict[str, list[str]] = {}
        for job_id, (owner, _, _) in sorted(c.locks.items()):
            owned.setdefault(owner, []).append(job_id)
        return [
            Member(name, info, tuple(owned.get(name, ())))
            for name, (info, _) in sorted(c.members.items())
        ]
