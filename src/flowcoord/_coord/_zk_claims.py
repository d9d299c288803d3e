"""Claiming and releasing jobs on the ZooKeeper board: one transaction each.

- claim: check the queue node's version (so a claim never uses a stale limit), set the
  record's data with a version check (``claims + 1``), create the ephemeral claim node and,
  when the queue has a global limit, an ephemeral slot node ``slots/<queue>/<i>`` with
  ``i`` below the limit; when it has a partition limit and the job a partition, a partition
  slot ``pslots/<queue>/<pd>.<i>``; when it has a rate limit, set a free rate start
  ``rates/<queue>/<i>`` (version-checked) to the time of the claim (:mod:`._zk_limits`).
  The fencing token is the transaction's zxid, read from the record's new stat (the claim
  node's czxid is the same zxid; ZooKeeper answers a create in a multi with its path only).
- consume / trash: set the record's data (the version check proves nobody claimed since) to
  its summary, delete the claim node, the entry and the slots (and, for trash, create the
  trash node). abandon: set the record (``failures``), delete the claim node and the slots.
  release: as abandon, with ``claims - 1``; given a due time, the entry moves to the
  delayed window it falls due in (deleted, created there) in the same transaction.
  A vanished claim node or a moved version means the claim is gone (OwnershipLost).
"""

from __future__ import annotations

import math
import random
import time
from abc import ABC

from ..errors import (
    CoordinationUnavailable,
    JobAlreadyClaimed,
    JobNotDue,
    JobNotFound,
    NodeExists,
    NodeMissing,
    OwnershipLost,
    RateLimited,
    SessionLost,
    UnknownQueue,
    VersionConflict,
)
from ._contract import Claim, Job
from ._queueing import due_time
from ._session import SessionState
from ._zk_limits import LimitsBoard, free_starts
from ._zk_records import Raw, ended, is_job_id
from ._zk_types import CheckVersion, CreateNode, DeleteNode, OpResult, SetData, TxnOp

__all__ = ["ClaimingBoard"]


class _ShardGone(Exception):
    """The shard a release moves an entry to was deleted (empty) meanwhile."""


_ATTEMPTS = 8


