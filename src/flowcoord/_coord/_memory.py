"""The in-memory coordination twin: a real job board and session, kept in this process.

Tests (and single-process deployments) use it where ZooKeeper would be: the same conductor
code runs on it. Sessions can be suspended, reconnected and expired by hand, which is how the
tests drive fail-over without a server.

Claims and their releases are in :mod:`._memory_claims`, an operator's hand on the trash in
:mod:`._memory_operator`, the coordinator's state and sessions in :mod:`._memory_state`.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

import anyio

from ..errors import JobKeyConflict, JobNotFound
from ._contract import Job, Member, QueueConfig, claim_order
from ._memory_claims import ClaimingMemoryBoard
from ._memory_operator import OperatorMemoryBoard
from ._memory_state import CoordinatorState, MemorySession
from ._queueing import (
    DEFAULT_QUEUE,
    check_headers,
    check_key,
    check_limit,
    check_partition,
    check_priority,
    check_queue_name,
    check_rate_limit,
    due_time,
    inputs_digest,
    job_id_for,
)

__all__ = ["MemoryCoordinator", "MemoryJobBoard", "MemorySession"]


class MemoryCoordinator(CoordinatorState):
    """The shared state of in-memory boards (what a ZooKeeper ensemble is to ZooKeeper
    boards). Create one and hand out :meth:`board` objects, one per conductor.
    ``key_retention``: seconds a key stays taken after its job ended."""

    def board(self, session: MemorySession | None = None) -> MemoryJobBoard:
        return MemoryJobBoard(self, session or MemorySession(self))


class MemoryJobBoard(ClaimingMemoryBoard, OperatorMemoryBoard):
    """A client of a :class:`MemoryCoordinator`, with its own session."""

    session: MemorySession
    coordinator: MemoryCoordinator

    def __init__(self, coordinator: MemoryCoordinator, session: MemorySession) -> None:
        self.coordinator = coordinator
        self.session = session
        self._seen: int | None = None  # the coordinator's version at the last jobs()
        self._next_due: float | None = None  # the next delayed job claimable() saw

    async def post(
        self,
        flow: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        flow_id: str | None = None,
        priority: int = 0,
        queue: str = DEFAULT_QUEUE,
        key: str | None = None,
        not_before: float | datetime | None = None,
        partition: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Job:
        self._check()
        c = self.coordinator
        self._config(queue)
        partition = check_partition(partition)
        header_map = check_headers(headers)
        flow_id = flow_id or uuid.uuid4().hex
        key = check_key(flow_id if key is None else key)
        inputs = dict(inputs or {})
        digest = inputs_digest(flow, inputs, c.codec)
        job = Job(
            job_id=job_id_for(key),
            flow=flow,
            flow_id=flow_id,
            inputs=inputs,
            priority=check_priority(priority),
            created_at=time.time(),
            queue=queue,
            key=key,
            not_before=due_time(not_before),
            partition=partition,
            headers=header_map,
        )
        existing = c.jobs.get(job.job_id)
        ended = c.ended.get(job.job_id)
        if ended is not None and time.time() - ended[1] >= c.key_retention:
            existing, ended = None, None  # its key expired: a new job
        found = self._view(existing) if existing is not None else ended and ended[0]
        if found:
            if c.digests[job.job_id] != digest:
                raise JobKeyConflict(
                    f"key {key!r} names job {job.job_id} of flow {found.flow!r} with other "
                    "inputs (or of another flow)",
                    key=key,
                    job_id=job.job_id,
                    existing_flow=found.flow,
                    flow_id=flow_id,
                )
            return replace(found, deduplicated=True)
        c.ended.pop(job.job_id, None)
        c._seq += 1
        c.jobs[job.job_id] = job = replace(job, seq=c._seq)
        c.digests[job.job_id] = digest
        c._touch()
        return job

    async def jobs(self, *, queue: str | None = None, limit: int | None = None) -> list[Job]:
        self._check()
        if queue is not None:
            self._config(queue)
        self._seen = self.coordinator.version
        jobs = claim_order(
            self._view(j) for j in self.coordinator.jobs.values() if queue in (None, j.queue)
        )
        return jobs[:limit]

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

    async def wait_changed(self) -> None:
        """Return when the board changed since the last :meth:`jobs` or :meth:`claimable`
        (at once if it did already), since the last return of this call, or when the
        delayed job the last :meth:`claimable` saw first falls due."""
        c = self.coordinator
        if self._seen is None or self._seen == c.version:
            due, self._next_due = self._next_due, None
            with anyio.move_on_after(math.inf if due is None else due - time.time()):
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

    # -- queues ------------------------------------------------------------------------------

    async def declare_queue(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        partition_limit: int | None = None,
        rate_limit: tuple[int, float] | None = None,
    ) -> QueueConfig:
        self._check()
        check_queue_name(name)
        if concurrency is not None:
            check_limit(concurrency, f"queue {name!r}'s concurrency")
        if partition_limit is not None:
            check_limit(partition_limit, f"queue {name!r}'s partition limit")
        rate = check_rate_limit(rate_limit, f"queue {name!r}'s rate limit")
        config = QueueConfig(name, concurrency, partition_limit, rate)
        self.coordinator.queues[name] = config
        self.coordinator._touch()
        return config

    async def queues(self) -> list[QueueConfig]:
        self._check()
        return sorted(self.coordinator.queues.values(), key=lambda q: q.name)

    async def expire_keys(self) -> int:
        self._check()
        c = self.coordinator
        cutoff = time.time() - c.key_retention
        gone = [job_id for job_id, (_, at) in c.ended.items() if at <= cutoff]
        for job_id in gone:
            del c.ended[job_id]
            c.digests.pop(job_id, None)
        return len(gone)
