"""The journal front end: group commit over a backend, per-flow writers with fencing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
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


class _Batch:
    __slots__ = ("callbacks", "done", "entries", "error", "refused", "urgent")

    def __init__(self) -> None:
        self.urgent = False  # someone waits for this batch to be durable
        self.callbacks: list[Callable[[_Batch], None]] = []
        self.entries: list[Entry] = []
        self.done = anyio.Event()
        self.refused: frozenset[str] = frozenset()
        self.error: BaseException | None = None


class _Creates:
    __slots__ = ("created", "done", "error", "items")

    def __init__(self) -> None:
        self.items: list[tuple[FlowRecord, Sequence[Entry]]] = []
        self.done = anyio.Event()
        self.created: frozenset[str] = frozenset()
        self.error: BaseException | None = None


class Journal:
    """Coalesces concurrent appends into one backend call per flush (group commit).

    A flush starts as soon as the previous one returns, so an idle journal adds no latency and
    a busy one commits many entries per transaction. Entries are flushed in the order they
    were appended. Use as an async context manager (it owns the flusher task).
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
                try:
                    with anyio.CancelScope(shield=self._closed):
                        creates.created = await self.backend.create_flows(creates.items)
                except FlowcoordError as exc:
                    creates.error = exc
                except Exception as exc:
                    creates.error = JournalError(f"journal backend failed: {exc!r}")
                self.flushes += 1
                creates.done.set()
                continue
            if not self._pending.entries:
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
            batch.done.set()
            for callback in batch.callbacks:
                try:
                    callback(batch)
                except Exception:
                    log.exception("journal_callback_failed")

    def submit(self, entry: Entry, *, urgent: bool = True) -> _Batch:
        """Queue ``entry``; the returned batch's ``done`` is set once it is durable.

        ``urgent=False`` (nobody waits for it) lets the entry wait up to ``lazy_delay`` for a
        write that is waited for, so that both share one commit."""
        if self.backend.immediate:
            batch = _Batch()
            batch.entries.append(entry)
            batch.refused = self.backend.append_now([entry])  # type: ignore[attr-defined]
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
        await batch.done.wait()
        if batch.error is not None:
            raise batch.error
        return record.flow_id in batch.created

    async def read(self, flow_id: str) -> list[Entry]:
        return await self.backend.read(flow_id)

    def writer(self, flow_id: str, *, token: int, next_seq: int) -> FlowWriter:
        return FlowWriter(self, flow_id, token=token, next_seq=next_seq)


class FlowWriter:
    """Appends one flow's entries, numbering them and stamping the fencing token.

    Once the backend refuses this flow (a newer owner fenced it), every later call raises
    :class:`OwnershipLost` and nothing more is sent.
    """

    __slots__ = ("_append_now", "_journal", "_lost", "codec", "flow_id", "seq", "token")

    def __init__(self, journal: Journal, flow_id: str, *, token: int, next_seq: int) -> None:
        self._journal = journal
        self.codec = journal.codec
        self.flow_id = flow_id
        self.token = token
        self.seq = next_seq
        self._lost: BaseException | None = None
        backend = journal.backend
        self._append_now = backend.append_now if backend.immediate else None  # type: ignore[attr-defined]

    def _entry(self, kind: EventKind, task: str | None, data: str, state: str | None) -> Entry:
        if self._lost is not None:
            raise self._lost
        seq = self.seq
        self.seq = seq + 1
        return Entry(self.flow_id, seq, kind, task, data, state, self.token)

    def emit(
        self, kind: EventKind, task: str | None = None, data: str = "{}", state: str | None = None
    ) -> None:
        """Queue an entry without waiting for it to be durable."""
        entry = self._entry(kind, task, data, state)
        if not self._at_once(entry):
            self._journal.submit(entry, urgent=False)

    async def write(
        self, kind: EventKind, task: str | None = None, data: str = "{}", state: str | None = None
    ) -> None:
        """Append an entry and wait until it is durable."""
        entry = self._entry(kind, task, data, state)
        if self._at_once(entry):
            return
        batch = self._journal.submit(entry)
        await batch.done.wait()
        self._check(batch)

    def _at_once(self, entry: Entry) -> bool:
        """Append ``entry`` now if the backend is durable at once; False if it must queue."""
        if self._append_now is None:
            return False
        if self._append_now((entry,)):
            self._refused()
        return True

    @property
    def immediate(self) -> bool:
        """True if appends are durable at once (no flush to wait for)."""
        return self._append_now is not None

    def write_then(
        self,
        kind: EventKind,
        task: str | None,
        data: str,
        callback: Callable[[BaseException | None], None],
    ) -> None:
        """Append an entry without waiting; ``callback(None)`` runs once it is durable, or
        ``callback(error)`` if it could not be written (refused, journal unavailable)."""
        entry = self._entry(kind, task, data, None)
        if self._append_now is not None:
            try:
                self._at_once(entry)
            except OwnershipLost as exc:
                callback(exc)
            else:
                callback(None)
            return

        def done(batch: _Batch) -> None:
            try:
                self._check(batch)
            except (OwnershipLost, JournalError) as exc:
                callback(exc)
                return
            callback(None)

        self._journal.submit(entry).callbacks.append(done)

    def revoke(self, exc: BaseException) -> None:
        """Refuse every later write with ``exc`` (ownership was lost elsewhere)."""
        if self._lost is None:
            self._lost = exc

    def _check(self, batch: _Batch) -> None:
        if batch.error is not None:
            raise batch.error
        if self.flow_id in batch.refused:
            self._refused()

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
