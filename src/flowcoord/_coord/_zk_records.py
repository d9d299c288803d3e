"""The ZooKeeper job board's records and reads: what every part of the board shares.

A job's record (``keys/<id[:2]>/<id>``) is JSON: its key, flow, flow id, inputs, the digest of
flow and inputs (a repeated post is told from a conflicting one by it), queue, priority,
``not_before``, ``created_at``, ``claims``, ``failures``, ``state`` (``queued``, then
``consumed`` or ``trashed``), the shard of its entry and the prefix of the entry's name, and,
when the job has them, its ``partition`` and ``headers``. When its job ends the record
shrinks to a summary (no inputs, plus ``outcome`` and ``ended_at``) and stays for the key
retention.
"""

from __future__ import annotations

import time
from abc import ABC
from collections import Counter
from collections.abc import Sequence
from typing import Any

import anyio

from .._codec import Codec
from ..errors import NodeMissing, UnknownQueue
from ._contract import Job, JobBoard, QueueConfig
from ._queueing import DEFAULT_KEY_RETENTION
from ._zk_layout import DEFAULT_SHARD_SIZE, DELAYED, Layout, Tails, delayed_window, entry_prefix
from ._zk_scan import Buckets
from ._zk_session import ZooKeeperSession
from ._zk_types import NodeStat
from ._zk_writes import check_path

__all__ = ["BoardBase", "Raw", "ended", "is_job_id", "queue_config", "queue_data"]

Raw = dict[str, Any]
_CONFIG_TTL = 30.0  # a claim checks the queue node's version anyway
_SUMMARY = (
    "key",
    "flow",
    "flow_id",
    "digest",
    "queue",
    "priority",
    "not_before",
    "created_at",
    "partition",
    "headers",
)


def queue_config(name: str, d: Any) -> QueueConfig:
    """A queue node's data as its configuration; a field left out (a node written before
    that field existed) or null is no limit."""
    d = d if isinstance(d, dict) else {}

    def limit(field: str) -> int | None:
        value = d.get(field)
        return int(value) if value else None

    rate = d.get("rate_limit")
    rate_limit = (int(rate[0]), float(rate[1])) if isinstance(rate, list | tuple) else None
    return QueueConfig(name, limit("concurrency"), limit("partition_limit"), rate_limit)


def queue_data(config: QueueConfig) -> dict[str, Any]:
    """What a queue node holds: its configuration (see :func:`queue_config`)."""
    rate = config.rate_limit
    return {
        "concurrency": config.concurrency,
        "partition_limit": config.partition_limit,
        "rate_limit": list(rate) if rate is not None else None,
    }


def is_job_id(job_id: str) -> bool:
    return len(job_id) == 24 and all(c in "0123456789abcdef" for c in job_id)


def ended(raw: Raw, state: str, outcome: str | None) -> Raw:
    """The summary a record shrinks to when its job ends."""
    summary = {k: raw[k] for k in _SUMMARY if k in raw}
    summary.update(
        claims=raw.get("claims", 0),
        failures=raw.get("failures", 0),
        state=state,
        outcome=outcome,
        ended_at=time.time(),
    )
    return summary


