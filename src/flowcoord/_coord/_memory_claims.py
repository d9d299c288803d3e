"""Claims on the in-memory board: the board client's basics, which jobs are claimable, a
claim with the concurrency slot, partition slot and rate start it takes, and the releases
(consume, abandon, trash). The board itself is :class:`._memory.MemoryJobBoard`.
"""

from __future__ import annotations

import math
import time
from abc import ABC
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from ..errors import (
    CoordinationUnavailable,
    JobAlreadyClaimed,
    JobNotDue,
    JobNotFound,
    OwnershipLost,
    PartitionLimitReached,
    QueueLimitReached,
    RateLimited,
    SessionLost,
    UnknownQueue,
)
from ._contract import Claim, Job, JobBoard, QueueConfig, TrashedJob, claim_order
from ._memory_state import CoordinatorState, MemorySession
from ._queueing import check_queue_name, due_time
from ._session import SessionState
from ._trash import trash_id_for

__all__ = ["ClaimingMemoryBoard", "MemoryBoardBase"]


class MemoryBoardBase(JobBoard, ABC):
    """A client of an in-memory coordinator: its session, checked before each call, and the
    coordinator's jobs and queues as it sees them."""

    coordinator: CoordinatorState
    session: MemorySession
    _seen: int | None
    _next_due: float | None

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


class ClaimingMemoryBoard(MemoryBoardBase, ABC):
    """claimable, claim, holds and the releases (see the module docstring)."""

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

    async def release(self, claim: Claim, *, not_before: float | None = None) -> None:
        due = None if not_before is None else due_time(not_before)
        job = await self._release(claim)
        c = self.coordinator
        job = replace(job, claims=max(job.claims - 1, 0), version=job.version + 1)
        if due is not None:
            job = replace(job, not_before=due)  # claimable() sees when it falls due
        c.jobs[job.job_id] = job
        c._touch()

    async def trash(self, claim: Claim, reason: str) -> None:
        job = await self._release(claim)
        self.coordinator._end(job, "trashed", None)
        trash_id = trash_id_for(job.job_id, self.coordinator._next_zxid())
        self.coordinator.trash.append(TrashedJob(job, reason, time.time(), trash_id))
        self.coordinator._touch()
