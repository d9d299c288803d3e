"""The job board's node layout on ZooKeeper (layout 2), its names, and where producers post.

Under the board path (default ``/board``)::

    layout                         {"layout": 2, "shard_size": N}: written last at creation
    queues/<queue>                 a declared queue; data {"concurrency": N | null,
                                   "partition_limit": N | null, "rate_limit": [count, period]
                                   | null} (a field left out reads as null)
      p<priority>/<k:010d>/[p<pd>.]<id>-<seq>  ready jobs: shard k of that priority
      p<priority>/delayed/<start:011d>.<width>.<k:04d>/<due_ms:013d>.[p<pd>.]<id>-<seq>
                                               delayed jobs, by when they fall due
    keys/<id[:2]>/<id>             the job's record (JSON), addressed by its key's digest
    claims/<id>                    ephemeral: the claim; its czxid is the fencing token
    slots/<queue>/<i>              ephemeral: one of the queue's global concurrency slots
    pslots/<queue>/<pd>.<i>        ephemeral: slot i of partition digest pd (i below the
                                   queue's partition_limit), held by a claim of its job
    rates/<queue>/<i>              persistent: start i of the queue's rate limit (i below
                                   its count); data {"used_at": epoch seconds}, set by the
                                   claim that took it
    members/<name>                 ephemeral: a live conductor
    trash/<id>-<seq>               a trashed job and the reason

``<pd>`` is the partition digest (:func:`partition_digest`, 16 hex digits of the SHA-256 of
the job's partition key): in an entry's name it lets a scan skip the jobs of a full partition
without reading their records (the ``p`` prefix keeps such names unreadable as plain entries
to a client that predates partitions, which leaves them alone).

No folder holds more than a bounded number of children, whatever the length of the queue:
a shard takes new entries until its sequence number reaches ``shard_size`` (ZooKeeper's
sequence counts creates and deletes alike), then producers open the next shard; an empty
shard other than a bucket's last is deleted by the scanner that finds it. Delayed shards are
named by the start of their time window (a minute for jobs due within a day, an hour for
later ones), so their folder grows with the horizon, not with the number of jobs.

A board made by flowcoord's first layout has a ``jobs`` folder and no ``layout`` node: it
is refused (:class:`~flowcoord.errors.BoardLayoutError`), never misread.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

import anyio

from .._codec import Codec
from ..errors import BoardLayoutError, NodeExists, NodeMissing
from ._zk_session import ZooKeeperSession

__all__ = [
    "DELAYED",
    "LAYOUT",
    "Layout",
    "ShardName",
    "Tails",
    "delayed_window",
    "entry_prefix",
    "partition_digest",
    "split_entry",
]

LAYOUT = 2
DEFAULT_SHARD_SIZE = 512
DELAYED = "delayed"
_DIRS = (
    "queues",
    "queues/default",
    "queues/default/p0",
    "queues/default/p0/0000000000",
    "keys",
    "claims",
    "slots",
    "slots/default",
    "pslots",
    "rates",
    "members",
    "trash",
)
_KEY_FOLDERS = 256  # keys/00 .. keys/ff
_SEQ = 10


@dataclass(frozen=True, slots=True)
class ShardName:
    """A parsed shard name: ``k`` for a ready shard; ``start``/``width`` too for a delayed one."""

    name: str
    k: int
    start: int = 0
    width: int = 0

    @classmethod
    def parse(cls, name: str) -> ShardName | None:
        parts = name.split(".")
        try:
            if len(parts) == 1 and len(name) == 10:
                return cls(name, int(name))
            if len(parts) == 3:
                return cls(name, int(parts[2]), int(parts[0]), int(parts[1]))
        except ValueError:
            pass
        return None


def delayed_window(due: float, now: float) -> tuple[int, int]:
    """``(start, width)`` of the time window a job due at ``due`` goes to."""
    width = 60 if due - now < 86400 else 3600
    return int(due // width) * width, width


def partition_digest(partition: str) -> str:
    """The name a partition key has in entry and slot names: 16 hex digits of its SHA-256."""
    return hashlib.sha256(partition.encode()).hexdigest()[:16]


def entry_prefix(job_id: str, due: float | None, partition: str | None) -> str:
    """An entry's name before ``-<seq>``: ``[<due_ms>.][p<pd>.]<id>`` (due None: ready)."""
    name = job_id if partition is None else f"p{partition_digest(partition)}.{job_id}"
    return name if due is None else f"{int(due * 1000):013d}.{name}"


