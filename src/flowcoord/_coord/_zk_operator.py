"""An operator's hand on the ZooKeeper board: trash a waiting job, requeue a trashed one,
purge the trash. One transaction each (a purge: one per 50 entries).

- trash_job: read the record, then the claim node. A claim made after that read has set the
  record's data (``claims + 1``), so the transaction's version check on the record fails
  if anyone claimed (or released) the job since; a claim node seen is refused at once. The
  transaction shrinks the record to its summary (``trashed``, the key kept), deletes the
  entry and creates the trash node ``trash/<id>-<seq>`` (its name is the ``trash_id``).
- requeue: read the trash node, then the job's record. The transaction writes the record
  anew (created when its key expired and it was swept, else set with a version check: a
  record that is a queued job again, posted under the key once it expired, is a
  :class:`~flowcoord.errors.JobKeyConflict`), creates the entry in its bucket's tail shard
  (or the delayed window it falls due in, as a post does) and deletes the trash node with a
  version check, so a requeue happens once however many operators press the button.

``writes`` counts these as ``trash``, ``requeue`` and ``purge``.
"""

from __future__ import annotations

import contextlib
import time
from abc import ABC

from ..errors import (
    CoordinationUnavailable,
    JobAlreadyClaimed,
    JobKeyConflict,
    JobNotFound,
    NodeExists,
    NodeMissing,
    VersionConflict,
)
from ._contract import Job, TrashedJob
from ._trash import TRASH_ID_RULE, is_trash_id
from ._zk_records import BoardBase, Raw, ended, is_job_id
from ._zk_types import CreateNode, DeleteNode, SetData, TxnOp

__all__ = ["OperatorBoard"]

_ATTEMPTS = 8
_PURGE_BATCH = 50
# What a trashed record holds that a requeued one must not: its place, and how it ended.
_NOT_REQUEUED = frozenset({"job_id", "shard", "entry", "state", "outcome", "ended_at", "reason"})


