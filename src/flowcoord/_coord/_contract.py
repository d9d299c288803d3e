"""The coordination contract: a session with explicit state, and a job board with claims.

Every board passes ``tests/contract/test_jobboard_contract.py``: the in-memory twin and the
ZooKeeper board alike. The conductor knows only this module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._session import SessionChange, SessionListener, SessionState

__all__ = [
    "Claim",
    "CoordinationSession",
    "Job",
    "JobBoard",
    "Member",
    "SessionChange",
    "SessionListener",
    "SessionState",
    "TrashedJob",
]


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
    """A posted flow waiting for (or held by) a conductor."""

    job_id: str
    flow: str  # registered flow name
    flow_id: str
    inputs: Mapping[str, Any] = field(default_factory=dict)
    priority: int = 0  # higher runs first
    claims: int = 0  # times it was claimed so far
    failures: int = 0  # times a conductor gave it up after an error
    created_at: float = 0.0
    owner: str | None = None  # the member holding its claim, if any
    version: int = 0  # opaque; for compare-and-set

    def sort_key(self) -> tuple[int, str]:
        return (-self.priority, self.job_id)


@dataclass(frozen=True, slots=True)
class Claim:
    """Ownership of a job. ``token`` is its fencing token: it grows with every claim of any
    job, so a newer owner's token is always larger. Valid only in ``generation``."""

    job: Job
    owner: str
    token: int
    generation: int


@dataclass(frozen=True, slots=True)
class TrashedJob:
    job: Job
    reason: str
    trashed_at: float


@dataclass(frozen=True, slots=True)
class Member:
    """A live conductor and the jobs it holds."""

    name: str
    info: Mapping[str, Any]
    claims: tuple[str, ...] = ()


class JobBoard(ABC):
    """Where producers post flows and conductors claim them.

    * ``post`` stores a job durably; ``jobs`` lists them by priority (highest first) then age.
    * ``claim`` is atomic: of two concurrent claims of one job exactly one wins, the other
      raises :class:`~flowcoord.errors.JobAlreadyClaimed`. A claim also counts the job's ``claims``.
      Claims are tied to the session: when it is lost, its claims vanish.
    * ``consume`` removes a claimed job, ``abandon`` releases the claim (the job stays and
      may count a failure), ``trash`` moves it aside with a reason. Each refuses a claim the
      caller no longer holds (:class:`~flowcoord.OwnershipLost`).
    * ``claimed_job`` finds a flow's job held by a live owner (an operator's lookup).
    * ``wait_changed`` returns when the board may have changed (a watch, never a poll loop in
      the caller); bound it with ``anyio.move_on_after``. A post, claim or release made after
      the caller's last ``jobs``/``claimable`` (or last return of ``wait_changed``) is never
      missed, even when it came before the call: then it returns at once. So ``list, decide,
      wait`` loops cannot sleep through a change.
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
    ) -> Job: ...

    @abstractmethod
    async def jobs(self) -> list[Job]: ...

    async def claimable(self) -> list[Job]:
        """The jobs nobody holds, by priority then age: what a conductor claims from. Their
        data may lag the board's (a board may keep what it read before): a claim checks the
        job's version and reads it again, so a stale entry costs a round trip, never a
        wrong claim."""
        return [job for job in await self.jobs() if job.owner is None]

    @abstractmethod
    async def get(self, job_id: str) -> Job: ...

    async def claimed_job(self, flow_id: str) -> Job | None:
        """The job of flow ``flow_id`` whose claim a live owner holds (``owner`` set), or
        ``None`` when no job of that flow is claimed: what an operator's take-over consults
        (:func:`~flowcoord.coordination.take_over`). If several are (the flow was posted
        twice), any one of them.

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
    async def consume(self, claim: Claim) -> None: ...

    @abstractmethod
    async def abandon(self, claim: Claim, *, failed: bool = False) -> None: ...

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