class BoardBase(JobBoard, ABC):
    """State and reads shared by the parts of :class:`ZooKeeperJobBoard`."""

    session: ZooKeeperSession

    def __init__(
        self,
        session: ZooKeeperSession,
        *,
        path: str = "/board",
        codec: Codec | None = None,
        read_concurrency: int = 32,
        key_retention: float = DEFAULT_KEY_RETENTION,
        shard_size: int = DEFAULT_SHARD_SIZE,
    ) -> None:
        self.session = session
        self.path = check_path(path)
        self.codec = codec or Codec()
        self.key_retention = key_retention
        self.writes: Counter[str] = Counter()
        self.layout = Layout(session, self.path, self.codec, self.writes, shard_size)
        self._tails = Tails(self.layout)
        self._limit = anyio.CapacityLimiter(read_concurrency)
        self._configs: dict[str, tuple[QueueConfig, int, float]] = {}
        # Rate-limited queue -> (its node's version, start i -> (used_at, token node version)):
        # a start's used_at only grows, so a start seen taken is taken until used_at + period.
        self._rates: dict[str, tuple[int, dict[int, tuple[float, int]]]] = {}
        # Jobs last returned free by claimable(), with their raw records: a claim reuses them.
        self._free: dict[str, tuple[Job, Raw]] = {}
        self._where: dict[str, str] = {}  # job id -> entry path, for jobs seen or claimed here
        self._held: dict[str, Raw] = {}  # job id -> raw record, for the claims held here
        self._buckets = Buckets()  # bucket listings, kept a second
        # What the last jobs()/claimable() listed (the folders a watch covers), the next
        # delayed job it saw fall due, and the entries it found ended (deleted when seen twice).
        self._seen: dict[str, tuple[str, ...]] | None = None
        self._next_due: float | None = None
        self._stale: frozenset[str] = frozenset()

    def _place(
        self, queue: str, priority: int, job_id: str, due: float, partition: Any, now: float
    ) -> tuple[str, str, str]:
        """Where a job's entry goes: ``(folder, shard prefix, entry name)`` in its bucket, or
        in the delayed window it falls due in (a post, a requeue, a release with a due
        time name it alike)."""
        bucket = self.layout.bucket(queue, priority)
        part = None if partition is None else str(partition)
        if due > now:
            start, width = delayed_window(due, now)
            return f"{bucket}/{DELAYED}", f"{start:011d}.{width}.", entry_prefix(job_id, due, part)
        return bucket, "", entry_prefix(job_id, None, part)

    # -- encoding ---------------------------------------------------------------------------

    def _encode(self, value: Any, what: str) -> bytes:
        return self.codec.encode(value, what=what).encode()

    def _decode(self, data: bytes) -> Any:
        return self.codec.decode(data.decode()) if data else {}

    def _job(
        self, job_id: str, d: Raw, stat: NodeStat | int, owner: str | None = None, seq: int = 0
    ) -> Job:
        """The job of record ``d``; ``stat`` is the record's stat, or its version."""
        partition = d.get("partition")
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
            version=stat if isinstance(stat, int) else stat.version,
            queue=str(d.get("queue", "default")),
            key=str(d.get("key", "")),
            not_before=float(d.get("not_before", 0.0)),
            state=d.get("state", "queued"),
            outcome=d.get("outcome"),
            seq=seq,
            partition=str(partition) if partition is not None else None,
            headers=dict(d.get("headers") or {}),
        )

    # -- reads ------------------------------------------------------------------------------

    async def _setup(self) -> None:
        await self.layout.setup()

    async def _ls(self, path: str) -> list[str]:
        return await self.layout.children(path)

    async def _get_or_none(self, path: str) -> tuple[bytes, NodeStat] | None:
        try:
            return await self.session.get(path)
        except NodeMissing:
            return None

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

    async def _records(self, job_ids: Sequence[str]) -> list[tuple[Raw, NodeStat] | None]:
        got = await self._get_many([self.layout.record(j) for j in job_ids])
        return [None if g is None else (self._decode(g[0]), g[1]) for g in got]

    async def _owners(self, job_ids: Sequence[str]) -> dict[str, str]:
        """Job id → owner name, for the given claims (those gone meanwhile are left out)."""
        got = await self._get_many([self.layout.claim(j) for j in job_ids])
        return {
            job_id: str(self._decode(found[0]).get("owner", "?"))
            for job_id, found in zip(job_ids, got, strict=True)
            if found is not None
        }

    async def _entry_path(self, job_id: str, raw: Raw) -> str | None:
        """Where the job's entry is: known from a scan or a post, else found in its shard."""
        where = self._where.get(job_id)
        if where is not None or "shard" not in raw:
            return where
        shard = self.layout.absolute(str(raw["shard"]))
        prefix = f"{raw.get('entry', job_id)}-"
        for name in await self._ls(shard):
            if name.startswith(prefix):
                self._where[job_id] = f"{shard}/{name}"
                return self._where[job_id]
        return None

    # -- queue configuration ------------------------------------------------------------------

    async def _config(self, queue: str, *, fresh: bool = False) -> tuple[QueueConfig, int]:
        """Queue ``queue``'s configuration and its node's version (cached a while: a claim
        checks the version, and reads it again when it moved)."""
        cached = self._configs.get(queue)
        if cached is not None and not fresh and time.monotonic() - cached[2] < _CONFIG_TTL:
            return cached[0], cached[1]
        await self._setup()
        found = await self._get_or_none(self.layout.queue(queue))
        if found is None:
            self._configs.pop(queue, None)
            raise UnknownQueue(f"no queue {queue!r} on the job board at {self.path}", queue=queue)
        config = queue_config(queue, self._decode(found[0]))
        self._configs[queue] = (config, found[1].version, time.monotonic())
        return config, found[1].version
