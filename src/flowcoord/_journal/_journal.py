"""The journal front end: group commit over a backend, per-flow writers with fencing."""

from __future__ import annotations

import functools
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import structlog
from anyio.abc import TaskGroup

from .._codec import Codec
from ..errors import FlowcoordError, JournalError, JournalUnavailable, OwnershipLost
from ._contract import JournalBackend
from ._events import Entry, EventKind, FlowRecord

__all__ = ["FlowWriter", "Journal"]

log = structlog.get_logger("flowcoord.journal")


class _Flush:
    """What waits for one backend call. ``done`` is set once it returned; :meth:`wait` puts
    every other waiter in a second wave that the flusher may wake a little later."""

    __slots__ = ("done", "error", "late", "waiters")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.late: anyio.Event | None = None
        self.waiters = 0
        self.error: BaseException | None = None

    def wait(self) -> Awaitable[None]:
        """``await flush.wait()``: until its wave is woken (the event's own wait, no extra
        coroutine: one of these per task)."""
        self.waiters += 1
        if self.waiters & 1 or self.done.is_set():
            return self.done.wait()
        if self.late is None:
            self.late = anyio.Event()
        return self.late.wait()


class _Batch(_Flush):
    __slots__ = ("callbacks", "entries", "refused", "urgent")

    def __init__(self) -> None:
        super().__init__()
        self.urgent = False  # someone waits for this batch to be durable
        self.callbacks: list[Callable[[_Batch], None]] = []
        self.entries: list[Entry] = []
        self.refused: frozenset[str] = frozenset()


class _Creates(_Flush):
    __slots__ = ("created", "items")

    def __init__(self) -> None:
        super().__init__()
        self.items: list[tuple[FlowRecord, Sequence[Entry]]] = []
        self.created: frozenset[str] = frozenset()


