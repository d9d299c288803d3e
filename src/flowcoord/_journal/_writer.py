"""One flow's writer: numbers and fences its entries, and offers the engine its ways to write."""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from ..errors import OwnershipLost
from ._events import Entry, EventKind

if TYPE_CHECKING:
    from ._group_commit import Batch, GroupCommit

__all__ = ["Durable", "FlowWriter"]


class FlowWriter:
    """Appends one flow's entries, numbering them and stamping the fencing token. Made by
    :meth:`GroupCommit.writer <flowcoord._journal._group_commit.GroupCommit.writer>`.

    Two ways to append, and two ways to learn that an entry is durable:

    * :meth:`emit` - append, don't wait: the entry rides along with the next commit (it may
      wait up to ``GroupCommit.lazy_delay`` for company). If it cannot be written, the writer
      stops and ``settle`` is told.
    * ``await write(...)`` - append and wait until it is durable; raises if it is not.
    * ``write(...).then(item)`` - append and call back: ``settle(items, error)`` once it is
      durable (``error`` None) or could not be written. One call per flow and commit, with
      the items of every such entry of this flow that it carried, in order: not one closure
      per entry.

    On an immediate backend (durable at once, no flusher) every entry is appended as it is
    made: ``write`` is done when it returns and ``then`` settles at once.

    Once the backend refuses this flow (a newer owner fenced it), or a batch with its entries
    failed, every later call raises and nothing more is sent: nothing may be journaled above
    an entry that was not.
    """

    __slots__ = (
        "__weakref__",
        "_append_now",
        "_batch",
        "_done",
        "_items",
        "_journal",
        "_lost",
        "codec",
        "flow_id",
        "seq",
        "settle",
        "token",
    )

    def __init__(self, journal: GroupCommit, flow_id: str, *, token: int, next_seq: int) -> None:
        self._journal = journal
        self.codec = journal.codec
        self.flow_id = flow_id
        self.token = token
        self.seq = next_seq
        self._lost: BaseException | None = None
        backend = journal.backend
        self._append_now = backend.append_now if backend.immediate else None
        self._done = Durable(self, None)  # what write returns on an immediate backend
        self.settle: Callable[[list[Any], BaseException | None], None] | None = None
        self._batch: Batch | None = None  # the pending batch our items ride on
        self._items: list[Any] = []

    @property
    def immediate(self) -> bool:
        """True if appends are durable at once (no flush to wait for)."""
        return self._append_now is not None

    def emit(
        self, kind: EventKind, task: str | None = None, data: str = "{}", state: str | None = None
    ) -> int:
        """Append an entry without waiting for it to be durable; return its seq."""
        if self._lost is not None:
            raise self._lost
        seq = self.seq
        self.seq = seq + 1
        entry = Entry(self.flow_id, seq, kind, task, data, state, self.token)
        if self._append_now is None:
            self._journal.append(entry, urgent=False)
        else:
            self._at_once(entry)
        return seq

    def write(
        self, kind: EventKind, task: str | None = None, data: str = "{}", state: str | None = None
    ) -> Durable:
        """Append an entry that is waited for, now: ``await`` the result to wait until it is
        durable, or call its ``then(item)`` to have ``settle`` told instead."""
        batch = self.write_batch(kind, task, data, state)
        return self._done if batch is None else Durable(self, batch)

    def write_batch(
        self, kind: EventKind, task: str | None = None, data: str = "{}", state: str | None = None
    ) -> Batch | None:
        """:meth:`write` for a caller that waits itself (the engine's hot path: no
        :class:`Durable` made): ``await batch.wait()``, then :meth:`check` it. None: durable
        already (an immediate backend)."""
        if self._lost is not None:
            raise self._lost
        seq = self.seq
        self.seq = seq + 1
        entry = Entry(self.flow_id, seq, kind, task, data, state, self.token)
        if self._append_now is None:
            return self._journal.append(entry, urgent=True)
        self._at_once(entry)
        return None

    def _at_once(self, entry: Entry) -> None:
        """Append ``entry`` to the immediate backend; raise if it was not written."""
        assert self._append_now is not None
        try:
            refused = self._append_now((entry,))
        except BaseException as exc:
            if self._lost is None:
                self._lost = exc  # nothing after a failed entry: it would lie above a hole
            raise
        if refused:
            self._refused()

    def _track(self, batch: Batch) -> list[Any]:
        """The items to settle with ``batch``; the first of this flow's items on a batch
        registers the one callback that settles them."""
        if batch is not self._batch:
            self._batch = batch
            self._items = []
            batch.callbacks.append(functools.partial(self._flushed, self._items))
        return self._items

    def _flushed(self, items: list[Any], batch: Batch) -> None:
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

    def check(self, batch: Batch) -> None:
        """Raise if ``batch`` (flushed) did not make this flow's entries durable."""
        error = self._error(batch)
        if error is not None:
            raise error

    def _error(self, batch: Batch) -> BaseException | None:
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

    def encode(self, value: Any, *, what: str | Callable[[], str]) -> str:
        return self.codec.encode(value, what=what)


class Durable:
    """An entry on its way, from :meth:`FlowWriter.write`: ``await`` it to wait until it is
    durable (raises if it was not written), or call :meth:`then` to be told instead."""

    __slots__ = ("_batch", "_writer")

    def __init__(self, writer: FlowWriter, batch: Batch | None) -> None:
        self._writer = writer
        self._batch = batch  # None: written at once (immediate backend)

    def __await__(self) -> Generator[Any, None, None]:
        batch = self._batch
        if batch is not None:
            yield from batch.wait().__await__()
            self._writer.check(batch)

    def then(self, item: Any) -> None:
        """Do not wait: the writer's ``settle`` gets ``item`` once the entry is durable (or
        with the error if it was not written), at once if that is known already."""
        writer, batch = self._writer, self._batch
        if batch is None:  # written at once
            writer._settle([item], None)
        elif batch.done:
            writer._settle([item], writer._error(batch))
        else:
            writer._track(batch).append(item)