class OperatorBoard(BoardBase, ABC):
    """trash_job, requeue, purge_trash (see the module docstring)."""

    async def trash_job(self, job_id: str, reason: str) -> TrashedJob:
        await self._setup()
        record_path = self.layout.record(job_id) if is_job_id(job_id) else ""
        for _ in range(_ATTEMPTS):
            found = (await self._records([job_id]))[0] if record_path else None
            if found is None or found[0].get("state", "queued") != "queued":
                raise JobNotFound(
                    f"no job {job_id!r} on the board (consumed, trashed or never posted)"
                )
            raw, stat = found
            owner = (await self._owners([job_id])).get(job_id)  # read after the record
            if owner is not None:
                raise JobAlreadyClaimed(
                    f"job {job_id!r} is claimed by {owner}: cancel or stop its flow first "
                    "(its conductor then releases it)"
                )
            entry = await self._entry_path(job_id, raw)
            now = time.time()
            kept = {"job": {**raw, "job_id": job_id}, "reason": reason, "trashed_at": now}
            summary = {**ended(raw, "trashed", None), "reason": reason}
            ops: list[TxnOp] = [SetData(record_path, self._encode(summary, "job"), stat.version)]
            if entry is not None:
                ops.append(DeleteNode(entry))
            trash = f"{self.layout.dir('trash')}/{job_id}-"
            ops.append(CreateNode(trash, self._encode(kept, "trash"), sequential=True))
            self.writes["trash"] += 1
            try:
                results = await self.session.transaction(ops)
            except VersionConflict:
                continue  # claimed, released or changed since the read: look again
            except NodeMissing as exc:
                if exc.path == entry:
                    self._where.pop(job_id, None)  # a stale place: find it in its shard
                continue
            self._free.pop(job_id, None)
            self._where.pop(job_id, None)
            job = self._job(job_id, raw, stat)
            return TrashedJob(job, reason, now, results[-1].path.rpartition("/")[2])
        raise CoordinationUnavailable(f"trashing job {job_id!r}: it keeps changing; try again")

    async def requeue(self, trash_id: str) -> Job:
        if not is_trash_id(trash_id):
            raise JobNotFound(f"no trash entry {trash_id!r:.80} (a trash id is {TRASH_ID_RULE})")
        await self._setup()
        trash_path = f"{self.layout.dir('trash')}/{trash_id}"
        got = await self._get_or_none(trash_path)
        if got is None:
            raise JobNotFound(f"no trash entry {trash_id!r} on the board (requeued or purged?)")
        old = dict(self._decode(got[0])["job"])
        job_id = str(old["job_id"])
        base: Raw = {k: v for k, v in old.items() if k not in _NOT_REQUEUED}
        base.update(claims=0, failures=0, state="queued")
        queue = str(base.get("queue", "default"))
        priority, due = int(base.get("priority", 0)), float(base.get("not_before", 0.0))
        await self._config(queue)  # UnknownQueue
        record_path = self.layout.record(job_id)
        for _ in range(_ATTEMPTS):
            found = (await self._records([job_id]))[0]
            if found is not None and found[0].get("state", "queued") == "queued":
                raise JobKeyConflict(
                    f"key {base.get('key')!r} names job {job_id}, on the board again (posted "
                    "anew once its key expired): requeueing would replace it",
                    key=str(base.get("key", "")),
                    job_id=job_id,
                    existing_flow=str(found[0].get("flow")),
                    flow_id=str(base.get("flow_id")),
                )
            now = time.time()
            partition = base.get("partition")
            folder, prefix, entry_name = self._place(queue, priority, job_id, due, partition, now)
            shard = await self._tails.shard(folder, prefix)
            record = {
                **base,
                "created_at": now,
                "shard": self.layout.relative(shard),
                "entry": entry_name,
            }
            data = self._encode(record, f"job of flow {record.get('flow')!r}")
            ops: list[TxnOp] = [
                CreateNode(record_path, data)
                if found is None
                else SetData(record_path, data, found[1].version),
                CreateNode(f"{shard}/{entry_name}-", b"", sequential=True),
                DeleteNode(trash_path, got[1].version),
            ]
            self.writes["requeue"] += 1
            try:
                results = await self.session.transaction(ops)
            except (NodeExists, VersionConflict):
                continue  # the record was made, changed or swept meanwhile: read it again
            except NodeMissing as exc:
                if exc.path == trash_path:
                    raise JobNotFound(
                        f"trash entry {trash_id!r} went meanwhile (requeued or purged)"
                    ) from None
                if exc.path != record_path:
                    self._tails.forget(folder, prefix)  # the shard was deleted, empty
                continue
            entry = results[1].path
            self._tails.posted(folder, prefix, int(entry[-10:]))
            self._where[job_id] = entry
            stat = results[0].stat
            assert stat is not None
            return self._job(job_id, record, stat, seq=int(entry[-10:]))
        raise CoordinationUnavailable(f"requeueing {trash_id!r}: its job keeps changing")

    async def purge_trash(self, *, before: float | None = None) -> int:
        await self._setup()
        folder = self.layout.dir("trash")
        paths = [f"{folder}/{n}" for n in await self._ls(folder)]
        if before is not None:
            got = await self._get_many(paths)
            paths = [
                p
                for p, found in zip(paths, got, strict=True)
                if found is not None and float(self._decode(found[0]).get("trashed_at", 0)) < before
            ]
        done = 0
        for i in range(0, len(paths), _PURGE_BATCH):
            batch = paths[i : i + _PURGE_BATCH]
            self.writes["purge"] += 1
            ops: list[TxnOp] = [DeleteNode(p) for p in batch]
            try:
                await self.session.transaction(ops)
                done += len(batch)
            except (NodeMissing, CoordinationUnavailable):
                for path in batch:  # one went meanwhile (or the reply was lost): one by one
                    with contextlib.suppress(NodeMissing):
                        self.writes["purge"] += 1
                        await self.session.delete(path)
                        done += 1
        return done
