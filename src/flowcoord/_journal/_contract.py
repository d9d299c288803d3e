"""The journal backend contract. Every backend passes ``tests/contract``."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from types import TracebackType

from ..errors import ConfigurationError, JournalError
from ._events import Entry, FlowRecord, resume_entries
from ._sent import SentEvent

__all__ = [
    "MAX_CURSOR",
    "FlowPage",
    "JournalBackend",
    "Listing",
    "decode_cursor",
    "encode_cursor",
    "glob_wildcards",
    "name_regex",
]

#: The longest cursor :func:`decode_cursor` reads (a flow id is at most 128 characters).
MAX_CURSOR = 512
_CURSOR_PREFIX = "c1."


@dataclass(frozen=True, slots=True)
class FlowPage:
    """One page of :meth:`JournalBackend.list_newest`: ``flows`` newest first, and ``next``,
    the cursor of the page after it (``None`` on the last page)."""

    flows: list[FlowRecord]
    next: str | None


def encode_cursor(record: FlowRecord) -> str:
    """The opaque cursor of the page that follows ``record`` in newest-first order: its
    ``created_at`` and ``flow_id`` (the listing's sort key), exactly."""
    key = json.dumps([record.created_at, record.flow_id], separators=(",", ":"))
    return _CURSOR_PREFIX + base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """``(created_at, flow_id)`` of a cursor made by :func:`encode_cursor`; a
    :class:`~flowcoord.errors.ConfigurationError` for anything else."""
    bad = ConfigurationError(
        f"{_shown(cursor)} is not a cursor of this listing",
        hint="pass the 'next' value of the previous page unchanged",
    )
    if not isinstance(cursor, str) or not cursor.startswith(_CURSOR_PREFIX):
        raise bad
    if len(cursor) > MAX_CURSOR:
        raise bad
    body = cursor[len(_CURSOR_PREFIX) :]
    try:
        key = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise bad from None
    if not (
        isinstance(key, list)
        and len(key) == 2
        and isinstance(key[0], int | float)
        and not isinstance(key[0], bool)
        and math.isfinite(key[0])
        and isinstance(key[1], str)
    ):
        raise bad
    return float(key[0]), key[1]


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def glob_wildcards(pattern: str) -> bool:
    """Whether a name pattern has a wildcard (``*``: any run of characters, ``?``: one)."""
    return "*" in pattern or "?" in pattern


def name_regex(pattern: str) -> re.Pattern[str]:
    """A name pattern as a regular expression matching whole names: ``*`` any run of
    characters, ``?`` one character, every other character itself (case-sensitive)."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


@dataclass(frozen=True, slots=True)
class Listing:
    """The arguments of :meth:`JournalBackend.list_newest`, checked: what backends build
    their query from. ``after``: the cursor's ``(created_at, flow_id)``."""

    limit: int
    after: tuple[float, str] | None
    name: str | None
    states: tuple[str, ...] | None
    since: float | None
    until: float | None

    @classmethod
    def of(
        cls,
        *,
        limit: int,
        cursor: str | None,
        name: str | None,
        states: Collection[str] | None,
        since: float | None,
        until: float | None,
    ) -> Listing:
        for what, value in (("since", since), ("until", until)):
            if value is not None and not (isinstance(value, int | float) and math.isfinite(value)):
                raise ConfigurationError(f"{what}={value!r} is not a time in epoch seconds")
        return cls(
            limit=int(limit),
            after=decode_cursor(cursor) if cursor is not None else None,
            name=name or None,
            states=((states,) if isinstance(states, str) else tuple(dict.fromkeys(states)))
            if states
            else None,
            since=None if since is None else float(since),
            until=None if until is None else float(until),
        )

    def keeps(self, record: FlowRecord) -> bool:
        """Whether ``record`` is on the listing (its filters and cursor; not the limit)."""
        if self.states is not None and record.state not in self.states:
            return False
        if self.name is not None:
            if glob_wildcards(self.name):
                if not name_regex(self.name).fullmatch(record.name):
                    return False
            elif record.name != self.name:
                return False
        if self.since is not None and record.created_at < self.since:
            return False
        if self.until is not None and record.created_at >= self.until:
            return False
        return self.after is None or (record.created_at, record.flow_id) < self.after

    def page(self, newest_first: list[FlowRecord]) -> FlowPage:
        """The page of ``newest_first`` (at most ``limit + 1`` records kept by the listing,
        newest first): its first ``limit``, and the cursor after them when more follow."""
        flows = newest_first[: self.limit]
        more = len(newest_first) > self.limit and flows
        return FlowPage(flows, encode_cursor(flows[-1]) if more else None)


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
    * ``send_event`` / ``sent_events`` keep a flow's mailbox: events numbered per flow and
      topic, idempotent by key (see :mod:`._sent`). ``watch_events`` (optional) tells of
      sends as they happen, from any process: a hint that wakes a waiting run early.
    * ``list_newest`` pages through the summaries newest first (by creation time) with an
      opaque cursor; a page after a cursor is the same whatever flows were added meanwhile.
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

    # -- a flow's mailbox (see ._sent) ----------------------------------------------------

    @abstractmethod
    async def send_event(self, flow_id: str, topic: str, data: str, key: str) -> SentEvent:
        """Put an event (``data``: JSON text) in flow ``flow_id``'s mailbox under ``topic``,
        numbered after the topic's last one; durable when it returns. Under a ``key`` that
        flow and topic have taken already: the event it names, nothing written (so a retry
        after a lost answer sends once). :class:`~flowcoord.FlowNotFound` if no such flow."""

    @abstractmethod
    async def sent_events(
        self, flow_id: str, topic: str, *, after: int = 0, limit: int = 1
    ) -> list[SentEvent]:
        """The flow's events of ``topic`` numbered above ``after``, oldest first, at most
        ``limit`` of them (one indexed read)."""

    def watch_events(self, wake: Callable[[str, str], None]) -> AbstractAsyncContextManager[None]:
        """While entered, call ``wake(flow_id, topic)`` soon after anyone (another process
        too) sends an event to a flow of this journal. Only a hint: a wake may be lost (a
        connection lost) or come twice, so a waiting run still looks at the mailbox now and
        then. The default tells nothing (runs find events sent by others by looking)."""
        return nullcontext()

    async def delete_flows(self, flow_ids: Sequence[str], *, ended_before: float) -> list[str]:
        """Delete each of ``flow_ids`` that has ended (a final state) and has written
        nothing since ``ended_before`` (epoch seconds): its summary, its entries and its
        mailbox, in one transaction. A flow that does not qualify now (resumed or forked
        meanwhile, still running, too recent, gone) is left as it is. Returns the ids
        deleted. What the retention of :func:`~flowcoord.journal.prune_flows` calls."""
        raise JournalError(
            f"{type(self).__name__} cannot delete flows",
            hint="implement JournalBackend.delete_flows to prune this journal",
        )

    @abstractmethod
    async def list_flows(
        self, *, state: str | None = None, limit: int = 100, after: str | None = None
    ) -> list[FlowRecord]:
        """Summaries ordered by ``flow_id``; ``after`` pages past a flow id."""

    async def list_newest(
        self,
        *,
        limit: int = 100,
        cursor: str | None = None,
        name: str | None = None,
        states: Collection[str] | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> FlowPage:
        """Summaries newest first: by ``created_at`` descending, flows created at the same
        time by ``flow_id`` descending (code point order), at most ``limit`` of them.

        ``cursor`` is the previous page's ``next`` (opaque: :func:`encode_cursor`; anything
        else is a :class:`~flowcoord.errors.ConfigurationError`). The pages are stable
        while flows are added: a page after a cursor holds the flows that sort after the
        cursor's flow, so flows created meanwhile (newer) never push a flow onto two pages
        or past one. Filters: ``name`` (``*`` matches any run of characters, ``?`` one,
        case-sensitive; without a wildcard the exact name), ``states`` (any of them; None
        or empty: any state), ``since`` / ``until`` (``since <= created_at < until``,
        epoch seconds).

        The arguments are checked here, once for every backend; a backend answers the
        checked :class:`Listing` in :meth:`newest_page`.
        """
        listing = Listing.of(
            limit=limit, cursor=cursor, name=name, states=states, since=since, until=until
        )
        if listing.limit <= 0:
            return FlowPage([], None)
        return await self.newest_page(listing)

    async def newest_page(self, listing: Listing) -> FlowPage:
        """One page of :meth:`list_newest` for a checked ``listing`` (``limit`` > 0): at
        most ``limit + 1`` records newest first, through :meth:`Listing.page`. This default
        reads the summaries through :meth:`list_flows`, every one of them; backends
        override it with an indexed query."""
        kept: list[FlowRecord] = []
        after: str | None = None
        while True:
            batch = await self.list_flows(limit=500, after=after)
            kept.extend(r for r in batch if listing.keeps(r))
            if len(batch) < 500:
                break
            after = batch[-1].flow_id
        kept.sort(key=_newest_key, reverse=True)
        return listing.page(kept[: listing.limit + 1])


def _newest_key(record: FlowRecord) -> tuple[float, str]:
    return record.created_at, record.flow_id
