"""The job board as the faces show it (``flowcoord jobs ... --json`` and the HTTP API give
the same shapes): jobs, trash entries, members, and an overview of each queue.

Jobs, queue configurations and members are rendered field by field, so a field the board
gains shows up without a change here. ``status`` says where a job on the board stands:
``running`` (claimed; ``owner`` holds it), ``delayed`` (not due yet) or ``waiting``.
The overviews read a bounded number of jobs (``limit``) plus the claimed ones: counts of a
queue longer than that are lower bounds (``complete`` is false).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence, Set
from dataclasses import fields
from typing import Any

from ._coord._contract import Job, JobBoard, Member, QueueConfig, TrashedJob
from ._views import ValuePolicy
from .errors import JobNotFound

__all__ = [
    "job_status",
    "job_view",
    "member_view",
    "members_overview",
    "queue_view",
    "queues_overview",
    "trashed_view",
]

#: Opaque to an operator: a compare-and-set version and a posting order.
_OPAQUE = frozenset({"version", "seq"})


def _plain(value: Any) -> Any:
    """A field's value as JSON would carry it (mappings as objects, sequences as lists)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence | Set) and not isinstance(value, str | bytes):
        return [_plain(v) for v in value]
    return value


def _fields(record: Any, leave_out: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {
        f.name: _plain(getattr(record, f.name)) for f in fields(record) if f.name not in leave_out
    }


def job_status(job: Job, now: float | None = None) -> str:
    """``running``, ``delayed`` or ``waiting`` for a job on the board; else its state."""
    if job.state != "queued":
        return job.state
    if job.owner is not None:
        return "running"
    return "delayed" if job.not_before > (time.time() if now is None else now) else "waiting"


def job_view(
    job: Job, values: ValuePolicy | None = None, *, now: float | None = None
) -> dict[str, Any]:
    """A job's fields (but the opaque ones), its ``status``, its inputs as shown."""
    view = _fields(job, _OPAQUE)
    view["status"] = job_status(job, now)
    if values is not None and values.active:
        view["inputs"] = {k: values.value(f"inputs.{k}", v) for k, v in view["inputs"].items()}
    return view


def trashed_view(entry: TrashedJob, values: ValuePolicy | None = None) -> dict[str, Any]:
    view = _fields(entry, frozenset({"job"}))
    view["job"] = job_view(entry.job, values)
    view["job"].pop("status")  # it was waiting or held when trashed; it is neither now
    return view


def member_view(member: Member) -> dict[str, Any]:
    return _fields(member)


def queue_view(config: QueueConfig) -> dict[str, Any]:
    """A queue's configuration: ``name`` and the limits in force (None: no limit)."""
    return _fields(config)


async def _held_jobs(board: JobBoard, members: list[Member], known: dict[str, Job]) -> None:
    """Add the members' claimed jobs that ``known`` lacks (a read each: O(claims))."""
    for member in members:
        for job_id in member.claims:
            if job_id not in known:
                with contextlib.suppress(JobNotFound):  # ended since the listing
                    known[job_id] = await board.get(job_id)


async def queues_overview(
    board: JobBoard, *, limit: int = 1000, values: ValuePolicy | None = None
) -> dict[str, Any]:
    """Every declared queue: its configuration, how many jobs wait (due, and delayed), the
    running ones and who holds them, the members serving it (with their own limit for it),
    and the trash. Reads the first ``limit`` jobs in claim order, and every claimed one."""
    configs = await board.queues()
    listed = await board.jobs(limit=limit)
    members = await board.members()
    known = {j.job_id: j for j in listed}
    await _held_jobs(board, members, known)
    now = time.time()
    out = []
    for config in configs:
        mine = [j for j in known.values() if j.queue == config.name]
        status = [job_status(j, now) for j in mine]
        running = [job_view(j, values, now=now) for j in mine if j.owner is not None]
        served_by = []
        for m in members:
            served = m.info.get("queues")
            if isinstance(served, list | tuple) and config.name in served:
                limits = m.info.get("worker_limits")
                own = limits.get(config.name) if isinstance(limits, Mapping) else None
                served_by.append({"member": m.name, "worker_limit": own})
        out.append(
            {
                "name": config.name,
                "config": queue_view(config),
                "queued": len(status) - len(running),
                "waiting": status.count("waiting"),
                "delayed": status.count("delayed"),
                "running": running,
                "served_by": served_by,
            }
        )
    trash = [trashed_view(t, values) for t in await board.trashed()]
    return {"queues": out, "complete": len(listed) < limit, "limit": limit, "trash": trash}


async def members_overview(
    board: JobBoard, values: ValuePolicy | None = None
) -> list[dict[str, Any]]:
    """Every live member, its info, and the jobs it holds (each read: O(claims))."""
    members = await board.members()
    known: dict[str, Job] = {}
    await _held_jobs(board, members, known)
    now = time.time()
    out = []
    for m in members:
        view = member_view(m)
        view["jobs"] = [job_view(known[j], values, now=now) for j in m.claims if j in known]
        out.append(view)
    return out
