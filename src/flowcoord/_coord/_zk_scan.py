"""Reading a queue of the ZooKeeper job board in claim order, as far as needed and no further.

Claim order within a queue: priority, highest first; within a priority, the delayed jobs that
are due (earliest due first), then the ready ones (first posted first: shard, then sequence
number). A scan with a ``limit`` stops as soon as it has that many candidates, so its cost
does not grow with the length of the queue: a few listings of bounded size.

Only names are read here (a job's id, priority, due time, partition digest and position are
in the names of its entry and folders); the board reads the records of the candidates it
returns. A scan given a queue's :class:`PartitionRoom` passes over the entries of partitions
with no room left (each partition's room taken in claim order), so a partition that floods
the queue holds up only its own jobs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ._zk_layout import DELAYED, Layout, ShardName, split_entry

__all__ = ["Buckets", "Entry", "PartitionRoom", "Scan", "scan_queue"]

_ORDER = 10**10  # a shard's entries all come before the next shard's


@dataclass(frozen=True, slots=True)
class Entry:
    """A job's place in its queue."""

    job_id: str
    path: str
    queue: str
    priority: int
    due: float  # 0.0 for a ready entry
    order: int  # position among the entries of its kind and priority
    partition: str | None = None  # the digest of its partition key, if any

    def key(self) -> tuple[int, int, float, int]:
        return (-self.priority, 0 if self.due else 1, self.due, self.order)


@dataclass
class Scan:
    """What one scan found: candidates, the folders a watch must cover (with what they held),
    when the next delayed job falls due, and empty shards that may go."""

    entries: list[Entry] = field(default_factory=list)
    listed: dict[str, tuple[str, ...]] = field(default_factory=dict)
    next_due: float | None = None
    empty: list[str] = field(default_factory=list)
    rooms: dict[str, PartitionRoom] = field(default_factory=dict)  # queue -> as found

    def due_at(self, when: float) -> None:
        self.next_due = when if self.next_due is None else min(self.next_due, when)


Lister = Callable[[str], Awaitable[list[str]]]


class PartitionRoom:
    """How many more jobs each partition of a queue may start: ``limit`` less the slots it
    holds (``held``: partition digest -> slots held). A job without a partition always fits."""

    def __init__(self, limit: int, held: Mapping[str, int]) -> None:
        self.limit = limit
        self._used = dict(held)

    @classmethod
    def of_slots(cls, limit: int, names: Iterable[str]) -> PartitionRoom:
        """From the names ``<digest>.<i>`` of a queue's partition slots."""
        held: dict[str, int] = {}
        for name in names:
            digest = name.rpartition(".")[0]
            held[digest] = held.get(digest, 0) + 1
        return cls(limit, held)

    def take(self, digest: str | None) -> bool:
        """Count a job of partition ``digest`` in if there is room for it."""
        if digest is None:
            return True
        used = self._used.get(digest, 0)
        if used >= self.limit:
            return False
        self._used[digest] = used + 1
        return True

    def copy(self) -> PartitionRoom:
        return PartitionRoom(self.limit, self._used)


class Buckets:
    """Bucket listings (a priority's shards) kept a while. A bucket's listing is the one that
    grows with a queue's length (a name per shard of 512 jobs), and a scan needs only its
    first shards: it lists the bucket again when the cached listing is older than ``ttl``,
    when the shards it knows run out, and ``wait_changed`` refreshes it from its watch. A
    stale listing can only miss a delayed folder made within ``ttl`` (new shards come last)."""

    def __init__(self, ttl: float = 1.0) -> None:
        self.ttl = ttl
        self._known: dict[str, tuple[tuple[str, ...], float]] = {}

    def get(self, path: str) -> tuple[str, ...] | None:
        known = self._known.get(path)
        if known is None or time.monotonic() - known[1] >= self.ttl:
            return None
        return known[0]

    def put(self, path: str, names: Sequence[str]) -> tuple[str, ...]:
        self._known[path] = (tuple(names), time.monotonic())
        return self._known[path][0]

    def refresh(self, listed: Mapping[str, tuple[str, ...]]) -> None:
        """New listings of the folders a watch re-read: keep those of cached buckets."""
        for path, names in listed.items():
            if path in self._known:
                self.put(path, names)


