"""The journal: the backend contract, what is journaled, and how a flow is read back.

Flow authors pick a journal (:class:`MemoryJournal`, :class:`SQLiteJournal`,
:class:`PostgresJournal`, or :func:`open_journal` from a URL) and need nothing else here. The
rest is for those who write a backend, inspect journals or build tools on them:
:class:`JournalBackend` (the contract every backend meets, with a suite in the tests),
:class:`Entry` / :class:`EventKind` (one journaled event), :class:`FlowRecord` (a flow's
summary row; :meth:`JournalBackend.list_newest` pages them newest first as a
:class:`FlowPage`), and :func:`replay` (entries → :class:`FlowReplay`, the state a resume starts
from, with a :class:`TaskRecord` per task); :class:`SentEvent` is an event in a flow's
mailbox (``engine.send_event``). :func:`prune_flows` deletes the flows that ended long ago
(retention; ``flowcoord flows prune``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from .._journal._contract import FlowPage as FlowPage
from .._journal._contract import JournalBackend as JournalBackend
from .._journal._contract import Listing as Listing
from .._journal._events import Entry as Entry
from .._journal._events import EventKind as EventKind
from .._journal._events import FlowRecord as FlowRecord
from .._journal._memory import MemoryJournal as MemoryJournal
from .._journal._replay import FlowReplay as FlowReplay
from .._journal._replay import TaskRecord as TaskRecord
from .._journal._replay import replay as replay
from .._journal._retention import PruneReport as PruneReport
from .._journal._retention import prune_flows as prune_flows
from .._journal._sent import SentEvent as SentEvent
from .._journal._sqlite import SQLiteJournal as SQLiteJournal
from .._journal._urls import URL_FORMS as URL_FORMS
from .._journal._urls import open_journal as open_journal
from .._lazy import lazy_names as _lazy_names
from .._lazy import publish as _publish

if _TYPE_CHECKING:  # loaded on first use: it brings asyncpg
    from .._journal._postgres import PostgresJournal as PostgresJournal

__all__ = [
    "URL_FORMS",
    "Entry",
    "EventKind",
    "FlowPage",
    "FlowRecord",
    "FlowReplay",
    "JournalBackend",
    "Listing",
    "MemoryJournal",
    "PostgresJournal",
    "PruneReport",
    "SQLiteJournal",
    "SentEvent",
    "TaskRecord",
    "open_journal",
    "prune_flows",
    "replay",
]

__getattr__, __dir__ = _lazy_names(__name__, {"PostgresJournal": "flowcoord._journal._postgres"})
_publish(__name__, [v for k, v in list(globals().items()) if k in __all__])
