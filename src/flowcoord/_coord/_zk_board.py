"""``ZooKeeperJobBoard``: the job board on ZooKeeper, over a :class:`ZooKeeperSession`.

Node layout under ``path`` (default ``/board``, inside the session's namespace)::

    jobs/job-0000000042     persistent sequential: the job's JSON details (flow, flow_id,
                            inputs, priority, claims, failures, created_at)
    locks/job-0000000042    ephemeral: the claim, JSON {owner, session, claimed_at};
                            its czxid is the claim's fencing token
    members/<name>          ephemeral: a live conductor's JSON info
    trash/job-0000000042    persistent: JSON {job, reason, trashed_at}

Locks are siblings under ``locks/`` (not children of the job), so one children watch on
``jobs/`` and one on ``locks/`` see every post, claim, release, consume and trash.

Every change is one ZooKeeper write: post = one create; claim = one transaction
``set job data (version check, claims + 1) + create lock``; consume / abandon / trash = one
transaction that checks the job's version (it moves on with every claim, so a matching version
proves nobody claimed since), deletes the lock (which fails if the lock vanished with our
session) and deletes, updates or moves the job. A flow therefore costs three writes (post,
claim, consume) and its tasks none; :attr:`ZooKeeperJobBoard.writes` counts them by kind.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import anyio

from .._codec import Codec
from ..errors import (
    CoordinationError,
    CoordinationUnavailable,
    JobAlreadyClaimed,
    JobNotFound,
    NodeExists,
    NodeMissing,
    OwnershipLost,
    SessionLost,
    VersionConflict,
)
from ._contract import Claim, Job, JobBoard, Member, TrashedJob
from ._session import SessionState
from ._zk_session import Watcher, ZooKeeperSession
from ._zk_types import (
    CheckVersion,
    CreateNode,
    DeleteNode,
    NodeStat,
    SetData,
    TxnOp,
)
from ._zk_writes import check_path

__all__ = ["ZooKeeperJobBoard"]

_DIRS = ("jobs", "locks", "members", "trash")
_DETAIL_KEYS = ("flow", "flow_id", "inputs", "priority", "claims", "failures", "created_at")


class ZooKeeperJobBoard(JobBoard):
    """A job board kept in ZooKeeper (layout and transactions: see the module docstring).

    ``ZooKeeperJobBoard(session, path="/board")``; one board object per session. Reads run
    concurrently (at most ``read_concurrency`` at once). ``writes`` counts the writes this
    board sent, by kind (``post``, ``claim``, ``consume``, ``abandon``, ``trash``,
    ``register``, ``setup``), including refused ones.
    """

    session: ZooKeeperSession

    def __init__(
        self,
        session: ZooKeeperSession,
        *,
        path: str = "/board",
        codec: Codec | None = None,
        read_concurrency: int = 32,
    ) -> None:
        self.session = session
        self.path = check_path(path)
        self.codec = codec or Codec()
        self.writes: Counter[str] = Counter()
        self._limit = anyio.CapacityLimiter(read_concurrency)
        self._ready = False
        self._seen: tuple[list[str], list[str]] | None = None
        # Jobs nobody held when last listed by claimable(): their data changes only through
        # a claim, which drops them from here until their lock is gone again.
        self._free: dict[str, Job] = {}

    # -- paths and records ---------------------------------------------------------------------

    def _dir(self, name: str) -> str:
        return f"{self.path}/{name}" if self.path != "/" else f"/{name}"

    def _job_path(self, job_id: str) -> str:
        return f"{self._dir('jobs')}/{job_id}"

    def _lock_path(self, job_id: str) -> str:
        return f"{self._dir('locks')}/{job_id}"

    def _encode(self, value: Any, what: str) -> bytes:
        return self.codec.encode(value, what=what).encode()

    def _decode(self, data: bytes) -> Any:
        return self.codec.decode(data.decode()) if data else {}

    def _job(self, job_id: str, data: bytes, stat: NodeStat, owner: str | None = None) -> Job:
        d = self._decode(data)
        return Job(
            job_id=job_id,
            flow=d["flow"],
            flow_id=d["flow_id"],
            inputs=d.get("inputs") or {},
            priority=int(d.get("priority", 0)),
            claims=int(d.get("claims", 0)),
            failures=int(d.get("failures", 0)),
            created_at=float(d.get("created_at", 0.0)),
            owner=owner,
            version=stat.version,
        )

    @staticmethod
    def _details(job: Job, **changes: int) -> dict[str, Any]:
        d = {k: getattr(job, k) for k in _DETAIL_KEYS}
        d["inputs"] = dict(job.inputs)
        d.update(changes)
        return d

    # -- helpers ---------------------------------------------------------------------------------

    async def _get_many(self, paths: Sequence[str]) -> list[tuple[bytes, NodeStat] | None]:
        """Read ``paths`` concurrently (bounded); None for those that are gone."""
        results: list[tuple[bytes, NodeStat] | None] = [None] * len(paths)

        async def one(i: int) -> None:
            async with self._limit:
                results[i] = await self._get_or_none(paths[i])

        if len(paths) == 1:
            await one(0)
        elif paths:
            async with anyio.create_task_group() as tg:
                for i in range(len(paths)):
                    tg.start_soon(one, i)
        return results

    async def _setup(self) -> None:
        """Create the board's directories once (a read when they exist already)."""
        if self._ready:
            return
        try:
            present = set(await self.session.children(self.path))
        except NodeMissing:
            present = set()
        for name in _DIRS:
            if name not in present:
                self.writes["setup"] += 1
                await self.session.ensure_path(self._dir(name))
        self._ready = True

    async def _children(self, name: str, *, watch: bool = False) -> list[str]:
        try:
            return await self.session.children(self._dir(name), watch=watch)
        except NodeMissing:
            self._ready = False
            return []

    async def _get_or_none(self, path: str) -> tuple[bytes, NodeStat] | None:
        try:
            return await self.session.get(path)
        except NodeMissing:
            return None

    async def _owners(self, lock_names: Sequence[str]) -> dict[str, str]:
        """Job id → owner name, for the given locks (those gone meanwhile are left out)."""
        got = await self._get_many([self._lock_path(n) for n in lock_names])
        return {
            name: str(self._decode(found[0]).get("owner", "?"))
            for name, found in zip(lock_names, got, strict=True)
            if found is not None
        }

    # -- jobs ------------------------------------------------------------------------------------

    async def post(
        self,
        flow: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        flow_id: str | None = None,
        priority: int = 0,
    ) -> Job:
        await self._setup()
        job = Job(
            job_id="",
            flow=flow,
            flow_id=flow_id or uuid.uuid4().hex,
            inputs=dict(inputs or {}),
            priority=priority,
            created_at=time.time(),
        )
        data = self._encode(self._details(job), f"job of flow {flow!r}")
        self.writes["post"] += 1
        path, stat = await self.session.create(f"{self._dir('jobs')}/job-", data, sequential=True)
        return Job(**{**self._details(job), "job_id": path.rsplit("/", 1)[1]}, version=stat.version)

    async def jobs(self) -> list[Job]:
        await self._setup()
        names = await self._children("jobs")
        locks = await self._children("locks")
        self._seen = (names, locks)
        owners = await self._owners([n for n in locks if n in set(names)])
        got = await self._get_many([self._job_path(n) for n in names])
        jobs = [
            self._job(name, found[0], found[1], owners.get(name))
            for name, found in zip(names, got, strict=True)
            if found is not None
        ]
        return sorted(jobs, key=Job.sort_key)

    async def claimable(self) -> list[Job]:
        """Lists ``jobs/`` and ``locks/``, and reads only the free jobs it has not seen free
        before: a scan of a long queue costs two listings, not a read per job."""
        await self._setup()
        names = await self._children("jobs")
        locks = await self._children("locks")
        self._seen = (names, locks)
        held = set(locks)
        free = [n for n in names if n not in held]
        known = self._free
        self._free = {n: known[n] for n in free if n in known}
        new = [n for n in free if n not in known]
        for name, found in zip(
            new, await self._get_many([self._job_path(n) for n in new]), strict=True
        ):
            if found is not None:
                self._free[name] = self._job(name, found[0], found[1])
        return sorted(self._free.values(), key=Job.sort_key)

    async def get(self, job_id: str) -> Job:
        found = await self._get_or_none(self._job_path(job_id))
        if found is None:
            raise JobNotFound(f"no job {job_id!r} on the board (consumed, trashed or never posted)")
        owners = await self._owners([job_id])
        return self._job(job_id, found[0], found[1], owners.get(job_id))

    async def claimed_job(self, flow_id: str) -> Job | None:
        """One listing of ``locks/``, then a read of each claimed job (concurrent, bounded)
        and of the matching job's lock: O(claims) reads, however long the queue. A lock
        node exists while its owner's session does (it may outlive a killed owner by up
        to its session timeout)."""
        await self._setup()
        locks = await self._children("locks")
        got = await self._get_many([self._job_path(n) for n in locks])
        for name, found in zip(locks, got, strict=True):
            if found is None:
                continue  # consumed or trashed since the listing
            job = self._job(name, found[0], found[1])
            if job.flow_id != flow_id:
                continue
            owner = (await self._owners([name])).get(name)
            if owner is not None:  # else released meanwhile
                return replace(job, owner=owner)
        return None

    async def claim(self, job: Job, owner: str) -> Claim:
        await self._setup()
        self._free.pop(job.job_id, None)  # whatever happens, it changes or is gone
        current = job
        for _ in range(5):
            claimed = self._details(current, claims=current.claims + 1)
            lock = {"owner": owner, "session": self.session.session_id, "claimed_at": time.time()}
            ops: list[TxnOp] = [
                SetData(
                    self._job_path(job.job_id),
                    self._encode(claimed, "job"),
                    current.version,
                ),
                CreateNode(self._lock_path(job.job_id), self._encode(lock, "lock"), ephemeral=True),
            ]
            self.writes["claim"] += 1
            try:
                results = await self.session.transaction(ops)
            except NodeExists:
                raise JobAlreadyClaimed(f"job {job.job_id!r} is claimed already") from None
            except NodeMissing as exc:
                if exc.path == ops[0].path:
                    raise JobNotFound(f"job {job.job_id!r} is gone (consumed or trashed)") from None
                raise
            except VersionConflict:
                current = await self.get(job.job_id)  # claimed (and maybe released) meanwhile
                if current.owner is not None:
                    raise JobAlreadyClaimed(
                        f"job {job.job_id!r} is claimed by {current.owner}"
                    ) from None
                continue
            job_stat, lock_stat = results[0].stat, results[1].stat
            assert job_stat is not None
            assert lock_stat is not None
            if (
                self.session.state in (SessionState.LOST, SessionState.CLOSED)
                or lock_stat.ephemeral_owner != self.session.session_id
            ):
                raise SessionLost(f"job {job.job_id!r}: the session that claimed it is gone")
            held = Job(**{**claimed, "job_id": job.job_id}, owner=owner, version=job_stat.version)
            return Claim(held, owner, lock_stat.czxid, self.session.generation)
        raise JobAlreadyClaimed(f"job {job.job_id!r} keeps changing; try again later")

    async def holds(self, claim: Claim) -> bool:
        if claim.generation != self.session.generation:
            return False
        stat = await self.session.exists(self._lock_path(claim.job.job_id))
        return (
            stat is not None
            and stat.czxid == claim.token
            and stat.ephemeral_owner == self.session.session_id
            and claim.generation == self.session.generation
        )

    # -- releasing a claim -----------------------------------------------------------------------

    def _lost(self, claim: Claim, why: str = "is no longer held") -> OwnershipLost:
        return OwnershipLost(
            f"job {claim.job.job_id!r}: claim {claim.token} {why}", flow_id=claim.job.flow_id
        )

    async def _release(self, claim: Claim, kind: str, ops: list[TxnOp]) -> None:
        """Send one release transaction; a changed job version or a vanished lock means the
        claim is gone (OwnershipLost). Untagged transactions whose reply was lost are checked
        by reading the job back."""
        if claim.generation != self.session.generation:
            raise self._lost(claim, "belongs to a lost session")
        for _ in range(3):
            self.writes[kind] += 1
            try:
                await self.session.transaction(ops)
                return
            except (VersionConflict, NodeMissing):
                raise self._lost(claim) from None
            except CoordinationUnavailable:
                # The reply was lost and the outcome is unknown (only for a consume: the other
                # releases create or set data and are retried safely by the session).
                if await self.session.exists(self._job_path(claim.job.job_id)) is None:
                    return  # applied: the job is gone
                if not await self.holds(claim):
                    raise self._lost(claim) from None
        raise CoordinationUnavailable(f"job {claim.job.job_id!r}: {kind} did not go through")

    def _fence(self, claim: Claim) -> list[TxnOp]:
        return [
            CheckVersion(self._job_path(claim.job.job_id), claim.job.version),
            DeleteNode(self._lock_path(claim.job.job_id)),
        ]

    async def consume(self, claim: Claim) -> None:
        ops = [*self._fence(claim), DeleteNode(self._job_path(claim.job.job_id))]
        await self._release(claim, "consume", ops)

    async def abandon(self, claim: Claim, *, failed: bool = False) -> None:
        job = claim.job
        details = self._details(job, failures=job.failures + int(failed))
        ops = [
            *self._fence(claim),
            SetData(self._job_path(job.job_id), self._encode(details, "job"), job.version),
        ]
        await self._release(claim, "abandon", ops)

    async def trash(self, claim: Claim, reason: str) -> None:
        job = claim.job
        record = {
            "job": {**self._details(job), "job_id": job.job_id},
            "reason": reason,
            "trashed_at": time.time(),
        }
        ops = [
            *self._fence(claim),
            DeleteNode(self._job_path(job.job_id)),
            CreateNode(f"{self._dir('trash')}/{job.job_id}", self._encode(record, "trash")),
        ]
        await self._release(claim, "trash", ops)

    async def trashed(self) -> list[TrashedJob]:
        await self._setup()
        names = await self._children("trash")
        got = await self._get_many([f"{self._dir('trash')}/{n}" for n in names])
        out = []
        for found in got:
            if found is None:
                continue
            d = self._decode(found[0])
            jd = d["job"]
            job = Job(**{k: jd[k] for k in ("job_id", *_DETAIL_KEYS) if k in jd})
            out.append(TrashedJob(job, str(d.get("reason", "")), float(d.get("trashed_at", 0))))
        return sorted(out, key=lambda t: (t.trashed_at, t.job.job_id))

    # -- watching --------------------------------------------------------------------------------

    async def wait_changed(self) -> None:
        """Return when a job was posted, claimed, released or removed since the last
        :meth:`jobs` (at once if that happened already), or the session changed state.

        Watches arm on a re-read of ``jobs/`` and ``locks/``, compared with what ``jobs``
        saw, so a change between the two calls or across a reconnect is never missed.
        Never raises a coordination error: while the board cannot be read it waits for the
        session's next state change (at most a second). Bound it with ``anyio.move_on_after``.
        """
        session = self.session
        try:
            with (
                session.watcher(self._dir("jobs")) as wj,
                session.watcher(self._dir("locks")) as wl,
            ):
                await self._setup()
                seen = (
                    await self._children("jobs", watch=True),
                    await self._children("locks", watch=True),
                )
                before, self._seen = self._seen, seen
                if before is not None and before != seen:
                    return
                await _first(wj, wl)
        except CoordinationError:
            with anyio.move_on_after(1.0), session.subscribe() as changes:
                async for _ in changes:
                    return
                await anyio.sleep_forever()  # closed: nothing will change

    # -- members ---------------------------------------------------------------------------------

    async def register(self, name: str, info: Mapping[str, Any]) -> None:
        await self._setup()
        path = f"{self._dir('members')}/{name}"
        data = self._encode({**info, "session": self.session.session_id}, "member info")
        for _ in range(3):
            self.writes["register"] += 1
            try:
                await self.session.create(path, data, ephemeral=True)
                return
            except NodeExists:
                stat = await self.session.exists(path)
                if stat is None:
                    continue
                if stat.ephemeral_owner == self.session.session_id:
                    self.writes["register"] += 1
                    await self.session.set(path, data, -1)
                    return
                # left by an earlier (presumed lost) session of this member: replace it
                self.writes["register"] += 1
                with contextlib.suppress(NodeMissing, VersionConflict):
                    await self.session.delete(path, stat.version)
        raise CoordinationUnavailable(f"cannot register member {name!r}: its node keeps changing")

    async def members(self) -> list[Member]:
        await self._setup()
        names = await self._children("members")
        locks = await self._children("locks")
        infos = await self._get_many([f"{self._dir('members')}/{n}" for n in names])
        owners = await self._owners(locks)
        owned: dict[str, list[str]] = {}
        for job_id, owner in sorted(owners.items()):
            owned.setdefault(owner, []).append(job_id)
        out = []
        for name, found in zip(names, infos, strict=True):
            if found is None:
                continue
            info = dict(self._decode(found[0]))
            info.pop("session", None)
            out.append(Member(name, info, tuple(owned.get(name, ()))))
        return out


async def _first(*watchers: Watcher) -> None:
    """Return as soon as any of ``watchers`` wakes."""
    async with anyio.create_task_group() as tg:

        async def wait(w: Watcher) -> None:
            await w.wait()
            tg.cancel_scope.cancel()

        for w in watchers:
            tg.start_soon(wait, w)
