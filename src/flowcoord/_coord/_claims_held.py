"""What a conductor does with the board's jobs: which it claims (by priority, within its
capacity, its worker limits and the board's limits; a suspect alone), and how each claim
ends (consumed, given up, released, trashed), counted in :class:`ConductorStats`. The
conductor itself (its lifecycle, its session, running each job) is
:class:`~flowcoord._coord._conductor.Conductor`, which sets every attribute."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import anyio
import structlog

from ..errors import (
    CoordinationError,
    JobAlreadyClaimed,
    JobNotDue,
    JobNotFound,
    OwnershipLost,
    PartitionLimitReached,
    QueueLimitReached,
    RateLimited,
)
from ._contract import Claim, Job, JobBoard

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from .._engine._engine import FlowHandle

__all__ = ["ClaimKeeper", "ConductorStats", "Running"]


@dataclass
class ConductorStats:
    claimed: int = 0
    consumed: int = 0  # finished: succeeded, or failed and reverted
    failed: int = 0  # of the consumed, those whose flow failed
    abandoned: int = 0
    trashed: int = 0
    lost: int = 0  # taken away (session lost or fenced)
    quarantined: int = 0  # suspects run alone (see Conductor)
    released: int = 0  # stopped cleanly here and given back (shutdown, hand-back)
    handed_back: int = 0  # of the released, sleeping workflows given back until they wake


@dataclass
class Running:
    claim: Claim
    handle: FlowHandle | None = None
    done: anyio.Event = field(default_factory=anyio.Event)
    hand_back: float | None = None  # stopped to be given back until then (see _hand_back)
    deciding: bool = False  # a hand-back decision is pending


class ClaimKeeper:
    """The board's side of a conductor (see the module docstring)."""

    board: JobBoard
    name: str
    queues: tuple[str, ...]
    capacity: int
    max_waiting: int
    max_claims: int
    max_failures: int
    worker_limits: dict[str, int]
    stats: ConductorStats
    running: dict[str, Running]
    _tg: TaskGroup | None
    _closing: bool
    _suspect: str | None
    _log: structlog.typing.FilteringBoundLogger

    async def _run_job(self, r: Running) -> None:
        raise NotImplementedError

    # -- claiming ------------------------------------------------------------------------------

    def _busy_per_queue(self) -> Counter[str]:
        """The jobs running here that count against the capacity (not those only waiting),
        by queue."""
        return Counter(
            r.claim.job.queue
            for r in self.running.values()
            if r.handle is None or not r.handle.waiting
        )

    @property
    def waiting(self) -> int:
        """How many of the jobs held here only wait (their workflows sleep or wait for an
        event): they hold their claims but not a slot of ``capacity``."""
        return sum(1 for r in self.running.values() if r.handle is not None and r.handle.waiting)

    def _room(self, busy: int) -> int:
        return min(self.capacity - busy, self.capacity + self.max_waiting - len(self.running))

    async def _claim_some(self) -> None:
        """Claim free jobs by priority then age, up to ``capacity`` busy jobs (and
        ``max_waiting`` waiting ones besides) and each queue's worker limit; a suspect only
        alone (see the class docstring)."""
        if self._suspect is not None:
            return
        running = self._busy_per_queue()
        busy = sum(running.values())
        serve = [q for q in self.queues if running[q] < self.worker_limits.get(q, self.capacity)]
        room = self._room(busy)
        if not serve or room <= 0:
            return
        full: set[str] = set()
        full_partitions: set[tuple[str, str | None]] = set()
        for job in await self.board.claimable(queues=serve, limit=room):
            if self._room(busy) <= 0 or self._closing or self._suspect is not None:
                return
            if job.owner is not None or job.job_id in self.running or job.queue in full:
                continue
            if (job.queue, job.partition) in full_partitions:
                continue
            if running[job.queue] >= self.worker_limits.get(job.queue, self.capacity):
                continue
            doomed = self._trash_reason(replace(job, claims=job.claims + 1)) is not None
            if job.claims > 0 and busy and not doomed:
                return  # a suspect is next: let what runs here finish, then run it alone
            try:
                claim = await self.board.claim(job, self.name)
            except (QueueLimitReached, RateLimited):
                full.add(job.queue)  # a slot comes back when one of its jobs ends, a start
                continue  # when its period has passed (wait_changed wakes then)
            except PartitionLimitReached:
                full_partitions.add((job.queue, job.partition))  # the others' jobs go on
                continue
            except (JobAlreadyClaimed, JobNotFound, JobNotDue):
                continue
            self.stats.claimed += 1
            reason = self._trash_reason(claim.job)
            if reason is not None:
                await self._trash(claim, reason)
                continue
            suspect = claim.job.claims > 1
            if suspect and busy:
                # The listing lagged (claimed and released elsewhere since): not beside others.
                await self._give_up(claim, failed=False)
                return
            self.running[job.job_id] = r = Running(claim)
            running[job.queue] += 1
            busy += 1
            if suspect:
                self._suspect = job.job_id
                self.stats.quarantined += 1
                self._log.info("job_quarantined", job=job.job_id, claims=claim.job.claims)
            assert self._tg is not None
            self._tg.start_soon(self._run_job, r)

    def _trash_reason(self, job: Job) -> str | None:
        if job.claims > self.max_claims:
            return (
                f"claimed {job.claims - 1} times without finishing (max_claims="
                f"{self.max_claims}): its owners died, lost their sessions or gave it back before "
                "it finished, and from its second claim on it ran alone: a poison job?"
            )
        if job.failures >= self.max_failures:
            return f"given up after errors {job.failures} times (max_failures={self.max_failures})"
        return None

    async def _trash(self, claim: Claim, reason: str) -> None:
        self._log.warning("job_trashed", job=claim.job.job_id, reason=reason)
        try:
            await self.board.trash(claim, reason)
            self.stats.trashed += 1
        except (CoordinationError, OwnershipLost) as exc:
            self._log.warning("trash_failed", job=claim.job.job_id, error=str(exc))

    # -- how a claim ends ----------------------------------------------------------------------

    async def _release(self, claim: Claim, not_before: float | None) -> None:
        job = claim.job.job_id
        try:
            await self.board.release(claim, not_before=not_before)
        except (CoordinationError, OwnershipLost) as exc:
            # the claim goes with the session (or went): another owner resumes the flow
            self._log.warning("release_failed", job=job, error=str(exc))
            return
        self.stats.released += 1
        if not_before is not None:
            self.stats.handed_back += 1
            self._log.info("job_handed_back", job=job, until=not_before)
        else:
            self._log.info("job_released", job=job)

    async def _consume(self, claim: Claim, outcome: str) -> None:
        try:
            await self.board.consume(claim, outcome=outcome)
            self.stats.consumed += 1
        except OwnershipLost:
            self.stats.lost += 1
        except CoordinationError as exc:
            # The job stays; whoever claims it next finds the flow finished in the journal.
            self._log.warning("consume_failed", job=claim.job.job_id, error=str(exc))

    async def _give_up(self, claim: Claim, *, failed: bool) -> None:
        try:
            await self.board.abandon(claim, failed=failed)
            self.stats.abandoned += 1
        except (CoordinationError, OwnershipLost) as exc:
            self._log.warning("abandon_failed", job=claim.job.job_id, error=str(exc))
