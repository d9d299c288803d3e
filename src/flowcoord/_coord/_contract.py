"""The coordination contract: a session with explicit state, and a job board with claims.

Every board passes ``tests/contract/test_jobboard_contract.py``: the in-memory twin and the
ZooKeeper board alike. The conductor knows only this module.
"""

from __future__ import annotations

import heapq
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from ..errors import UnknownQueue
from ._queueing import DEFAULT_QUEUE, check_queue_name
from ._session import SessionChange, SessionListener, SessionState

__all__ = [
    "Claim",
    "CoordinationSession",
    "Job",
    "JobBoard",
    "JobState",
    "Member",
    "QueueConfig",
    "SessionChange",
    "SessionListener",
    "SessionState",
    "TrashedJob",
    "claim_order",
]

#: ``queued``: on the board (waiting, or claimed: see ``owner``); ``consumed`` / ``trashed``:
#: ended, and what a post under its key within the key retention window returns.
JobState = Literal["queued", "consumed", "trashed"]


class CoordinationSession(Protocol):
    """What the conductor needs of a session: its state, and every change of it."""

    @property
    def state(self) -> SessionState: ...

    @property
    def generation(self) -> int: ...

    async def wait_for(self, state: SessionState) -> None: ...

    def add_listener(self, listener: SessionListener) -> Callable[[], None]: ...


@dataclass(frozen=True, slots=True)
class Job:
    """A posted flow waiting for (or held by) a conductor.

    ``job_id`` is derived from ``key`` (its idempotency key, by default the flow id), so one
    key is one job. ``queue`` and ``priority`` say where it waits (higher priority first,
    then first posted first); ``not_before`` (epoch seconds, 0 for none) when it may run.
    ``state`` is ``queued`` while it is on the board; a post whose key names a job that has
    ended (within the board's key retention) returns that job with ``state`` ``consumed`` or
    ``trashed`` and the flow's ``outcome`` (its final state, when the conductor said).
    ``deduplicated`` is True when a post returned an existing job instead of posting one.
    ``partition`` is its partition key (e.g. a tenant id; None for none), which the queue's
    ``partition_limit`` applies to. ``headers`` are small string metadata that travel with it
    (trace context, say); they are not part of what it runs: a repeated post with other
    headers (or another partition, queue or priority) is the same job, as first posted.
    """

    job_id: str
    flow: str  # registered flow name
    flow_id: str
    inputs: Mapping[str, Any] = field(default_factory=dict)
    priority: int = 0  # higher runs first
    claims: int = 0  # times it was claimed so far (but given back by release)
    failures: int = 0  # times a conductor gave it up after an error
    created_at: float = 0.0
    owner: str | None = None  # the member holding its claim, if any
    version: int = 0  # opaque; for compare-and-set
    queue: str = DEFAULT_QUEUE
    key: str = ""
    not_before: float = 0.0
    state: JobState = "queued"
    outcome: str | None = None
    deduplicated: bool = False
    seq: int = 0  # opaque: the posting order within its queue and priority
    partition: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def delayed(self) -> bool:
        """Posted to run later than it was posted (a ``not_before`` past at posting is not)."""
        return self.not_before > self.created_at

    def sort_key(self) -> tuple[int, bool, float, int, str]:
        """Claim order within its queue: priority (highest first); within a priority the
        delayed jobs first, earliest due first (they have waited already), then the others,
        first posted first."""
        due = self.not_before if self.delayed else 0.0
        return (-self.priority, not self.delayed, due, self.seq, self.job_id)