class Journal:
    """Coalesces concurrent appends into one backend call per flush (group commit).

    A flush starts as soon as the previous one returns, so an idle journal adds no latency and
    a busy one commits many entries per transaction. Entries are flushed in the order they
    were appended. Use as an async context manager (it owns the flusher task).

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
        self._pending = _Batch()
        self._creates = _Creates()
        self._wake = anyio.Event()
        self._urgent = anyio.Event()
        self._tg: TaskGroup | None = None
        self._closed = False
        self._held: anyio.Event | None = None  # a second wave to wake with the next flush
        # Each flow's writer, to stop it when a batch with its entries fails (costs nothing
        # while batches succeed: no callback per flow and batch for entries nobody waits for).
        self._writers: weakref.WeakValueDictionary[str, FlowWriter] = weakref.WeakValueDictionary()
        self.flushes = 0
        self.appended = 0

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Journal]:
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
                await self._wake.wait()
                self._wake = anyio.Event()
                continue
            if not self._pending.urgent and not self._closed:
                # Only entries nobody waits for (a task started): give a write that is
                # waited for a moment to join them, so one commit carries both.
                self._urgent = anyio.Event()
                with anyio.move_on_after(self.lazy_delay):
                    await self._urgent.wait()
            batch, self._pending = self._pending, _Batch()
            self._wake_held()
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
            self._flushed(batch)
            self._callbacks(batch)
            if batch.error is not None:
                self._drop_after(batch)
            del batch  # do not hold its entries and callbacks while idle

    @staticmethod
    def _callbacks(batch: _Batch) -> None:
        for callback in batch.callbacks:
            try:
                callback(batch)
            except Exception:
                log.exception("journal_callback_failed")

    def _drop_after(self, failed: _Batch) -> None:
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
            self._pending = _Batch()
            self._flushed(pending)
            self._callbacks(pending)

    def _flushed(self, flush: _Flush) -> None:
        """Wake the first wave now; the second with the next flush, unless one can start
        at once (entries are queued already) or none will."""
        flush.done.set()
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

    def submit(self, entry: Entry, *, urgent: bool = True) -> _Batch:
        """Queue ``entry``; the returned batch's ``done`` is set once it is durable.

        ``urgent=False`` (nobody waits for it) lets the entry wait up to ``lazy_delay`` for a
        write that is waited for, so that both share one commit."""
        if self.backend.immediate:
            batch = _Batch()
            batch.entries.append(entry)
            batch.refused = self.backend.append_now([entry])
            batch.done.set()
            return batch
        if self._tg is None or self._closed:
            raise JournalUnavailable("the journal is not running (use it inside 'async with')")
        pending = self._pending
        pending.entries.append(entry)
        if urgent and not pending.urgent:
            pending.urgent = True
            self._urgent.set()
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


class FlowWriter:
    """Appends one flow's entries, numbering them and stamping the fencing token.

    Once the backend refuses this flow (a newer owner fenced it), every later call raises
    :class:`OwnershipLost` and nothing more is sent.

    ``settle(items, error)`` receives what :meth:`write_then` was given: one call per commit
    with the items of every entry of this flow that it carried, in order (``error`` is None
    once they are durable). One callback per flow and commit, not one closure per entry.
    """

    __slots__ = (
        "__weakref__",
        "_append_now",
        "_batch",
        "_items",
        "_journal",
        "_lost",
        "codec",
        "flow_id",
        "seq",
        "settle",
        "token",
    )

    def __init__(self, journal: Journal, flow_id: str, *, token: int, next_seq: int) -> None:
        self._journal = journal
        self.codec = journal.codec
        self.flow_id = flow_id
        self.token = token
        self.seq = next_seq
        self._lost: BaseException | None = None
        backend = journal.backend
        self._append_now = backend.append_now if backend.immediate else None
        self.settle: Callable[[list[Any], BaseException | None], None] | None = None
        self._batch: _Batch | None = None  # the pending batch our items ride on
        self._items: list[Any] = []

    def _entry(self, kind: EventKind, task: str | None, data: str, state: str | None) -> Entry:
        if self._lost is not None:
            raise self._lost
        seq = self.seq
        self.seq = seq + 1
        return Entry(self.flow_id, seq, kind, task, data, state, self.token)

    def emit(
        self, kind: EventKind, task: str | None = None, data: str = "{}", state: str | None = None
    ) -> int:
        """Queue an entry without waiting for it to be durable; return its seq. If it cannot
        be written, this writer stops (every later call raises) and ``settle`` is told."""
        entry = self._entry(kind, task, data, state)
        if not self._at_once(entry):
            self._journal.submit(entry, urgent=False)
        return entry.seq

    async def write(
        self, kind: EventKind, task: str | None = None, data: str = "{}", state: str | None = None
    ) -> None:
        """Append an entry and wait until it is durable."""
        batch = self.submit(kind, task, data, state)
        if batch is not None:
            await batch.wait()
            self.check(batch)

    def submit(
        self, kind: EventKind, task: str | None = None, data: str = "{}", state: str | None = None
    ) -> _Batch | None:
        """Queue an entry that is waited for: its batch (``done`` once it is flushed; then
        :meth:`check` it), or None when the backend made it durable at once."""
        entry = self._entry(kind, task, data, state)
        if self._at_once(entry):
            return None
        return self._journal.submit(entry)

    def _at_once(self, entry: Entry) -> bool:
        """Append ``entry`` now if the backend is durable at once; False if it must queue."""
        if self._append_now is None:
            return False
        try:
            refused = self._append_now((entry,))
        except BaseException as exc:
            if self._lost is None:
                self._lost = exc  # nothing after a failed entry: it would lie above a hole
            raise
        if refused:
            self._refused()
        return True

    @property
    def immediate(self) -> bool:
        """True if appends are durable at once (no flush to wait for)."""
        return self._append_now is not None

    def write_then(self, kind: EventKind, task: str | None, data: str, item: Any) -> None:
        """Append an entry without waiting; ``settle`` gets ``item`` once it is durable, or
        with the error if it could not be written (refused, journal unavailable)."""
        entry = self._entry(kind, task, data, None)
        if self._append_now is not None:
            try:
                self._at_once(entry)
            except OwnershipLost as exc:
                self._settle([item], exc)
            else:
                self._settle([item], None)
            return
        self.then(self._journal.submit(entry), item)

    def then(self, batch: _Batch, item: Any) -> None:
        """Settle ``item`` with ``batch`` (from :meth:`submit`): at once if it is flushed."""
        if batch.done.is_set():
            self._settle([item], self._error(batch))
        else:
            self._track(batch).append(item)

    def _track(self, batch: _Batch) -> list[Any]:
        """The items to settle with ``batch``; the first of this flow's items on a batch
        registers the one callback that settles them."""
        if batch is not self._batch:
            self._batch = batch
            self._items = []
            batch.callbacks.append(functools.partial(self._flushed, self._items))
        return self._items

    def _flushed(self, items: list[Any], batch: _Batch) -> None:
        if batch is self._batch:
            self._batch, self._items = None, []
        self._settle(items, self._error(batch))

    def fail(self, error: BaseException) -> None:
        """A batch with this flow's entries failed: refuse every later write (nothing may be
        journaled above an entry that was not) and tell ``settle``, even if nobody waits."""
        if self._lost is None:
            self._lost = error
        self._settle([], error)

    def _settle(self, items: list[Any], error: BaseException | None) -> None:
        if self.settle is not None:
            self.settle(items, error)

    def revoke(self, exc: BaseException) -> None:
        """Refuse every later write with ``exc`` (ownership was lost elsewhere)."""
        if self._lost is None:
            self._lost = exc

    def check(self, batch: _Batch) -> None:
        """Raise if ``batch`` (flushed) did not make this flow's entries durable."""
        error = self._error(batch)
        if error is not None:
            raise error

    def _error(self, batch: _Batch) -> BaseException | None:
        if batch.error is not None:
            return batch.error
        if self._lost is not None:  # an earlier batch failed: this one carried none of ours
            return self._lost
        if self.flow_id in batch.refused:
            try:
                self._refused()
            except OwnershipLost as exc:
                return exc
        return None

    def _refused(self) -> None:
        self._lost = OwnershipLost(
            f"flow {self.flow_id}: the journal refused this engine's writes; a newer owner "
            f"holds the flow (this engine's token: {self.token})",
            flow_id=self.flow_id,
            hint="this engine stopped working on the flow; its new owner carries on",
        )
        raise self._lost

    def encode(self, value: Any, *, what: str) -> str:
        return self.codec.encode(value, what=what)
