"""The journal backend contract. Every backend passes ``tests/contract``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from types import TracebackType

from ._events import Entry, FlowRecord, resume_entries

__all__ = ["JournalBackend"]


class JournalBackend(ABC):
    """Where journal entries are kept. Backends know nothing of engines or coordination.

    Rules every backend keeps (the contract suite checks them):

    * ``create_flow`` writes the summary row and the first entries atomically, and returns
      ``False`` without writing anything if the flow id exists.
    * ``append`` is durable when it returns, may carry entries of many flows, and is
      idempotent by ``(flow_id, seq)``. For each flow, either all of its entries in the batch
      are written or none: none when any of them carries a token older than the flow's
      current token, or the flow does not exist. It returns the ids of those refused flows.
      An entry of kind ``flow.state`` also sets the summary's ``state``.
    * ``fence`` raises a flow's token, atomically with respect to ``append``: once it returns,
      no append with an older token can land. It raises :class:`~flowcoord.OwnershipLost`
      if the current token is already newer, :class:`~flowcoord.FlowNotFound` if no flow.
    * ``read`` returns a flow's entries ordered by ``seq``, in one round trip;
      ``read_for_resume`` the same without what the flow's checkpoints sum up.
    * Backend driver errors leave only as :class:`~flowcoord.errors.JournalError` subclasses.
    """

    #: Set by backends whose appends complete without I/O (the in-memory one); they implement
    #: :meth:`append_now`.
    immediate: bool = False
    #: Set by backends that implement :meth:`create_flows` (many creations in one call).
    batch_creates: bool = False

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect / create the schema. Called once before use."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Idempotent."""

    async def __aenter__(self) -> JournalBackend:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abstractmethod
    async def create_flow(self, record: FlowRecord, entries: Sequence[Entry]) -> bool: ...

    async def create_flows(
        self, batch: Sequence[tuple[FlowRecord, Sequence[Entry]]]
    ) -> frozenset[str]:
        """Create many flows at once, each as :meth:`create_flow` would; return the ids of
        those created (an id already taken is skipped, nothing written for it). Optional:
        set ``batch_creates`` when implemented."""
        created = set()
        for record, entries in batch:
            if await self.create_flow(record, entries):
                created.add(record.flow_id)
        return frozenset(created)

    @abstractmethod
    async def append(self, entries: Sequence[Entry]) -> frozenset[str]: ...

    def append_now(self, entries: Sequence[Entry]) -> frozenset[str]:
        """:meth:`append` without waiting, for backends whose appends need no I/O (they set
        ``immediate``); the engine then writes each entry as it happens, with no flusher."""
        raise NotImplementedError(f"{type(self).__name__} is not immediate: use append()")

    @abstractmethod
    async def fence(self, flow_id: str, token: int) -> int:
        """Raise the flow's token to ``token``; return the previous token."""

    @abstractmethod
    async def read(self, flow_id: str, *, after_seq: int = -1) -> list[Entry]: ...

    async def read_for_resume(self, flow_id: str) -> list[Entry]:
        """What resuming the flow needs, ordered by ``seq``: every entry but the
        ``task.started`` / ``task.succeeded`` ones below the newest checkpoint's ``from``
        (see :func:`resume_entries`). Backends that can skip those while reading should."""
        return resume_entries(await self.read(flow_id))

    @abstractmethod
    async def get_flow(self, flow_id: str) -> FlowRecord | None: ...

    @abstractmethod
    async def list_flows(
        self, *, state: str | None = None, limit: int = 100, after: str | None = None
    ) -> list[FlowRecord]:
        """Summaries ordered by ``flow_id``; ``after`` pages past a flow id."""