def split_entry(name: str) -> tuple[str, int, float, str | None] | None:
    """``(job id, seq, due, partition digest)`` of an entry name (due 0.0 for a ready
    entry; digest None for a job without a partition)."""
    head, _, seq = name.rpartition("-")
    if len(seq) != _SEQ or not seq.isdigit():
        return None
    parts = head.split(".")
    job_id = parts.pop()
    digest = None
    if parts and parts[-1].startswith("p"):
        digest = parts.pop()[1:]
    due_ms = parts.pop() if parts else ""
    if parts or digest == "" or (due_ms and not due_ms.isdigit()):
        return None
    return job_id, int(seq), int(due_ms) / 1000 if due_ms else 0.0, digest


class Layout:
    """Paths of one board, and its setup: the folders and the ``layout`` node, once."""

    def __init__(
        self,
        session: ZooKeeperSession,
        root: str,
        codec: Codec,
        writes: Counter[str],
        shard_size: int = DEFAULT_SHARD_SIZE,
    ) -> None:
        self.session = session
        self.root = root
        self.codec = codec
        self.shard_size = shard_size  # the board's own (from its layout node) once set up
        self.ready = False
        self.writes = writes
        self._setting_up: anyio.Lock | None = None  # made on first use (in the event loop)

    def dir(self, name: str) -> str:
        return f"{self.root}/{name}" if self.root != "/" else f"/{name}"

    def queue(self, queue: str) -> str:
        return self.dir(f"queues/{queue}")

    def bucket(self, queue: str, priority: int) -> str:
        return f"{self.queue(queue)}/p{priority}"

    def record(self, job_id: str) -> str:
        return self.dir(f"keys/{job_id[:2]}/{job_id}")

    def claim(self, job_id: str) -> str:
        return self.dir(f"claims/{job_id}")

    def slots(self, queue: str) -> str:
        return self.dir(f"slots/{queue}")

    def pslots(self, queue: str) -> str:
        return self.dir(f"pslots/{queue}")

    def pslot(self, queue: str, partition: str, i: int) -> str:
        return f"{self.pslots(queue)}/{partition_digest(partition)}.{i}"

    def rates(self, queue: str) -> str:
        return self.dir(f"rates/{queue}")

    def relative(self, path: str) -> str:
        return path[len(self.root) :].lstrip("/") if self.root != "/" else path.lstrip("/")

    def absolute(self, relative: str) -> str:
        return self.dir(relative)

    async def setup(self) -> None:
        """Check (or create) the layout once per board object; refuse another layout.
        Concurrent first calls (the first posts in flight) wait for one setup."""
        if self.ready:
            return
        if self._setting_up is None:
            self._setting_up = anyio.Lock()
        async with self._setting_up:
            if not self.ready:
                await self._setup()

    async def _setup(self) -> None:
        try:
            present = set(await self.session.children(self.root))
        except NodeMissing:
            present = set()
        if "jobs" in present:
            stat = await self.session.exists(self.dir("jobs"))
            count = stat.num_children if stat is not None else 0
            raise BoardLayoutError(
                f"the job board at {self.root!r} was made by an older flowcoord (a flat "
                f"'jobs' folder holding {count} jobs); this version cannot read it",
                path=self.root,
                found="layout 1 (flat jobs/ and locks/)",
                hint="drain it with the workers of that version, then delete its 'jobs' and "
                "'locks' folders; or give this version another board path (--board)",
            )
        if "layout" not in present:  # a new board: its folders, then the marker
            for name in _DIRS:
                await self.make_dir(self.dir(name))
            limit = anyio.CapacityLimiter(32)

            async def key_folder(i: int) -> None:
                async with limit:
                    await self.make_dir(self.dir(f"keys/{i:02x}"))

            async with anyio.create_task_group() as tg:
                for i in range(_KEY_FOLDERS):
                    tg.start_soon(key_folder, i)
            marker = {"layout": LAYOUT, "shard_size": self.shard_size}
            self.writes["setup"] += 1
            with contextlib.suppress(NodeExists):
                await self.session.create(self.dir("layout"), self._encode(marker))
        data, _ = await self.session.get(self.dir("layout"))
        found = self._decode(data)
        if not isinstance(found, dict) or found.get("layout") != LAYOUT:
            raise BoardLayoutError(
                f"the job board at {self.root!r} has layout {found!r:.80}; this flowcoord "
                f"reads layout {LAYOUT} only",
                path=self.root,
                found=repr(found)[:80],
                hint="use the flowcoord version that made it, or another board path (--board)",
            )
        self.shard_size = int(found.get("shard_size", DEFAULT_SHARD_SIZE))
        self.ready = True

    async def make_dir(self, path: str) -> None:
        """Create the persistent folder ``path`` (and missing parents); exists is fine."""
        self.writes["setup"] += 1
        try:
            await self.session.create(path)
        except NodeExists:
            pass
        except NodeMissing:
            await self.make_dir(path.rpartition("/")[0])
            await self.make_dir(path)

    async def children(self, path: str, *, watch: bool = False) -> list[str]:
        """Children of ``path`` (sorted), ``[]`` when it is not there."""
        try:
            return await self.session.children(path, watch=watch)
        except NodeMissing:
            return []

    def _encode(self, value: Any) -> bytes:
        return self.codec.encode(value, what="board layout").encode()

    def _decode(self, data: bytes) -> Any:
        try:
            return self.codec.decode(data.decode()) if data else None
        except ValueError:
            return data[:40]