def claim_order(jobs: Iterable[Job]) -> list[Job]:
    """``jobs`` in claim order: each queue's in its own order (:meth:`Job.sort_key`), the
    queues merged by priority, then by the time their next jobs were posted (or fell due),
    so that no queue waits behind another's backlog of the same priority."""
    per_queue: dict[str, list[Job]] = {}
    for job in jobs:
        per_queue.setdefault(job.queue, []).append(job)
    lists = [sorted(js, key=Job.sort_key) for js in per_queue.values()]
    heap = [(_merge_key(js[0]), i, 0) for i, js in enumerate(lists)]
    heapq.heapify(heap)
    out = []
    while heap:
        _, i, at = heapq.heappop(heap)
        out.append(lists[i][at])
        if at + 1 < len(lists[i]):
            heapq.heappush(heap, (_merge_key(lists[i][at + 1]), i, at + 1))
    return out


def _merge_key(job: Job) -> tuple[int, bool, float, float]:
    due = job.not_before if job.delayed else 0.0
    return (-job.priority, not job.delayed, due, job.created_at)


@dataclass(frozen=True, slots=True)
class Claim:
    """Ownership of a job. ``token`` is its fencing token: it grows with every claim of any
    job, so a newer owner's token is always larger. Valid only in ``generation``. ``slot``
    is the queue's concurrency slot it holds (None when the queue has no global limit);
    ``partition_slot`` the slot of the job's partition (None: no partition limit applies)."""

    job: Job
    owner: str
    token: int
    generation: int
    slot: int | None = None
    partition_slot: int | None = None


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """A queue declared on a board. ``concurrency``: at most that many of its jobs run at
    once across every conductor of the board (None: no limit). ``partition_limit``: at most
    that many of its jobs of one partition key run at once across the board (jobs without a
    partition are not limited by it). ``rate_limit``: ``(count, period)``, at most ``count``
    claims (starts) of its jobs in any ``period`` seconds across the board, as told by the
    clients' clocks. A conductor's own limit per queue is its own business
    (``Conductor(worker_limits=...)``)."""

    name: str
    concurrency: int | None = None
    partition_limit: int | None = None
    rate_limit: tuple[int, float] | None = None


@dataclass(frozen=True, slots=True)
class TrashedJob:
    """A job moved aside (by its conductor, or by an operator: :meth:`JobBoard.trash_job`),
    with the reason and when (epoch seconds). ``trash_id`` names this trash entry (one job
    may be trashed, requeued and trashed again): what :meth:`JobBoard.requeue` takes."""

    job: Job
    reason: str
    trashed_at: float
    trash_id: str = ""


@dataclass(frozen=True, slots=True)
class Member:
    """A live conductor and the jobs it holds."""

    name: str
    info: Mapping[str, Any]
    claims: tuple[str, ...] = ()


