"""Group commit: the one batching layer between the engine and a journal backend."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import anyio
import anyio.lowlevel
import structlog
from anyio.abc import TaskGroup

from .._codec import Codec
from ..errors import FlowcoordError, JournalError, JournalUnavailable
from ._contract import JournalBackend
from ._events import Entry, FlowRecord
from ._writer import FlowWriter

__all__ = ["GroupCommit"]

log = structlog.get_logger("flowcoord.journal")


class _Wave:
    """Tasks woken together: one future each (awaited directly, no coroutine of its own:
    one waiter per journaled step or task), resolved in the order they began to wait."""

    __slots__ = ("event", "futures")

    def __init__(self) -> None:
        self.futures: list[asyncio.Future[None]] = []
        self.event: anyio.Event | None = None  # outside asyncio (another anyio backend)

    def wait(self) -> Awaitable[None]:
        try:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        except RuntimeError:
            if self.event is None:
                self.event = anyio.Event()
            return self.event.wait()
        self.futures.append(future)
        return future

    def set(self) -> None:
        futures, self.futures = self.futures, []
        for future in futures:
            if not future.done():  # a cancelled waiter's future is done already
                future.set_result(None)
        if self.event is not None:
            self.event.set()


class _Flush:
    """What waits for one backend call. ``done`` is True once it returned; :meth:`wait`
    puts every other waiter in a second wave that the flusher may wake a little later."""

    __slots__ = ("done", "error", "first", "late", "waiters")

    def __init__(self) -> None:
        self.done = False
        self.first = _Wave()
        self.late: _Wave | None = None
        self.waiters = 0
        self.error: BaseException | None = None

    def wait(self) -> Awaitable[None]:
        """``await flush.wait()``: until its wave is woken (a future, no extra coroutine:
        one of these per task); at once (a checkpoint) when it is done already."""
        if self.done:
            return anyio.lowlevel.checkpoint()
        self.waiters += 1
        if self.waiters & 1:
            return self.first.wait()
        if self.late is None:
            self.late = _Wave()
        return self.late.wait()


class Batch(_Flush):
    """The entries of one backend ``append`` call, and who is told once it returned."""

    __slots__ = ("callbacks", "entries", "refused", "urgent")

    def __init__(self) -> None:
        super().__init__()
        self.urgent = False  # someone waits for this batch to be durable
        self.callbacks: list[Callable[[Batch], None]] = []
        self.entries: list[Entry] = []
        self.refused: frozenset[str] = frozenset()


class _Creates(_Flush):
    __slots__ = ("created", "items")

    def __init__(self) -> None:
        super().__init__()
        self.items: list[tuple[FlowRecord, Sequence[Entry]]] = []
        self.created: frozenset[str] = frozenset()


class GroupCommit:
    """Coalesces concurrent appends into one backend call per flush (group commit).

    A flush starts as soon as the previous one returns, so an idle engine adds no latency and
    a busy one commits many entries per transaction. Entries are flushed in the order they
    were appended. Use :meth:`running` as an async context manager (it owns the flusher
    task). Backends do not batch again: one ``append`` call is one transaction. Immediate
    backends (durable at once) get no flusher: their writers append to them directly.

    Waiters are woken in two waves. When a flush returns and nothing else is queued, all its
    waiters would run (and queue their next entries) while the database idles, then all wait
    while it commits. So only the first half is woken at once; the second half is woken once
    the first half's entries are on their way, and runs while the database commits them. From
    then on the two halves alternate, and the database and this process work side by side.
    """

    #: How long an entry nobody waits for may wait for company (seconds).
    lazy_delay = 0.005

    def __init__(self, backend: JournalBackend, *, codec: Codec | None = None) -> None:
        self.backend = backend
        self.codec = codec or Codec()
        self._pending = Batch()
        self._creates = _Creates()
        self._wake = anyio.Event()
        self._idle = False  # the flusher waits for _wake
        self._urgent = anyio.Event()
        self._tg: TaskGroup | None = None
        self._closed = False
        self._held: _Wave | None = None  # a second wave to wake with the next flush
        # Each flow's writer, to stop it when a batch with its entries fails (costs nothing
        # while batches succeed: no callback per flow and batch for entries nobody waits for).
        self._writers: weakref.WeakValueDictionary[str, FlowWriter] = weakref.WeakValueDictionary()
        self.flushes = 0
        self.appended = 0
        #: called after each flush with (entries, seconds, failed): metrics
        self.flush_listeners: list[Callable[[int, float, bool], None]] = []

    @property
    def queued(self) -> int:
        """Entries waiting for the next flush."""
        return len(self._pending.entries)

    def _observe(self, entries: int, seconds: float, failed: bool) -> None:
        for listener in self.flush_listeners:
            try:
                listener(entries, seconds, failed)
            except Exception:  # a metrics bug must not stop the journal
                log.exception("flush_listener_failed", listener=repr(listener))

    @asynccontextmanager
    async def running(self) -> AsyncIterator[GroupCommit]:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            if not self.backend.immediate:
                tg.start_soon(self._flusher)
            try:
                yield self
            finally:
                self._closed = True
                self._wake.set()
                if self.backend.immediate:
                    tg.cancel_scope.cancel()
                self._tg = None

    async def _flusher(self) -> None:
        while True:
            if self._creates.items:
                creates, self._creates = self._creates, _Creates()
                self._wake_held()
                try:
                    with anyio.CancelScope(shield=self._closed):
                        creates.created = await self.backend.create_flows(creates.items)
                except FlowcoordError as exc:
                    creates.error = exc
                except Exception as exc:
                    creates.error = JournalError(f"journal backend failed: {exc!r}")
                self.flushes += 1
                self._flushed(creates)
                continue
            if not self._pending.entries:
                if self._held is not None:
                    # Let the first wave run; if it queued nothing, wake the second now.
                    await anyio.lowlevel.checkpoint()
                    if not self._pending.entries and not self._creates.items:
                        self._wake_held()
                    continue
                if self._closed:
                    return
                self._idle = True  # appends wake it from now on
                await self._wake.wait()
                self._wake, self._idle = anyio.Event(), False
                continue
            if not self._pending.urgent and not self._closed:
                # Only entries nobody waits for (a task started): give a write that is
                # waited for a moment to join them, so one commit carries both.
                self._urgent = anyio.Event()
                with anyio.move_on_after(self.lazy_delay):
                    await self._urgent.wait()
            batch, self._pending = self._pending, Batch()
            self._wake_held()
            began = time.perf_counter() if self.flush_listeners else 0.0
            try:
                with anyio.CancelScope(shield=self._closed):
                    batch.refused = await self.backend.append(batch.entries)
            except FlowcoordError as exc:
                batch.error = exc
            except Exception as exc:  # a backend broke its contract; do not kill the loop
                batch.error = JournalError(f"journal backend failed: {exc!r}")
                batch.error.__cause__ = exc
            self.flushes += 1
            self.appended += len(batch.entries)
            if self.flush_listeners:
                self._observe(
                    len(batch.entries), time.perf_counter() - began, batch.error is not None
                )
            self._flushed(batch)
            self._callbacks(batch)
            if batch.error is not None:
                self._drop_after(batch)
            del batch  # do not hold its entries and callbacks while idle

    @staticmethod
    def _callbacks(batch: Batch) -> None:
        for callback in batch.callbacks:
            try:
                callback(batch)
            except Exception:
                log.exception("journal_callback_failed")

    def _drop_after(self, failed: Batch) -> None:
        """Whether or not ``failed`` landed, later entries of its flows must not: they would
        lie above a hole. Stop their writers (every later write raises; their runs are told)
        and drop their entries from the pending batch."""
        flows = {e.flow_id for e in failed.entries}
        error = failed.error
        assert error is not None
        for flow_id in flows:
            writer = self._writers.get(flow_id)
            if writer is not None:
                writer.fail(error)
        pending = self._pending
        kept = [e for e in pending.entries if e.flow_id not in flows]
        if len(kept) == len(pending.entries):
            return
        pending.entries = kept
        if not kept:  # nothing left to write: done now
            self._pending = Batch()
            self._flushed(pending)
            self._callbacks(pending)

    def _flushed(self, flush: _Flush) -> None:
        """Wake the first wave now; the second with the next flush, unless one can start
        at once (entries are queued already) or none will."""
        flush.done = True
        flush.first.set()
        if flush.late is None:
            return
        self._wake_held()
        if self._pending.entries or self._creates.items or self._closed:
            flush.late.set()
        else:
            self._held = flush.late

    def _wake_held(self) -> None:
        if self._held is not None:
            self._held.set()
            self._held = None

    def append(self, entry: Entry, *, urgent: bool) -> Batch:
        """Queue ``entry`` (not for immediate backends: see :class:`FlowWriter`); the returned
        batch's ``done`` is set once it is flushed.

        ``urgent=False`` (nobody waits for it) lets the entry wait up to ``lazy_delay`` for a
        write that is waited for, so that both share one commit."""
        if self._tg is None or self._closed:
            raise JournalUnavailable("the journal is not running (use it inside 'async with')")
        pending = self._pending
        pending.entries.append(entry)
        if urgent and not pending.urgent:
            pending.urgent = True
            self._urgent.set()
        if self._idle:
            self._idle = False
            self._wake.set()
        return pending

    async def create_flow(self, record: FlowRecord, entries: Sequence[Entry]) -> bool:
        if not self.backend.batch_creates:
            return await self.backend.create_flow(record, entries)
        if self._tg is None or self._closed:
            raise JournalUnavailable("the journal is not running (use it inside 'async with')")
        batch = self._creates
        batch.items.append((record, entries))
        self._wake.set()
        await batch.wait()
        if batch.error is not None:
            raise batch.error
        return record.flow_id in batch.created

    async def read(self, flow_id: str) -> list[Entry]:
        return await self.backend.read(flow_id)

    async def read_for_resume(self, flow_id: str) -> list[Entry]:
        return await self.backend.read_for_resume(flow_id)

    def writer(self, flow_id: str, *, token: int, next_seq: int) -> FlowWriter:
        writer = self._writers[flow_id] = FlowWriter(self, flow_id, token=token, next_seq=next_seq)
        return writer