class ClaimingBoard(LimitsBoard, ABC):
    """Claims and releases (see the module docstring)."""

    async def _current(self, job_id: str) -> tuple[Raw, int]:
        """The job's record and its version; JobNotFound once it has ended or is gone."""
        found = (await self._records([job_id]))[0] if is_job_id(job_id) else None
        if found is None or found[0].get("state", "queued") != "queued":
            raise JobNotFound(f"job {job_id!r} is gone (consumed, trashed or never posted)")
        return found[0], found[1].version

    async def claim(self, job: Job, owner: str) -> Claim:
        await self._setup()
        free = self._free.pop(job.job_id, None)
        if free is not None and free[0].version == job.version:
            raw, version = free[1], job.version
        else:
            raw, version = await self._current(job.job_id)
        record, claim_path = self.layout.record(job.job_id), self.layout.claim(job.job_id)
        await self._entry_path(job.job_id, raw)  # known from a scan; else found now, not later
        attempts = conflicts = 0
        while attempts < _ATTEMPTS:
            attempts += 1
            due = float(raw.get("not_before", 0.0))
            if due > time.time():
                raise JobNotDue(
                    f"job {job.job_id!r} is not due before {due}", job_id=job.job_id, not_before=due
                )
            queue = str(raw.get("queue", "default"))
            config, queue_version = await self._config(queue)
            claimed = {**raw, "claims": int(raw.get("claims", 0)) + 1}
            lock = {"owner": owner, "session": self.session.session_id, "claimed_at": time.time()}
            ops: list[TxnOp] = [
                CheckVersion(self.layout.queue(queue), queue_version),
                SetData(record, self._encode(claimed, "job"), version),
                CreateNode(claim_path, self._encode(lock, "claim"), ephemeral=True),
            ]
            slot = pslot = None
            slot_data = self._encode({"job": job.job_id, "owner": owner}, "slot")
            if config.concurrency is not None:
                slot = await self._free_slot(queue, config.concurrency)
                ops.append(CreateNode(f"{self.layout.slots(queue)}/{slot}", slot_data, True))
            partition = raw.get("partition")
            pslot_path = None
            if config.partition_limit is not None and partition is not None:
                partition = str(partition)
                pslot = await self._free_partition_slot(queue, partition, config.partition_limit)
                pslot_path = self.layout.pslot(queue, partition, pslot)
                ops.append(CreateNode(pslot_path, slot_data, True))
            start_path, start, now = None, -1, time.time()
            if config.rate_limit is not None:
                starts = await self._starts(queue, config, queue_version)
                untaken, next_at = free_starts(starts, config.rate_limit[1], now)
                if not untaken:
                    self._next_due = min(self._next_due or math.inf, next_at)
                    raise RateLimited(
                        f"queue {queue!r} started {config.rate_limit[0]} jobs within "
                        f"{config.rate_limit[1]} s across the board (its rate limit)",
                        queue=queue,
                        retry_after=max(next_at - now, 0.0),
                    )
                start = random.choice(untaken)
                start_path = f"{self.layout.rates(queue)}/{start}"
                data = self._encode({"used_at": now, "job": job.job_id}, "rate start")
                ops.append(SetData(start_path, data, starts[start][1]))
            generation = self.session.generation
            self.writes["claim"] += 1
            try:
                results = await self.session.transaction(ops, created_stats=False)
            except NodeExists as exc:
                if exc.path == claim_path:
                    raise JobAlreadyClaimed(f"job {job.job_id!r} is claimed already") from None
                continue  # the slot was taken meanwhile: another one
            except NodeMissing as exc:
                if exc.path == record:
                    raise JobNotFound(f"job {job.job_id!r} is gone (consumed or trashed)") from None
                if exc.path == ops[0].path:
                    raise UnknownQueue(f"queue {queue!r} is gone", queue=queue) from None
                if exc.path == pslot_path:  # a board older than partition limits
                    await self.layout.make_dir(self.layout.pslots(queue))
                    continue
                if exc.path == start_path:
                    self._rates.pop(queue, None)  # read (and made) again
                    continue
                raise
            except VersionConflict as exc:
                if exc.path == ops[0].path:
                    await self._config(queue, fresh=True)  # its limit changed
                    continue
                if exc.path == start_path:
                    await self._reread_start(queue, start)  # taken meanwhile: another one
                    conflicts += 1
                    if config.rate_limit is not None and conflicts <= config.rate_limit[0]:
                        attempts -= 1  # each conflict shows one more start taken
                    continue
                raw, version = await self._current(job.job_id)  # claimed (and released?) since
                if await self.session.exists(claim_path) is not None:
                    raise JobAlreadyClaimed(f"job {job.job_id!r} is claimed by another") from None
                continue
            job_stat, lock_stat = results[1].stat, results[2].stat
            assert job_stat is not None
            if (
                self.session.state in (SessionState.LOST, SessionState.CLOSED)
                or self.session.generation != generation
                or (lock_stat is not None and lock_stat.ephemeral_owner != self.session.session_id)
            ):
                raise SessionLost(f"job {job.job_id!r}: the session that claimed it is gone")
            cached, start_stat = self._rates.get(queue), results[-1].stat
            if start_path is not None and cached is not None and start_stat is not None:
                cached[1][start] = (now, start_stat.version)
            self._held[job.job_id] = claimed
            held = self._job(job.job_id, claimed, job_stat, owner, job.seq)
            # the claim node's czxid: this transaction's zxid, as the record's new mzxid is
            token = lock_stat.czxid if lock_stat is not None else job_stat.mzxid
            return Claim(held, owner, token, generation, slot, pslot)
        raise JobAlreadyClaimed(f"job {job.job_id!r} keeps changing; try again later")

    async def holds(self, claim: Claim) -> bool:
        if claim.generation != self.session.generation:
            return False
        stat = await self.session.exists(self.layout.claim(claim.job.job_id))
        return (
            stat is not None
            and stat.czxid == claim.token
            and stat.ephemeral_owner == self.session.session_id
            and claim.generation == self.session.generation
        )

    # -- releasing a claim -----------------------------------------------------------------

    def _lost(self, claim: Claim, why: str = "is no longer held") -> OwnershipLost:
        return OwnershipLost(
            f"job {claim.job.job_id!r}: claim {claim.token} {why}", flow_id=claim.job.flow_id
        )

    async def _raw_held(self, claim: Claim) -> Raw:
        raw = self._held.get(claim.job.job_id)
        if raw is not None:
            return raw
        found = (await self._records([claim.job.job_id]))[0]
        if found is None or found[1].version != claim.job.version:
            raise self._lost(claim)
        return found[0]

    async def _release(
        self, claim: Claim, kind: str, raw: Raw, ops: list[TxnOp], *, shard: str | None = None
    ) -> list[OpResult]:
        """Send one release transaction: the record's new data (version-checked), the claim
        node's deletion, then ``ops``; and give the claim's slot back. A moved version or a
        vanished node means the claim is gone (OwnershipLost), but for ``shard``, where
        ``ops`` create an entry: its vanishing (deleted when empty) raises :class:`_ShardGone`."""
        job_id = claim.job.job_id
        if claim.generation != self.session.generation:
            raise self._lost(claim, "belongs to a lost session")
        data = self._encode(raw, "job")
        fence: list[TxnOp] = [
            SetData(self.layout.record(job_id), data, claim.job.version),
            DeleteNode(self.layout.claim(job_id)),
        ]
        if claim.slot is not None:
            fence.append(DeleteNode(f"{self.layout.slots(claim.job.queue)}/{claim.slot}"))
        if claim.partition_slot is not None and claim.job.partition is not None:
            pslot = self.layout.pslot(claim.job.queue, claim.job.partition, claim.partition_slot)
            fence.append(DeleteNode(pslot))
        self.writes[kind] += 1
        try:
            return await self.session.transaction([*fence, *ops], created_stats=False)
        except NodeMissing as exc:
            if shard is not None and (exc.path or "").startswith(f"{shard}/"):
                raise _ShardGone from None
            raise self._lost(claim) from None
        except VersionConflict:
            raise self._lost(claim) from None
        except CoordinationUnavailable:
            if not await self.holds(claim):  # applied, or lost with the session
                raise self._lost(claim) from None
            raise
        finally:
            self._held.pop(job_id, None)

    async def consume(self, claim: Claim, *, outcome: str | None = None) -> None:
        raw = await self._raw_held(claim)
        entry = await self._entry_path(claim.job.job_id, raw)
        ops: list[TxnOp] = [DeleteNode(entry)] if entry is not None else []
        await self._release(claim, "consume", ended(raw, "consumed", outcome), ops)
        self._where.pop(claim.job.job_id, None)

    async def abandon(self, claim: Claim, *, failed: bool = False) -> None:
        raw = await self._raw_held(claim)
        raw = {**raw, "failures": int(raw.get("failures", 0)) + int(failed)}
        await self._release(claim, "abandon", raw, [])

    async def release(self, claim: Claim, *, not_before: float | None = None) -> None:
        due = None if not_before is None else due_time(not_before)
        raw = await self._raw_held(claim)
        raw = {**raw, "claims": max(int(raw.get("claims", 1)) - 1, 0)}  # this one: no count
        job_id = claim.job.job_id
        if due is None:
            await self._release(claim, "release", raw, [])
            return
        # due later: the entry moves to the delayed window it falls due in, as a post's
        old = await self._entry_path(job_id, raw)
        queue, priority = str(raw.get("queue", "default")), int(raw.get("priority", 0))
        folder, prefix, name = self._place(
            queue, priority, job_id, due, raw.get("partition"), time.time()
        )
        for _ in range(_ATTEMPTS):
            shard = await self._tails.shard(folder, prefix)
            moved = {**raw, "not_before": due, "shard": self.layout.relative(shard), "entry": name}
            ops: list[TxnOp] = [DeleteNode(old)] if old is not None else []
            ops.append(CreateNode(f"{shard}/{name}-", b"", sequential=True))
            try:
                results = await self._release(claim, "release", moved, ops, shard=shard)
            except _ShardGone:
                self._tails.forget(folder, prefix)
                continue
            entry = results[-1].path
            self._tails.posted(folder, prefix, int(entry[-10:]))
            self._where[job_id] = entry
            return
        raise CoordinationUnavailable(f"releasing job {job_id}: its shard keeps going away")

    async def trash(self, claim: Claim, reason: str) -> None:
        raw = await self._raw_held(claim)
        job = claim.job
        entry = await self._entry_path(job.job_id, raw)
        record = {
            "job": {**raw, "job_id": job.job_id},
            "reason": reason,
            "trashed_at": time.time(),
        }
        ops: list[TxnOp] = [DeleteNode(entry)] if entry is not None else []
        trash = f"{self.layout.dir('trash')}/{job.job_id}-"
        ops.append(CreateNode(trash, self._encode(record, "trash"), sequential=True))
        summary = {**ended(raw, "trashed", None), "reason": reason}
        await self._release(claim, "trash", summary, ops)
        self._where.pop(job.job_id, None)