class JobBoard(ABC):
    """Where producers post flows and conductors claim them.

    * ``post`` stores a job durably in a named ``queue`` (declared first: ``declare_queue``;
      ``"default"`` always exists), idempotently: a job is known by its ``key`` (by default
      its flow id), and posting a key again returns the job it names (``deduplicated``), or,
      for an ended one within the key retention, that job with its ``state`` and
      ``outcome``; another flow or other inputs under a taken key raise
      :class:`~flowcoord.errors.JobKeyConflict`. ``not_before`` delays it (a time past is
      now); ``partition`` and ``headers`` are kept with it (:class:`Job`; bad ones raise
      :class:`~flowcoord.errors.ConfigurationError`). ``jobs`` lists them in claim order: by
      priority (highest first), then by when they became eligible (posted, or due).
    * ``claimable`` lists the jobs nobody holds that may run now, in claim order, from the
      given queues, leaving out queues whose global ``concurrency`` is used up or whose
      ``rate_limit`` has no start left (at most as many of a queue as it has starts left),
      and the jobs of partitions that run their ``partition_limit`` (at most as many of a
      partition as it has room for; the other partitions' jobs are listed, not held up);
      ``limit`` bounds how many (a board reads only as far as it must).
    * ``claim`` is atomic: of two concurrent claims of one job exactly one wins, the other
      raises :class:`~flowcoord.errors.JobAlreadyClaimed`. It takes one of the queue's
      concurrency slots if it has a limit (none left:
      :class:`~flowcoord.errors.QueueLimitReached`), one of the partition's slots if the
      queue has a ``partition_limit`` and the job a ``partition`` (none left:
      :class:`~flowcoord.errors.PartitionLimitReached`), one of the queue's starts if it
      has a ``rate_limit`` (none left: :class:`~flowcoord.errors.RateLimited`, with
      ``retry_after``), refuses a job not yet due (:class:`~flowcoord.errors.JobNotDue`),
      and counts the job's ``claims``. Claims and slots are tied to the session: when it is
      lost, they vanish; a start once taken stays taken for the period.
    * ``consume`` removes a claimed job (keeping its key, with the ``outcome``), ``abandon``
      releases the claim (the job stays and may count a failure), ``trash`` moves it aside
      with a reason. Each refuses a claim the caller no longer holds
      (:class:`~flowcoord.OwnershipLost`) and gives its slots back.
    * ``claimed_job`` finds a flow's job held by a live owner (an operator's lookup).
    * ``wait_changed`` returns when the board may have changed (a watch, never a poll loop in
      the caller), when a delayed job the last ``claimable`` saw falls due, or when a queue
      the last ``claimable`` left out (or the last ``claim`` found) rate limited gets a
      start back; bound it with ``anyio.move_on_after``. A change that could alter what the
      caller's last ``jobs``/``claimable`` returned (a post, claim or release), made after it
      (or after the last return of ``wait_changed``), is never missed, even when it came
      before the call: then it returns at once. So ``list, decide, wait`` loops cannot sleep
      through one.
    """

    session: CoordinationSession

    @abstractmethod
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
    ) -> Job: ...

    @abstractmethod
    async def jobs(self, *, queue: str | None = None, limit: int | None = None) -> list[Job]:
        """The jobs on the board (of ``queue``, or all), waiting or claimed (``owner``), in
        claim order; at most ``limit`` of them (the first ones) when given. An operator's
        listing: without a limit it reads every job."""

    async def claimable(
        self, *, queues: Sequence[str] | None = None, limit: int | None = None
    ) -> list[Job]:
        """The jobs nobody holds that may run now, in claim order, from ``queues`` (all when
        None), without the queues whose global concurrency is used up: what a conductor
        claims from. Their data may lag the board's (a board may keep what it read before):
        a claim checks the job's version and reads it again, so a stale entry costs a
        round trip, never a wrong claim."""
        jobs = [
            j
            for j in await self.jobs()
            if j.owner is None and (queues is None or j.queue in queues)
        ]
        return jobs[:limit] if limit is not None else jobs

    @abstractmethod
    async def get(self, job_id: str) -> Job: ...

    async def claimed_job(self, flow_id: str) -> Job | None:
        """The job of flow ``flow_id`` whose claim a live owner holds (``owner`` set), or
        ``None`` when no job of that flow is claimed: what an operator's take-over consults
        (:func:`~flowcoord.coordination.take_over`). If several are (the flow was posted
        under several keys), any one of them.

        A claim is live as long as its session: on ZooKeeper an ephemeral lock node, which
        outlives an owner killed without closing its session by up to the session timeout.
        The answer is a snapshot (a claim may come or go right after it). An operator's
        lookup, not a hot path: this default reads every job (:meth:`jobs`); the boards here
        scan only the claimed jobs (O(claims) reads, plus one listing on ZooKeeper).
        """
        for job in await self.jobs():
            if job.flow_id == flow_id and job.owner is not None:
                return job
        return None

    @abstractmethod
    async def claim(self, job: Job, owner: str) -> Claim: ...

    @abstractmethod
    async def holds(self, claim: Claim) -> bool:
        """True if ``claim`` is still held (re-read from the server, not cached)."""

    @abstractmethod
    async def consume(self, claim: Claim, *, outcome: str | None = None) -> None:
        """Remove the claimed job; its key stays taken for the key retention, remembering
        ``outcome`` (e.g. the flow's final state) for a post that repeats it."""

    @abstractmethod
    async def abandon(self, claim: Claim, *, failed: bool = False) -> None: ...

    @abstractmethod
    async def release(self, claim: Claim, *, not_before: float | None = None) -> None:
        """Give the claimed job back after its flow was stopped cleanly (journaled
        SUSPENDED, nothing running): unlike :meth:`abandon`, this claim does not count in
        ``claims`` (the job is no suspect, see :class:`~flowcoord.coordination.Conductor`).
        ``not_before`` (epoch seconds): the job is due only then, as if posted with it (a
        conductor hands a sleeping workflow back until it wakes); None keeps its due time.
        Raises :class:`~flowcoord.OwnershipLost` if the claim is not held."""

    @abstractmethod
    async def trash(self, claim: Claim, reason: str) -> None: ...

    @abstractmethod
    async def trashed(self) -> list[TrashedJob]: ...

    @abstractmethod
    async def wait_changed(self) -> None: ...

    @abstractmethod
    async def register(self, name: str, info: Mapping[str, Any]) -> None:
        """Announce a live member (ephemeral: it vanishes with the session)."""

    @abstractmethod
    async def members(self) -> list[Member]: ...

    # -- queues ------------------------------------------------------------------------------

    @abstractmethod
    async def declare_queue(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        partition_limit: int | None = None,
        rate_limit: tuple[int, float] | None = None,
    ) -> QueueConfig:
        """Create queue ``name``, or set its configuration to this one (see
        :class:`QueueConfig`; every limit None for none): ``concurrency`` is its global limit
        and ``partition_limit`` its limit per partition key (each at least 1), ``rate_limit``
        ``(count, period)`` (count at least 1, period finite and above 0). A lowered limit
        applies to new claims at once; the jobs running above it keep their slots until they
        end. A changed rate limit counts the starts taken under the old one."""

    @abstractmethod
    async def queues(self) -> list[QueueConfig]:
        """The declared queues, by name."""

    async def queue(self, name: str) -> QueueConfig:
        """Queue ``name``'s configuration; :class:`~flowcoord.errors.UnknownQueue` if it is not
        declared."""
        check_queue_name(name)
        for config in await self.queues():
            if config.name == name:
                return config
        raise UnknownQueue(f"no queue {name!r} on the job board", queue=name)

    @abstractmethod
    async def expire_keys(self) -> int:
        """Forget (some of) the keys of jobs that ended longer than the key retention ago;
        return how many. Conductors call it now and then; a post under an expired key
        replaces it anyway, so this only frees space."""

    # -- an operator's hand: trash, requeue, purge -------------------------------------------

    @abstractmethod
    async def trash_job(self, job_id: str, reason: str) -> TrashedJob:
        """Move job ``job_id``, waiting and held by nobody, to the trash with ``reason`` (an
        operator's act; conductors trash what they hold with :meth:`trash`). Atomic against
        a claim: of a claim and this, one wins. A claimed job raises
        :class:`~flowcoord.errors.JobAlreadyClaimed` (cancel or stop its flow first); a job
        not on the board (ended, or never posted) :class:`~flowcoord.errors.JobNotFound`.
        Its key stays taken, as a trashed job's does, for the key retention."""

    @abstractmethod
    async def requeue(self, trash_id: str) -> Job:
        """Post the job of trash entry ``trash_id`` again, and remove the entry (at once):
        the same flow, flow id, inputs, queue, priority, ``not_before`` and key, its
        ``claims`` and ``failures`` reset. An unknown entry raises
        :class:`~flowcoord.errors.JobNotFound`; a key taken meanwhile by a job on the board
        (posted again once the key expired) :class:`~flowcoord.errors.JobKeyConflict`."""

    @abstractmethod
    async def purge_trash(self, *, before: float | None = None) -> int:
        """Delete the trash entries (those trashed before ``before``, epoch seconds, when
        given); return how many. The jobs' keys are not affected."""
