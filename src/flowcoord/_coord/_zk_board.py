"""``ZooKeeperJobBoard``: the job board on ZooKeeper, over a :class:`ZooKeeperSession`.

The node layout is in :mod:`._zk_layout` (queues bucketed by priority, sharded by sequence,
delayed jobs by the window they fall due in; one record per idempotency key); scans in claim
order in :mod:`._zk_scan`; posts and keys in :mod:`._zk_keys`; claims and releases in
:mod:`._zk_claims` (the slots and rate starts a claim takes in :mod:`._zk_limits`). Every
change is one ZooKeeper write (a transaction): a flow costs three (post, claim, consume),
with or without global, partition or rate limits, and its tasks none;
:attr:`ZooKeeperJobBoard.writes` counts them by kind. Every listing is bounded, whatever the
length of a queue: a scan for ``n`` jobs lists the claims, the queue's buckets and shards up
to the ``n``-th free job, and reads the records of the jobs it has not seen free before.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import anyio

from ..errors import (
    CoordinationError,
    CoordinationUnavailable,
    JobNotFound,
    NodeExists,
    NodeMissing,
    NodeNotEmpty,
    VersionConflict,
)
from ._contract import Job, Member, TrashedJob, claim_order
from ._zk_claims import ClaimingBoard
from ._zk_keys import PostingBoard
from ._zk_layout import partition_digest
from ._zk_operator import OperatorBoard
from ._zk_records import is_job_id
from ._zk_scan import PartitionRoom, Scan, scan_queue
from ._zk_session import Watcher

__all__ = ["ZooKeeperJobBoard"]


class ZooKeeperJobBoard(PostingBoard, ClaimingBoard, OperatorBoard):
    """A job board kept in ZooKeeper (layout and transactions: see the module docstring).

    ``ZooKeeperJobBoard(session, path="/board", key_retention=86400)``; one board object
    per session. Reads run concurrently (at most ``read_concurrency`` at once). ``writes``
    counts the writes this board sent, by kind (``post``, ``claim``, ``consume``,
    ``abandon``, ``trash``, ``register``, ``declare``, ``expire``, ``cleanup``, ``setup``),
    including refused ones. A board made by an older layout is refused
    (:class:`~flowcoord.errors.BoardLayoutError`).
    """

    # -- listing ---------------------------------------------------------------------------

    async def _scan(
        self,
        queues: Sequence[str] | None,
        *,
        limit: int | None,
        free_only: bool,
    ) -> tuple[Scan, set[str], dict[str, int]]:
        """Scan ``queues`` (all declared when None), each in its claim order and up to
        ``limit`` entries; also return the claimed job ids, and the slots held per limited
        queue. The queues are merged (by posting time) once their records are read. For
        ``free_only``, a queue with a rate limit is scanned only as far as it has starts left
        (none: left out, and ``next_due`` says when one comes back), one with a partition
        limit passes over the entries of full partitions (``Scan.rooms``)."""
        await self._setup()
        scan = Scan()
        claims_dir = self.layout.dir("claims")
        claimed = await self._ls(claims_dir)
        scan.listed[claims_dir] = tuple(claimed)
        if queues is None:
            queues_dir = self.layout.dir("queues")
            queues = await self._ls(queues_dir)
            scan.listed[queues_dir] = tuple(queues)
        held = set(claimed)
        slots: dict[str, int] = {}
        now = time.time() if free_only else None
        for queue in queues:
            config, version = await self._config(queue)
            if config.concurrency is not None and free_only:
                folder = self.layout.slots(queue)
                taken = await self._ls(folder)
                scan.listed[folder] = tuple(taken)
                slots[queue] = len(taken)
                if len(taken) >= config.concurrency:
                    continue  # used up: its jobs wait for a slot (a release changes `claims`)
            want, room = limit, None
            if config.rate_limit is not None and now is not None:
                wanted = math.inf if limit is None else limit
                free, next_at = await self._untaken_starts(queue, config, version, now, wanted)
                if not free:
                    scan.due_at(next_at)  # wait_changed wakes when a start comes back
                    continue
                want = free if limit is None else min(limit, free)
            if config.partition_limit is not None and free_only:
                names = await self._ls(self.layout.pslots(queue))
                room = PartitionRoom.of_slots(config.partition_limit, names)
                scan.rooms[queue] = room.copy()  # a release changes `claims`, as above
            skip = held if free_only else ()
            await scan_queue(
                self.layout,
                self._ls,
                scan,
                queue,
                skip=skip,
                limit=want,
                now=now,
                buckets=self._buckets if free_only else None,
                room=room,
            )
        return scan, held, slots

    async def _tidy(self, scan: Scan, stale: list[str]) -> None:
        """Delete the empty shards a scan found (a write each, seldom: once per shard), and
        entries whose record ended that were seen in two scans running (a consume that could
        not find its entry leaves one behind)."""
        again = [p for p in stale if p in self._stale]
        self._stale = frozenset(stale)
        for path in [*scan.empty, *again]:
            self.writes["cleanup"] += 1
            with contextlib.suppress(NodeMissing, NodeNotEmpty, VersionConflict):
                await self.session.delete(path)

    async def jobs(self, *, queue: str | None = None, limit: int | None = None) -> list[Job]:
        want = limit
        while True:
            scan, held, _ = await self._scan(
                None if queue is None else [queue], limit=want, free_only=False
            )
            self._seen = scan.listed
            ids = [e.job_id for e in scan.entries]
            owners = await self._owners([j for j in ids if j in held])
            jobs = []
            for entry, found in zip(scan.entries, await self._records(ids), strict=True):
                if found is not None and found[0].get("state", "queued") == "queued":
                    owner = owners.get(entry.job_id)
                    jobs.append(self._job(entry.job_id, found[0], found[1], owner, entry.order))
            if limit is None or want is None or len(jobs) >= limit or len(ids) < want:
                return claim_order(jobs)[:limit]
            want *= 2  # some ended between the listing and the read: look further

    async def claimable(
        self, *, queues: Sequence[str] | None = None, limit: int | None = None
    ) -> list[Job]:
        """Scans only as far as ``limit`` free jobs (see :mod:`._zk_scan`), and reads only
        the records of jobs it has not seen free before: a scan of a long queue costs a few
        bounded listings, not a read per job."""
        scan, _, _ = await self._scan(queues, limit=limit, free_only=True)
        self._seen = scan.listed
        self._next_due = scan.next_due
        known = self._free
        new = [e.job_id for e in scan.entries if e.job_id not in known]
        got = dict(zip(new, await self._records(new), strict=True))
        self._free = {}
        stale = []
        for entry in scan.entries:
            if entry.job_id in known:
                self._free[entry.job_id] = known[entry.job_id]
                continue
            found = got.get(entry.job_id)
            if found is None or found[0].get("state", "queued") != "queued":
                stale.append(entry.path)  # ended (or replaced) since the listing
                continue
            job = self._job(entry.job_id, found[0], found[1], None, entry.order)
            self._free[entry.job_id] = (job, found[0])
        held = {j: p for j, p in self._where.items() if j in self._held}
        self._where = {**held, **{e.job_id: e.path for e in scan.entries}}
        await self._tidy(scan, stale)
        out = []
        for job in claim_order(job for job, _ in self._free.values()):
            room = scan.rooms.get(job.queue)
            partition = job.partition  # the record's (an entry may be named without it)
            if room is not None and partition and not room.take(partition_digest(partition)):
                continue
            out.append(job)
        return out[:limit]

    async def get(self, job_id: str) -> Job:
        found = (await self._records([job_id]))[0] if is_job_id(job_id) else None
        if found is None or found[0].get("state", "queued") != "queued":
            raise JobNotFound(f"no job {job_id!r} on the board (consumed, trashed or never posted)")
        owner = (await self._owners([job_id])).get(job_id)
        job = self._job(job_id, found[0], found[1], owner)
        if owner is None:
            self._free[job_id] = (job, found[0])
        return job

    async def claimed_job(self, flow_id: str) -> Job | None:
        """One listing of ``claims/``, then a read of each claimed job's record (concurrent,
        bounded) and of the matching job's claim: O(claims) reads, however long the queue.
        A claim node exists while its owner's session does (it may outlive a killed owner
        by up to its session timeout)."""
        await self._setup()
        claimed = await self._ls(self.layout.dir("claims"))
        for job_id, found in zip(claimed, await self._records(claimed), strict=True):
            if found is None or found[0].get("flow_id") != flow_id:
                continue  # ended since the listing, or another flow's
            owner = (await self._owners([job_id])).get(job_id)
            if owner is not None:  # else released meanwhile
                return self._job(job_id, found[0], found[1], owner)
        return None

    async def trashed(self) -> list[TrashedJob]:
        await self._setup()
        folder = self.layout.dir("trash")
        names = await self._ls(folder)
        out = []
        got = await self._get_many([f"{folder}/{n}" for n in names])
        for name, found in zip(names, got, strict=True):
            if found is None:
                continue
            d = self._decode(found[0])
            jd = dict(d["job"])
            job = replace(self._job(str(jd.pop("job_id")), jd, found[1]), version=0)
            reason, at = str(d.get("reason", "")), float(d.get("trashed_at", 0))
            out.append(TrashedJob(job, reason, at, name))
        return sorted(out, key=lambda t: (t.trashed_at, t.job.job_id))

    # -- watching --------------------------------------------------------------------------

    async def wait_changed(self) -> None:
        """Return when a job was posted, claimed, released or removed since the last
        :meth:`jobs` or :meth:`claimable` (at once if that happened already), when the next
        delayed job the last :meth:`claimable` saw falls due, or when the session changed
        state.

        Watches arm on a re-read of the folders the last listing read (the claims, the
        queues' buckets and the shards it listed), compared with what it saw, so a change
        between the two calls or across a reconnect is never missed. Never raises a
        coordination error: while the board cannot be read it waits for the session's next
        state change (at most a second). Bound it with ``anyio.move_on_after``.
        """
        session = self.session
        try:
            before = self._seen
            if before is None:  # nothing listed yet: list to know what to watch, then wait
                await self.claimable()
            paths = list(self._seen or {})
            with contextlib.ExitStack() as stack:
                watchers = [stack.enter_context(session.watcher(p)) for p in paths]
                now_seen = dict(zip(paths, await self._relist(paths), strict=True))
                self._seen = now_seen
                self._buckets.refresh(now_seen)
                if before is not None and before != now_seen:
                    return
                due, self._next_due = self._next_due, None
                with anyio.move_on_after(math.inf if due is None else due - time.time()):
                    await _first(*watchers)
        except CoordinationError:
            with anyio.move_on_after(1.0), session.subscribe() as changes:
                async for _ in changes:
                    return
                await anyio.sleep_forever()  # closed: nothing will change

    async def _relist(self, paths: Sequence[str]) -> list[tuple[str, ...]]:
        out: list[tuple[str, ...]] = [()] * len(paths)

        async def one(i: int) -> None:
            async with self._limit:
                out[i] = tuple(await self.layout.children(paths[i], watch=True))

        async with anyio.create_task_group() as tg:
            for i in range(len(paths)):
                tg.start_soon(one, i)
        return out

    # -- members ---------------------------------------------------------------------------

    async def register(self, name: str, info: Mapping[str, Any]) -> None:
        await self._setup()
        path = f"{self.layout.dir('members')}/{name}"
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
        names = await self._ls(self.layout.dir("members"))
        claimed = await self._ls(self.layout.dir("claims"))
        infos = await self._get_many([f"{self.layout.dir('members')}/{n}" for n in names])
        owners = await self._owners(claimed)
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
    """Return as soon as any of ``watchers`` wakes (never, when there are none)."""
    async with anyio.create_task_group() as tg:

        async def wait(w: Watcher) -> None:
            await w.wait()
            tg.cancel_scope.cancel()

        for w in watchers:
            tg.start_soon(wait, w)
        if not watchers:
            await anyio.sleep_forever()
