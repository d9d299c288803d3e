"""Posting on the ZooKeeper board under idempotency keys, forgetting expired keys, and
declaring queues.

A post is one transaction: create the record ``keys/<id[:2]>/<id>`` (the id is the digest of
the key, so a second post of the key fails on it, atomically) and the entry in the tail
shard of its bucket (ready, or the delayed window it falls due in). When the record is there
already, the post reads it: the same flow and inputs return that job; others raise
JobKeyConflict; an ended job whose key expired is replaced (delete, create, create: still
one transaction). A post reads nothing back: the new record's version is 0.

Declaring a queue writes its configuration to its node (:func:`._zk_records.queue_data`),
after making what its limits need: the ``pslots/<queue>`` folder for a partition limit, the
``count`` start nodes ``rates/<queue>/<i>`` for a rate limit (those past a lowered count are
left, unused).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from abc import ABC
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from ..errors import (
    CoordinationUnavailable,
    JobKeyConflict,
    NodeExists,
    NodeMissing,
    NodeNotEmpty,
    UnknownQueue,
    VersionConflict,
)
from ._contract import Job, QueueConfig
from ._queueing import (
    DEFAULT_QUEUE,
    check_headers,
    check_key,
    check_limit,
    check_partition,
    check_priority,
    check_queue_name,
    check_rate_limit,
    due_time,
    inputs_digest,
    job_id_for,
)
from ._zk_records import BoardBase, Raw, queue_config, queue_data
from ._zk_types import CreateNode, DeleteNode, TxnOp

__all__ = ["PostingBoard"]

_SWEEP_BATCH = 50
_CREATE_BATCH = 100


class PostingBoard(BoardBase, ABC):
    """Posts, key expiry and queue declarations (see the module docstring)."""

    _sweep_next = 0

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
    ) -> Job:
        check_queue_name(queue)
        priority = check_priority(priority)
        due = due_time(not_before)
        partition = check_partition(partition)
        header_map = check_headers(headers)
        await self._setup()
        await self._config(queue)  # UnknownQueue
        flow_id = flow_id or uuid.uuid4().hex
        key = check_key(flow_id if key is None else key)
        job_id = job_id_for(key)
        inputs = dict(inputs or {})
        now = time.time()
        base: Raw = {
            "key": key,
            "flow": flow,
            "flow_id": flow_id,
            "inputs": inputs,
            "digest": inputs_digest(flow, inputs, self.codec),
            "queue": queue,
            "priority": priority,
            "not_before": due,
            "created_at": now,
            "claims": 0,
            "failures": 0,
            "state": "queued",
        }
        if partition is not None:
            base["partition"] = partition
        if header_map:
            base["headers"] = header_map
        record_path = self.layout.record(job_id)
        folder, prefix, entry_name = self._place(queue, priority, job_id, due, partition, now)
        replaces: int | None = None
        for _ in range(8):
            shard = await self._tails.shard(folder, prefix)
            record = {**base, "shard": self.layout.relative(shard), "entry": entry_name}
            ops: list[TxnOp] = [DeleteNode(record_path, replaces)] if replaces is not None else []
            ops += [
                CreateNode(record_path, self._encode(record, f"job of flow {flow!r}")),
                CreateNode(f"{shard}/{entry_name}-", b"", sequential=True),
            ]
            self.writes["post"] += 1
            try:
                results = await self.session.transaction(ops, created_stats=False)
            except NodeExists:
                found = await self._existing(job_id, base)
                if isinstance(found, Job):
                    return found
                replaces = found  # None: it vanished meanwhile; else the expired record
                continue
            except NodeMissing as exc:
                if exc.path == record_path and replaces is None:
                    await self.layout.make_dir(record_path.rpartition("/")[0])
                elif exc.path == record_path:
                    replaces = None
                else:
                    self._tails.forget(folder, prefix)  # the shard was deleted, empty
                continue
            except VersionConflict:
                replaces = None  # the expired record changed: read it again
                continue
            entry = results[-1].path
            self._tails.posted(folder, prefix, int(entry[-10:]))
            stat = results[-2].stat  # read only after a lost reply; a new node's version is 0
            return self._job(job_id, record, stat if stat is not None else 0, seq=int(entry[-10:]))
        raise CoordinationUnavailable(f"posting job {job_id} (key {key!r}) keeps conflicting")

    async def _existing(self, job_id: str, base: Raw) -> Job | int | None:
        """The job a repeated post returns; or the version of an expired record to replace
        (None: there is none any more). Raises JobKeyConflict for another flow or inputs."""
        found = (await self._records([job_id]))[0]
        if found is None:
            return None
        d, stat = found
        state = d.get("state", "queued")
        if state != "queued" and time.time() - float(d.get("ended_at", 0)) >= self.key_retention:
            return stat.version
        if d.get("key") != base["key"] or d.get("digest") != base["digest"]:
            raise JobKeyConflict(
                f"key {base['key']!r} names job {job_id} of flow {d.get('flow')!r}, with other "
                "inputs or of another flow",
                key=base["key"],
                job_id=job_id,
                existing_flow=str(d.get("flow")),
                flow_id=base["flow_id"],
            )
        owner = (await self._owners([job_id])).get(job_id) if state == "queued" else None
        job = self._job(job_id, {**d, "inputs": d.get("inputs", base["inputs"])}, stat, owner)
        return replace(job, deduplicated=True)

    async def expire_keys(self) -> int:
        """Sweep one folder of ``keys/`` (of 256, in turn): delete the records of jobs that
        ended more than ``key_retention`` ago, up to 50 in one transaction."""
        await self._setup()
        folder = self.layout.dir(f"keys/{self._sweep_next:02x}")
        self._sweep_next = (self._sweep_next + 1) % 256
        names = await self._ls(folder)
        got = await self._get_many([f"{folder}/{n}" for n in names])
        cutoff = time.time() - self.key_retention
        expired: list[DeleteNode] = []
        for name, found in zip(names, got, strict=True):
            if found is None:
                continue
            d = self._decode(found[0])
            if d.get("state", "queued") != "queued" and float(d.get("ended_at", 0)) <= cutoff:
                expired.append(DeleteNode(f"{folder}/{name}", found[1].version))
        done = 0
        for i in range(0, len(expired), _SWEEP_BATCH):
            batch = expired[i : i + _SWEEP_BATCH]
            self.writes["expire"] += 1
            try:
                await self.session.transaction(list[TxnOp](batch))
                done += len(batch)
            except (VersionConflict, NodeMissing, CoordinationUnavailable):
                for op in batch:  # one changed or went meanwhile: the others one by one
                    with contextlib.suppress(VersionConflict, NodeMissing, NodeNotEmpty):
                        self.writes["expire"] += 1
                        await self.session.delete(op.path, op.version)
                        done += 1
        return done

    # -- queues --------------------------------------------------------------------------------

    async def declare_queue(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        partition_limit: int | None = None,
        rate_limit: tuple[int, float] | None = None,
    ) -> QueueConfig:
        check_queue_name(name)
        if concurrency is not None:
            check_limit(concurrency, f"queue {name!r}'s concurrency")
        if partition_limit is not None:
            check_limit(partition_limit, f"queue {name!r}'s partition limit")
        rate = check_rate_limit(rate_limit, f"queue {name!r}'s rate limit")
        await self._setup()
        path = self.layout.queue(name)
        wanted = QueueConfig(name, concurrency, partition_limit, rate)
        data = self._encode(queue_data(wanted), "queue")
        if partition_limit is not None:  # what its limits need first: no claim misses it
            await self.layout.make_dir(self.layout.pslots(name))
        if rate is not None:
            await self._make_starts(name, rate[0])
        for _ in range(5):
            found = await self._get_or_none(path)
            if found is None:  # its node first, with the limit: no claim ever misses it
                self.writes["declare"] += 1
                try:
                    await self.session.create(path, data)
                except NodeExists:
                    continue
                await self.layout.make_dir(self.layout.slots(name))
                await self.layout.make_dir(f"{self.layout.bucket(name, 0)}/{0:010d}")
                break
            if queue_config(name, self._decode(found[0])) == wanted:
                break
            self.writes["declare"] += 1
            try:
                await self.session.set(path, data, found[1].version)
                break
            except (VersionConflict, NodeMissing):
                continue
        else:
            raise CoordinationUnavailable(f"declaring queue {name!r}: its node keeps changing")
        self._configs.pop(name, None)
        return wanted

    async def _make_starts(self, queue: str, count: int) -> None:
        """Make the rate starts ``rates/<queue>/<i>``, ``i`` below ``count``, that are missing
        (a transaction per 100; one by one when another declarer raced this one)."""
        folder = self.layout.rates(queue)
        names = set(await self._ls(folder))
        if not names:
            await self.layout.make_dir(folder)
        data = self._encode({"used_at": 0.0}, "rate start")
        missing = [f"{folder}/{i}" for i in range(count) if str(i) not in names]
        for at in range(0, len(missing), _CREATE_BATCH):
            batch = missing[at : at + _CREATE_BATCH]
            self.writes["declare"] += 1
            try:
                await self.session.transaction(
                    [CreateNode(p, data) for p in batch], created_stats=False
                )
            except NodeExists:
                for p in batch:
                    self.writes["declare"] += 1
                    with contextlib.suppress(NodeExists):
                        await self.session.create(p, data)

    async def queue(self, name: str) -> QueueConfig:
        check_queue_name(name)
        return (await self._config(name, fresh=True))[0]

    async def queues(self) -> list[QueueConfig]:
        await self._setup()
        names = await self._ls(self.layout.dir("queues"))
        out = []
        for name in names:
            with contextlib.suppress(UnknownQueue):
                out.append((await self._config(name, fresh=True))[0])
        return out