class Tails:
    """Where a producer posts next: the last shard of each bucket (or delayed window), and
    whether it is full. Learned by listing the bucket once, then from sequence numbers."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._tails: dict[str, tuple[int, bool]] = {}  # folder/prefix -> (k, full)

    def _shard(self, folder: str, prefix: str, k: int) -> str:
        return f"{folder}/{prefix}{k:04d}" if prefix else f"{folder}/{k:010d}"

    async def shard(self, folder: str, prefix: str = "") -> str:
        """The shard of ``folder`` (whose names start with ``prefix``) to post into."""
        key = f"{folder}/{prefix}"
        cached = self._tails.get(key)
        if cached is not None and not cached[1]:
            return self._shard(folder, prefix, cached[0])
        if cached is not None:
            k = cached[0] + 1
        else:
            names = await self.layout.children(folder)
            ks = [s.k for n in names if n.startswith(prefix) and (s := ShardName.parse(n))]
            if ks:
                self._tails[key] = (max(ks), False)
                return self._shard(folder, prefix, max(ks))
            k = 0
        path = self._shard(folder, prefix, k)
        await self.layout.make_dir(path)
        self._tails[key] = (k, False)
        return path

    def posted(self, folder: str, prefix: str, seq: int) -> None:
        """A post got sequence number ``seq``: the shard is full from ``shard_size`` on."""
        key = f"{folder}/{prefix}"
        cached = self._tails.get(key)
        if cached is not None and seq + 1 >= self.layout.shard_size:
            self._tails[key] = (cached[0], True)

    def forget(self, folder: str, prefix: str = "") -> None:
        """The shard went away (deleted when empty): list the bucket again next time."""
        self._tails.pop(f"{folder}/{prefix}", None)