async def scan_queue(
    layout: Layout,
    ls: Lister,
    scan: Scan,
    queue: str,
    *,
    skip: Collection[str],
    limit: int | None,
    now: float | None,
    buckets: Buckets | None = None,
    room: PartitionRoom | None = None,
) -> None:
    """Add ``queue``'s first ``limit`` entries (all if None) to ``scan``, leaving out the jobs
    in ``skip`` and those of partitions without ``room`` (taken as they are added). With
    ``now``, only what is due by then (and ``next_due`` is set); without, every job (an
    operator's listing). ``buckets`` keeps bucket listings between scans."""
    qpath = layout.queue(queue)
    names = await ls(qpath)
    scan.listed[qpath] = tuple(names)
    priorities = sorted((p for n in names if (p := _priority(n)) is not None), reverse=True)
    want = math.inf if limit is None else limit
    found = 0
    for priority in priorities:
        bucket = f"{qpath}/p{priority}"
        shards = buckets.get(bucket) if buckets is not None else None
        cached = shards is not None
        if shards is None:
            shards = await _list_bucket(ls, bucket, buckets)
        scan.listed[bucket] = shards
        if DELAYED in shards:
            found += await _delayed(
                ls, scan, queue, priority, f"{bucket}/{DELAYED}", skip, want - found, now, room
            )
        walked = -1
        while found < want:
            found, walked = await _ready(
                ls, scan, queue, priority, bucket, shards, skip, want, found, walked, room
            )
            if found >= want or not cached:
                break
            shards, cached = await _list_bucket(ls, bucket, buckets), False  # ran out: look
            scan.listed[bucket] = shards
        if found >= want:
            return


async def _list_bucket(ls: Lister, bucket: str, buckets: Buckets | None) -> tuple[str, ...]:
    names = await ls(bucket)
    return buckets.put(bucket, names) if buckets is not None else tuple(names)


async def _ready(
    ls: Lister,
    scan: Scan,
    queue: str,
    priority: int,
    bucket: str,
    shards: Sequence[str],
    skip: Collection[str],
    want: float,
    found: int,
    walked: int,
    room: PartitionRoom | None,
) -> tuple[int, int]:
    """Add the free entries of the ready shards after shard ``walked``, first posted first,
    until ``want`` are found; return how many are found and the last shard walked."""
    ready = sorted((s for n in shards if (s := ShardName.parse(n)) and not s.width), key=_k)
    for i, shard in enumerate(ready):
        if shard.k <= walked:
            continue
        walked = shard.k
        path = f"{bucket}/{shard.name}"
        entries = await ls(path)
        scan.listed[path] = tuple(entries)
        if not entries and i < len(ready) - 1:
            scan.empty.append(path)
        parsed = [(e, n) for n in entries if (e := split_entry(n)) and e[2] == 0.0]
        for (job_id, seq, _, digest), name in sorted(parsed, key=lambda en: en[0][1]):
            if found >= want:
                return found, walked
            if job_id not in skip and (room is None or room.take(digest)):
                order = shard.k * _ORDER + seq
                entry = Entry(job_id, f"{path}/{name}", queue, priority, 0.0, order, digest)
                scan.entries.append(entry)
                found += 1
        if found >= want:
            break
    return found, walked


async def _delayed(
    ls: Lister,
    scan: Scan,
    queue: str,
    priority: int,
    folder: str,
    skip: Collection[str],
    want: float,
    now: float | None,
    room: PartitionRoom | None,
) -> int:
    """The due entries of one priority's delayed folder, earliest due first, stopping once
    ``want`` are found and the next window starts after the last of them. (Windows of two
    widths overlap, so the entries are ordered once all windows that matter are read; only
    then is the partitions' room taken, in that order.)"""
    names = await ls(folder)
    scan.listed[folder] = tuple(names)
    shards = sorted((s for n in names if (s := ShardName.parse(n)) and s.width), key=_start)
    found: list[Entry] = []
    fitting = found
    for shard in shards:
        if now is not None and shard.start > now:
            scan.due_at(shard.start)  # later windows start later still
            break
        if room is not None:
            trial = room.copy()
            fitting = [e for e in found if trial.take(e.partition)]
        if len(fitting) >= want and shard.start > fitting[int(want) - 1].due:
            break
        path = f"{folder}/{shard.name}"
        entries = await ls(path)
        scan.listed[path] = tuple(entries)
        if not entries and now is not None and shard.start + shard.width <= now:
            scan.empty.append(path)
        for name in entries:
            parsed = split_entry(name)
            if parsed is None:
                continue
            job_id, seq, due, digest = parsed
            if now is not None and due > now:
                scan.due_at(due)
            elif job_id not in skip:
                found.append(Entry(job_id, f"{path}/{name}", queue, priority, due, seq, digest))
        found.sort(key=lambda e: (e.due, e.order))
    if room is not None:
        found = _take(found, room, len(found) if want == math.inf else int(want))
    taken = found if want == math.inf else found[: int(want)]
    scan.entries.extend(taken)
    return len(taken)


def _take(entries: Sequence[Entry], room: PartitionRoom, want: int) -> list[Entry]:
    """The first ``want`` of ``entries`` that fit in ``room`` (taking it)."""
    out: list[Entry] = []
    for entry in entries:
        if len(out) >= want:
            break
        if room.take(entry.partition):
            out.append(entry)
    return out


def _priority(name: str) -> int | None:
    if name.startswith("p"):
        try:
            return int(name[1:])
        except ValueError:
            return None
    return None


def _k(shard: ShardName) -> int:
    return shard.k


def _start(shard: ShardName) -> tuple[int, int]:
    return (shard.start, shard.k)
