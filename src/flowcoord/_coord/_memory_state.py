"""The in-memory coordinator's state and sessions (see :mod:`._memory` for the board).

A :class:`MemorySession` is driven by hand (suspended, reconnected, expired) where a
ZooKeeper session is driven by its server; when one is lost or closed its claims, slots and
memberships vanish, as ephemeral nodes do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import anyio

from .._codec import Codec
from ._contract import Job, JobState, QueueConfig, TrashedJob
from ._queueing import DEFAULT_KEY_RETENTION, DEFAULT_QUEUE
from ._session import SessionChange, SessionListener, SessionState

__all__ = ["CoordinatorState", "MemorySession"]


class MemorySession:
    """A session of the in-memory coordinator; its state is driven by the caller."""

    def __init__(self, coordinator: CoordinatorState) -> None:
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


class CoordinatorState:
    """What an in-memory coordinator holds (what a ZooKeeper ensemble holds for its
    boards), and the changes every board of it shares: sessions dropped, jobs ended."""

    def __init__(
        self, *, key_retention: float = DEFAULT_KEY_RETENTION, codec: Codec | None = None
    ) -> None:
        self.key_retention = key_retention
        self.codec = codec or Codec()
        self._zxid = 0
        self._seq = 0
        self.jobs: dict[str, Job] = {}  # on the board
        self.ended: dict[str, tuple[Job, float]] = {}  # job id -> (ended job, when)
        self.digests: dict[str, str] = {}  # job id -> what it runs (flow and inputs)
        self.locks: dict[str, tuple[str, int, object]] = {}
        self.slots: dict[str, dict[int, tuple[str, object]]] = {}  # queue -> slot -> job
        # (queue, partition) -> slot -> (job, session); queue -> when each start was taken
        self.pslots: dict[tuple[str, str], dict[int, tuple[str, object]]] = {}
        self.rates: dict[str, list[float]] = {}
        self.queues: dict[str, QueueConfig] = {DEFAULT_QUEUE: QueueConfig(DEFAULT_QUEUE)}
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
        for held in [*self.slots.values(), *self.pslots.values()]:
            for slot, (_, s) in list(held.items()):
                if s is session:
                    del held[slot]
        for key in [k for k, held in self.pslots.items() if not held]:
            del self.pslots[key]
        for name, (_, s) in list(self.members.items()):
            if s is session:
                del self.members[name]
        self._changed_now()

    def _end(self, job: Job, state: JobState, outcome: str | None) -> Job:
        del self.jobs[job.job_id]
        ended = replace(job, state=state, outcome=outcome, owner=None)
        self.ended[job.job_id] = (ended, time.time())
        return ended
