"""An operator's hand on the in-memory board: list the trash, trash a waiting job, requeue
a trashed one, purge the trash.
"""

from __future__ import annotations

import time
from abc import ABC
from dataclasses import replace

from ..errors import JobAlreadyClaimed, JobKeyConflict, JobNotFound
from ._contract import Job, TrashedJob
from ._memory_claims import MemoryBoardBase
from ._queueing import inputs_digest
from ._trash import is_trash_id, trash_id_for

__all__ = ["OperatorMemoryBoard"]


class OperatorMemoryBoard(MemoryBoardBase, ABC):
    """trashed, trash_job, requeue, purge_trash."""

    async def trashed(self) -> list[TrashedJob]:
        self._check()
        return list(self.coordinator.trash)

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
