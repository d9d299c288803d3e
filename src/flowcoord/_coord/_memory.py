"""The in-memory coordination twin: a real job board and session, kept in this process.

Tests (and single-process deployments) use it where ZooKeeper would be: the same conductor
code runs on it. Sessions can be suspended, reconnected and expired by hand, which is how the
tests drive fail-over without a server.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import anyio

from ..errors import (
    CoordinationUnavailable,
    JobAlreadyClaimed,
    JobKeyConflict,
    JobNotDue,
    JobNotFound,
    OwnershipLost,
    PartitionLimitReached,
    QueueLimitReached,
    RateLimited,
    SessionLost,
    UnknownQueue,
)
from ._contract import (
    Claim,
    Job,
    JobBoard,
    Member,
    QueueConfig,
    TrashedJob,
    claim_order,
)
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
from ._session import SessionState
from ._trash import is_trash_id, trash_id_for

__all__ = ["MemoryCoordinator", "MemoryJobBoard", "MemorySession"]


class MemoryCoordinator(CoordinatorState):
    """The shared state of in-memory boards (what a ZooKeeper ensemble is to ZooKeeper
    boards). Create one and hand out :meth:`board` objects, one per conductor.
    ``key_retention``: seconds a key stays taken after its job ended."""

    def board(self, session: MemorySession | None = None) -> MemoryJobBoard:
        return MemoryJobBoard(self, session or MemorySession(self))


class MemoryJobBoard(JobBoard):
    """A client of a :class:`MemoryCoordinator`, with its own session."""

    session: MemorySession

    def __init__(self, coordinator: MemoryCoordinator, session: MemorySession) -> None:
        self.coordinator = coordinator
        self.session = session
        self._seen: int | None = None  # the coordinator's version at the last jobs()
        self._next_due: float | None = None  # the next delayed job claimable() saw

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

    def _config(self, queue: str) -> QueueConfig:
        config = self.coordinator.queues.get(check_queue_name(queue))
        if config is None:
            raise UnknownQueue(f"no queue {queue!r} on the job board", queue=queue)
        return config

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

    async def claimable(
        self, *, queues: Sequence[str] | None = None, limit: int | None = None
    ) -> list[Job]:
        """Due, free jobs of ``queues`` whose global limit is not used up, in claim order: at
        most as many of a rate-limited queue as it has starts left, and of a partition as
        it has slots left."""
        self._check()
        c = self.coordinator
        served = set(c.queues) if queues is None else {self._config(q).name for q in queues}
        full = {q for q in served if self._held(q) >= (c.queues[q].concurrency or math.inf)}
        now = time.time()
        self._seen = c.version
        later: list[float] = []
        starts: dict[str, int] = {}
        for q in served:
            rate = c.queues[q].rate_limit
            if rate is not None:
                free, next_at = self._starts(q, rate, now)
                starts[q] = len(free)
                if not free:
                    later.append(next_at)  # woken when a start comes back
        due: list[Job] = []
        for job in c.jobs.values():
            if job.queue not in served or job.job_id in c.locks:
                continue
            if job.not_before > now:
                later.append(job.not_before)
            elif job.queue not in full:
                due.append(job)
        self._next_due = min(later, default=None)
        picked: list[Job] = []
        per_queue: Counter[str] = Counter()
        per_partition: Counter[tuple[str, str]] = Counter()
        for job in claim_order(due):
            if job.queue in starts and per_queue[job.queue] >= starts[job.queue]:
                continue
            plimit = c.queues[job.queue].partition_limit
            if plimit is not None and job.partition is not None:
                key = (job.queue, job.partition)
                if len(c.pslots.get(key, {})) + per_partition[key] >= plimit:
                    continue  # its partition is full: the others' jobs go on
                per_partition[key] += 1
            per_queue[job.queue] += 1
            picked.append(job)
        return picked[:limit]

    def _starts(self, queue: str, rate: tuple[int, float], now: float) -> tuple[list[int], float]:
        """The starts of ``queue`` free at ``now`` (oldest first), and when the first one
        taken comes back (a start is free once ``period`` has passed since it was taken)."""
        count, period = rate
        times = self.coordinator.rates.setdefault(queue, [])
        times.extend([0.0] * (count - len(times)))
        free = sorted((i for i in range(count) if now - times[i] >= period), key=times.__getitem__)
        return free, min(times[:count]) + period

    def _held(self, queue: str) -> int:
        return len(self.coordinator.slots.get(queue, {}))

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
        if current.not_before > time.time():
            raise JobNotDue(
                f"job {job.job_id!r} is not due before {current.not_before}",
                job_id=job.job_id,
                not_before=current.not_before,
            )
        config = c.queues[current.queue]
        slot = pslot = start = None
        limit = config.concurrency
        held = c.slots.setdefault(current.queue, {})
        if limit is not None:
            free = [i for i in range(limit) if i not in held]
            if len(held) >= limit or not free:
                raise QueueLimitReached(
                    f"queue {current.queue!r} runs {len(held)} jobs (its limit is {limit})",
                    queue=current.queue,
                    limit=limit,
                )
            slot = free[0]
        plimit, partition = config.partition_limit, current.partition
        if plimit is not None and partition is not None:
            pheld = c.pslots.get((current.queue, partition), {})
            free = [i for i in range(plimit) if i not in pheld]
            if len(pheld) >= plimit or not free:
                raise PartitionLimitReached(
                    f"partition {partition!r:.80} of queue {current.queue!r} runs {len(pheld)} "
                    f"jobs (its limit is {plimit})",
                    queue=current.queue,
                    partition=partition,
                    limit=plimit,
                )
            pslot = free[0]
        now = time.time()
        if config.rate_limit is not None:
            starts, next_at = self._starts(current.queue, config.rate_limit, now)
            if not starts:
                self._next_due = min(self._next_due or math.inf, next_at)
                raise RateLimited(
                    f"queue {current.queue!r} started {config.rate_limit[0]} jobs within "
                    f"{config.rate_limit[1]} s (its rate limit)",
                    queue=current.queue,
                    retry_after=max(next_at - now, 0.0),
                )
            start = starts[0]
        if slot is not None:
            held[slot] = (job.job_id, self.session)
        if pslot is not None and partition is not None:
            c.pslots.setdefault((current.queue, partition), {})[pslot] = (job.job_id, self.session)
        if start is not None:
            c.rates[current.queue][start] = now
        token = c._next_zxid()
        current = replace(current, claims=current.claims + 1, version=current.version + 1)
        c.jobs[job.job_id] = current
        c.locks[job.job_id] = (owner, token, self.session)
        c._touch()
        generation = self.session.generation
        return Claim(replace(current, owner=owner), owner, token, generation, slot, pslot)

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
        c = self.coordinator
        del c.locks[claim.job.job_id]
        if claim.slot is not None:
            c.slots.get(claim.job.queue, {}).pop(claim.slot, None)
        key = (claim.job.queue, claim.job.partition or "")
        if claim.partition_slot is not None and key in c.pslots:
            c.pslots[key].pop(claim.partition_slot, None)
            if not c.pslots[key]:
                del c.pslots[key]  # no empty entry per partition ever seen
        return c.jobs[claim.job.job_id]

    async def consume(self, claim: Claim, *, outcome: str | None = None) -> None:
        job = await self._release(claim)
        self.coordinator._end(job, "consumed", outcome)
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
        self.coordinator._end(job, "trashed", None)
        trash_id = trash_id_for(job.job_id, self.coordinator._next_zxid())
        self.coordinator.trash.append(TrashedJob(job, reason, time.time(), trash_id))
        self.coordinator._touch()

    async def trashed(self) -> list[TrashedJob]:
        self._check()
        return list(self.coordinator.trash)

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

    # -- an operator's hand: trash, requeue, purge -------------------------------------------

    async def trash_job(self, job_id: str, reason: str) -> TrashedJob:
        self._check()
        c = self.coordinator
        job = c.jobs.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id!r} on the board (consumed, trashed or never posted)")
        if job_id in c.locks:
            raise JobAlreadyClaimed(
                f"job {job_id!r} is claimed by {c.locks[job_id][0]}: cancel or stop its flow "
                "first (its conductor then releases it)"
            )
        c._end(job, "trashed", None)
        entry = TrashedJob(job, reason, time.time(), trash_id_for(job_id, c._next_zxid()))
        c.trash.append(entry)
        c._touch()
        return entry

    async def requeue(self, trash_id: str) -> Job:
        self._check()
        c = self.coordinator
        found = next((t for t in c.trash if is_trash_id(trash_id) and t.trash_id == trash_id), None)
        if found is None:
            raise JobNotFound(f"no trash entry {trash_id!r} on the board (requeued or purged?)")
        old = found.job
        if old.job_id in c.jobs:
            raise JobKeyConflict(
                f"key {old.key!r} names job {old.job_id}, on the board again (posted anew "
                "once its key expired): requeueing would replace it",
                key=old.key,
                job_id=old.job_id,
                existing_flow=c.jobs[old.job_id].flow,
                flow_id=old.flow_id,
            )
        c._seq += 1
        job = replace(
            old,
            claims=0,
            failures=0,
            created_at=time.time(),
            owner=None,
            version=old.version + 1,
            state="queued",
            outcome=None,
            deduplicated=False,
            seq=c._seq,
        )
        c.ended.pop(job.job_id, None)
        c.digests[job.job_id] = inputs_digest(job.flow, dict(job.inputs), c.codec)
        c.jobs[job.job_id] = job
        c.trash.remove(found)
        c._touch()
        return job

    async def purge_trash(self, *, before: float | None = None) -> int:
        self._check()
        c = self.coordinator
        kept = [t for t in c.trash if before is not None and t.trashed_at >= before]
        purged = len(c.trash) - len(kept)
        c.trash[:] = kept
        return purged
