"""The SQLite journal backend: one file, WAL, one worker thread, one transaction per append."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from .._aio import running_in_background
from .._states import FINAL_STATE_NAMES
from ..errors import (
    ConfigurationError,
    FlowNotFound,
    JournalError,
    JournalSchemaError,
    JournalUnavailable,
    OwnershipLost,
)
from ._contract import FlowPage, JournalBackend, Listing, glob_wildcards
from ._events import Entry, EventKind, FlowRecord, summed_below
from ._sent import SentEvent
from ._sqlite_watch import SendWatcher

__all__ = ["BUSY_TIMEOUT", "SCHEMA_VERSION", "SQLiteJournal"]

#: The schema this code writes. A file with a newer version is refused.
SCHEMA_VERSION = 1
#: Seconds a connection waits for another one's write lock before giving up.
BUSY_TIMEOUT = 10.0

_T = TypeVar("_T")
_Row = tuple[str, int, str, str | None, str, str | None, int, float]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS flowcoord_meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS flows (flow_id TEXT PRIMARY KEY, name TEXT NOT NULL,"
    " state TEXT NOT NULL, token INTEGER NOT NULL, created_at REAL NOT NULL,"
    " updated_at REAL NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS flows_by_state ON flows (state, flow_id)",
    "CREATE TABLE IF NOT EXISTS entries (flow_id TEXT NOT NULL, seq INTEGER NOT NULL,"
    " kind TEXT NOT NULL, task TEXT, data TEXT NOT NULL, state TEXT, token INTEGER NOT NULL,"
    " at REAL NOT NULL, PRIMARY KEY (flow_id, seq)) WITHOUT ROWID",
)
# Added to schema version 1 since (an older flowcoord opens and writes the file all the
# same, so no version bump): created when missing, on open. Newest-first listings
# (``list_newest``) read these, by creation time and by state then creation time.
_ADDITIONS = {
    "flows_by_created": "CREATE INDEX IF NOT EXISTS flows_by_created"
    " ON flows (created_at, flow_id)",
    "flows_by_state_created": "CREATE INDEX IF NOT EXISTS flows_by_state_created"
    " ON flows (state, created_at, flow_id)",
    # the flows' mailboxes (send_event): events numbered per flow and topic, keys unique
    "sent_events": "CREATE TABLE IF NOT EXISTS sent_events (flow_id TEXT NOT NULL,"
    " topic TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL, key TEXT NOT NULL,"
    " sent_at REAL NOT NULL, PRIMARY KEY (flow_id, topic, seq)) WITHOUT ROWID",
    "sent_events_by_key": "CREATE UNIQUE INDEX IF NOT EXISTS sent_events_by_key"
    " ON sent_events (flow_id, topic, key)",
    # what another process sent since a time: the event watcher's read (_sqlite_watch)
    "sent_events_by_time": "CREATE INDEX IF NOT EXISTS sent_events_by_time"
    " ON sent_events (sent_at)",
}
_FLOW_COLS = "flow_id, name, state, token, created_at, updated_at"
_READ_SENT = (
    "SELECT seq, data, key, sent_at FROM sent_events WHERE flow_id = ? AND topic = ?"
    " AND seq > ? ORDER BY seq LIMIT ?"
)
_INSERT_FLOW = f"INSERT OR IGNORE INTO flows ({_FLOW_COLS}) VALUES (?, ?, ?, ?, ?, ?)"
_INSERT_ENTRY = (
    "INSERT OR IGNORE INTO entries (flow_id, seq, kind, task, data, state, token, at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# The summary's state is that of the flow's highest-seq ``flow.state`` entry.
_SET_STATE = (
    "UPDATE flows SET updated_at = ?, state = COALESCE((SELECT e.state FROM entries e"
    " WHERE e.flow_id = flows.flow_id AND e.kind = ? AND e.state IS NOT NULL"
    " ORDER BY e.seq DESC LIMIT 1), state) WHERE flow_id = ?"
)
_TOUCH = "UPDATE flows SET updated_at = ? WHERE flow_id = ?"
_READ = (
    "SELECT flow_id, seq, kind, task, data, state, token, at FROM entries"
    " WHERE flow_id = ? AND seq > ? ORDER BY seq"
)
# What checkpoints do not sum up (see EventKind.CHECKPOINT); the kinds are constants.
_READ_NOT_SUMMED_UP = (
    "SELECT flow_id, seq, kind, task, data, state, token, at FROM entries"
    " WHERE flow_id = ? AND kind NOT IN ('task.started', 'task.succeeded') ORDER BY seq"
)
_HINTS = (
    ("SQLITE_BUSY", f"another connection held the write lock for over {BUSY_TIMEOUT:g}s; retry"),
    ("SQLITE_LOCKED", "the database is locked by another connection; retry"),
    ("SQLITE_NOTADB", "the file is not a SQLite database; point the journal at another path"),
    ("SQLITE_CORRUPT", "the file is corrupt; restore it from a backup or use another path"),
    ("SQLITE_READONLY", "make the file and its directory writable by this process"),
    ("SQLITE_CANTOPEN", "check that the path is a file in an existing, writable directory"),
    ("SQLITE_PERM", "make the file and its directory writable by this process"),
    ("SQLITE_FULL", "free some disk space"),
    ("SQLITE_IOERR", "check the disk and the file system"),
)


@dataclass(slots=True)
class _Group:
    """One append call's entries for one flow: written all together or not at all."""

    min_token: int
    rows: list[_Row] = field(default_factory=list)
    has_state: bool = False


class SQLiteJournal(JournalBackend):
    """A journal in one SQLite file (WAL mode), durable when ``append`` returns.

    All SQL runs on one worker thread at a time, so the event loop never blocks. Each
    ``append`` call is one transaction: batching is the engine's group commit
    (:class:`~flowcoord._journal._group_commit.GroupCommit`), which sends one call at a time
    carrying every entry queued meanwhile. Several objects (or processes) may share a file;
    writers wait up to :data:`BUSY_TIMEOUT` for each other. Counters: ``append_calls``,
    ``batches`` (append transactions) and ``transactions`` (all write transactions).
    """

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "FULL") -> None:
        sync = synchronous.upper()
        if sync not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ConfigurationError(
                f"synchronous={synchronous!r} is not a SQLite synchronous level",
                hint="use 'FULL' (the default), 'EXTRA', 'NORMAL' or 'OFF'",
            )
        self.path = Path(os.fspath(path))
        self._synchronous = sync
        self._conn: sqlite3.Connection | None = None
        self._limiter: anyio.CapacityLimiter | None = None
        self.append_calls = 0
        self.batches = 0
        self.transactions = 0

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(1)
        if self._conn is None:
            self._conn = await anyio.to_thread.run_sync(self._connect, limiter=self._limiter)

    async def __aenter__(self) -> SQLiteJournal:
        await self.open()
        return self

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with anyio.CancelScope(shield=True):  # waits for the SQL in flight, then closes
            await anyio.to_thread.run_sync(conn.close, limiter=self._limiter)

    # -- writes ---------------------------------------------------------------------------

    async def create_flow(self, record: FlowRecord, entries: Sequence[Entry]) -> bool:
        groups = _group(entries)
        if set(groups) - {record.flow_id}:
            raise ValueError(f"create_flow({record.flow_id!r}) got entries of other flows")
        group = groups.get(record.flow_id)
        return await self._run(lambda conn: self._tx_create(conn, record, group))

    async def append(self, entries: Sequence[Entry]) -> frozenset[str]:
        if not entries:
            return frozenset()
        groups = _group(entries)
        self.append_calls += 1
        return await self._run(lambda conn: self._tx_append(conn, groups))

    async def fence(self, flow_id: str, token: int) -> int:
        return await self._run(lambda conn: self._tx_fence(conn, flow_id, token))

    async def delete_flows(self, flow_ids: Sequence[str], *, ended_before: float) -> list[str]:
        ids = list(dict.fromkeys(flow_ids))
        return await self._run(lambda conn: self._tx_delete(conn, ids, ended_before))

    # -- reads ----------------------------------------------------------------------------

    async def read(self, flow_id: str, *, after_seq: int = -1) -> list[Entry]:
        def query(conn: sqlite3.Connection) -> list[Entry]:
            return [self._entry(r) for r in conn.execute(_READ, (flow_id, after_seq))]

        return await self._run(query)

    async def read_for_resume(self, flow_id: str) -> list[Entry]:
        def query(conn: sqlite3.Connection) -> list[Entry]:
            # In SQL, not in Python: the rows skipped never become entries.
            kept = conn.execute(_READ_NOT_SUMMED_UP, (flow_id,)).fetchall()
            start = summed_below((r[2], r[4]) for r in reversed(kept))
            tail = conn.execute(_READ, (flow_id, start - 1)).fetchall()
            return [self._entry(r) for r in kept if r[1] < start] + [self._entry(r) for r in tail]

        return await self._run(query)

    async def send_event(self, flow_id: str, topic: str, data: str, key: str) -> SentEvent:
        return await self._run(lambda conn: self._tx_send(conn, flow_id, topic, data, key))

    def watch_events(self, wake: Callable[[str, str], None]) -> AbstractAsyncContextManager[None]:
        """Sends from any process, seen by a look at the file's data version every 50 ms
        (see :mod:`._sqlite_watch`)."""
        return running_in_background(SendWatcher(self.path, wake, BUSY_TIMEOUT).run)

    async def sent_events(
        self, flow_id: str, topic: str, *, after: int = 0, limit: int = 1
    ) -> list[SentEvent]:
        def query(conn: sqlite3.Connection) -> list[SentEvent]:
            rows = conn.execute(_READ_SENT, (flow_id, topic, after, max(limit, 0))).fetchall()
            return [SentEvent(flow_id, topic, *r) for r in rows]

        return await self._run(query)

    async def get_flow(self, flow_id: str) -> FlowRecord | None:
        sql = f"SELECT {_FLOW_COLS} FROM flows WHERE flow_id = ?"
        row = await self._run(lambda conn: conn.execute(sql, (flow_id,)).fetchone())
        return None if row is None else FlowRecord(*row)

    async def list_flows(
        self, *, state: str | None = None, limit: int = 100, after: str | None = None
    ) -> list[FlowRecord]:
        if limit <= 0:
            return []
        where: list[str] = ["1"]
        params: list[Any] = []
        if state is not None:
            where.append("state = ?")
            params.append(state)
        if after is not None:
            where.append("flow_id > ?")
            params.append(after)
        sql = f"SELECT {_FLOW_COLS} FROM flows WHERE {' AND '.join(where)} ORDER BY flow_id LIMIT ?"
        rows = await self._run(lambda conn: conn.execute(sql, (*params, limit)).fetchall())
        return [FlowRecord(*r) for r in rows]

    async def newest_page(self, listing: Listing) -> FlowPage:
        where: list[str] = []
        params: list[Any] = []
        if listing.states is not None:
            where.append(f"state IN ({', '.join('?' * len(listing.states))})")
            params.extend(listing.states)
        if listing.name is not None:
            if glob_wildcards(listing.name):  # GLOB: * and ? as ours; '[' made literal
                where.append("name GLOB ?")
                params.append(listing.name.replace("[", "[[]"))
            else:
                where.append("name = ?")
                params.append(listing.name)
        if listing.since is not None:
            where.append("created_at >= ?")
            params.append(listing.since)
        if listing.until is not None:
            where.append("created_at < ?")
            params.append(listing.until)
        if listing.after is not None:
            where.append("(created_at, flow_id) < (?, ?)")
            params.extend(listing.after)
        cond = f" WHERE {' AND '.join(where)}" if where else ""
        sql = f"SELECT {_FLOW_COLS} FROM flows{cond} ORDER BY created_at DESC, flow_id DESC LIMIT ?"
        params.append(listing.limit + 1)
        rows = await self._run(lambda conn: conn.execute(sql, params).fetchall())
        return listing.page([FlowRecord(*r) for r in rows])

    # -- the worker thread ----------------------------------------------------------------

    async def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._limiter is None:
            raise JournalUnavailable(f"the journal {self.path} is not open", hint="open() it")
        return await anyio.to_thread.run_sync(self._call, fn, limiter=self._limiter)

    def _call(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """The one boundary where driver errors become :class:`JournalError` (worker thread)."""
        conn = self._conn
        if conn is None:
            raise JournalUnavailable(f"the journal {self.path} is closed", hint="open() it")
        try:
            return fn(conn)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        finally:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.rollback()

    def _translate(self, exc: sqlite3.Error) -> JournalError:
        name = getattr(exc, "sqlite_errorname", "") or ""
        text = f"SQLite journal {self.path}: {exc}"
        for prefix, hint in _HINTS:
            if name.startswith(prefix):
                return JournalUnavailable(text, hint=hint)
        if isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError:
            return JournalUnavailable(text, hint="check the file and the disk")
        if "closed" in str(exc):  # ProgrammingError: the connection was closed under us
            return JournalUnavailable(text, hint="check the file and the disk")
        return JournalError(text, hint="unexpected SQLite error; please report it")

    def _connect(self) -> sqlite3.Connection:
        parent = self.path.parent
        if not parent.is_dir():
            raise JournalUnavailable(
                f"cannot open the SQLite journal {self.path}: directory {parent} does not exist",
                hint="create the directory, or pass another path",
            )
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            if self._version(conn) == SCHEMA_VERSION:
                self._configure(conn)
                self._add_missing(conn)
                return conn
            self._configure(conn)
            conn.execute("BEGIN IMMEDIATE")
            if self._version(conn) is None:  # still fresh now that we hold the write lock
                for stmt in (*_SCHEMA, *_ADDITIONS.values()):
                    conn.execute(stmt)
                conn.execute(
                    "INSERT INTO flowcoord_meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                self.transactions += 1
            conn.execute("COMMIT")
            self._add_missing(conn)  # another connection created it first, before them
            return conn
        except BaseException as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, sqlite3.Error):
                raise self._translate(exc) from exc
            raise

    def _add_missing(self, conn: sqlite3.Connection) -> None:
        """Create the :data:`_ADDITIONS` a journal made by an older flowcoord lacks (once;
        a file this process may not write keeps without them: they only speed reads up)."""
        sql = "SELECT name FROM sqlite_master WHERE type IN ('index', 'table')"
        missing = set(_ADDITIONS) - {r[0] for r in conn.execute(sql)}
        if not missing:
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            for name in sorted(missing):
                conn.execute(_ADDITIONS[name])
            conn.execute("COMMIT")
            self.transactions += 1
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.rollback()
            if not getattr(exc, "sqlite_errorname", "").startswith("SQLITE_READONLY"):
                raise

    def _configure(self, conn: sqlite3.Connection) -> None:
        # Switching a file to WAL while another connection writes it in rollback mode (a
        # second process creating the schema of a fresh file) fails at once with
        # SQLITE_BUSY: SQLite calls no busy handler there. Retry as the handler would (this
        # runs on the journal's worker thread, as all its SQL: sleeping blocks no event loop).
        deadline = time.monotonic() + BUSY_TIMEOUT
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as exc:
                busy = getattr(exc, "sqlite_errorname", "").startswith("SQLITE_BUSY")
                if not busy or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")  # validated in __init__

    def _version(self, conn: sqlite3.Connection) -> int | None:
        """The file's schema version, None if fresh; refuses newer or foreign schemas."""
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
        tables = {r[0] for r in conn.execute(sql)}
        if "flowcoord_meta" not in tables:
            if tables & {"flows", "entries"}:
                raise JournalSchemaError(
                    f"{self.path} has flows/entries tables but is not a flowcoord journal",
                    hint="point the journal at another file",
                )
            return None
        sql = "SELECT value FROM flowcoord_meta WHERE key = 'schema_version'"
        row = conn.execute(sql).fetchone()
        try:
            version = int(row[0])
        except (TypeError, ValueError):
            version = -1
        if version > SCHEMA_VERSION:
            raise JournalSchemaError(
                f"the journal {self.path} has schema version {version}, newer than this "
                f"flowcoord knows ({SCHEMA_VERSION})",
                hint="upgrade flowcoord to use this journal; nothing was written",
            )
        if version != SCHEMA_VERSION:
            raise JournalSchemaError(
                f"the journal {self.path} has an unreadable schema_version {row!r}",
                hint="point the journal at another file",
            )
        return version

    def _entry(self, row: Any) -> Entry:
        try:
            kind = EventKind(row[2])
        except ValueError:
            raise JournalSchemaError(
                f"the journal {self.path} holds an entry of unknown kind {row[2]!r}",
                flow_id=row[0],
                hint="upgrade flowcoord to read this journal",
            ) from None
        return Entry(row[0], row[1], kind, row[3], row[4], row[5], row[6], row[7])

    def _write(self, conn: sqlite3.Connection, groups: Sequence[tuple[str, _Group]]) -> None:
        conn.executemany(_INSERT_ENTRY, [row for _, g in groups for row in g.rows])
        stateful: dict[str, bool] = {}
        for flow_id, g in groups:
            stateful[flow_id] = stateful.get(flow_id, False) or g.has_state
        now = time.time()
        state_kind = EventKind.FLOW_STATE.value
        conn.executemany(_SET_STATE, [(now, state_kind, f) for f, s in stateful.items() if s])
        conn.executemany(_TOUCH, [(now, f) for f, s in stateful.items() if not s])

    def _tx_create(
        self, conn: sqlite3.Connection, record: FlowRecord, group: _Group | None
    ) -> bool:
        conn.execute("BEGIN IMMEDIATE")
        now = time.time()
        created = record.created_at or now
        values = (record.flow_id, record.name, record.state, record.token, created, now)
        if conn.execute(_INSERT_FLOW, values).rowcount == 0:
            return False  # the flow exists; _call rolls back
        if group is not None:
            self._write(conn, [(record.flow_id, group)])
        conn.execute("COMMIT")
        self.transactions += 1
        return True

    def _tx_append(self, conn: sqlite3.Connection, groups: dict[str, _Group]) -> frozenset[str]:
        conn.execute("BEGIN IMMEDIATE")
        refused: list[str] = []
        accepted: list[tuple[str, _Group]] = []
        sql = "SELECT token FROM flows WHERE flow_id = ?"
        for flow_id, g in groups.items():
            row = conn.execute(sql, (flow_id,)).fetchone()
            if row is None or g.min_token < int(row[0]):
                refused.append(flow_id)
            else:
                accepted.append((flow_id, g))
        self._write(conn, accepted)
        conn.execute("COMMIT")
        self.transactions += 1
        self.batches += 1
        return frozenset(refused)

    def _tx_delete(
        self, conn: sqlite3.Connection, flow_ids: list[str], ended_before: float
    ) -> list[str]:
        conn.execute("BEGIN IMMEDIATE")
        final = FINAL_STATE_NAMES
        marks = ",".join("?" * len(final))
        sql = f"SELECT 1 FROM flows WHERE flow_id = ? AND state IN ({marks}) AND updated_at < ?"
        doomed = [f for f in flow_ids if conn.execute(sql, (f, *final, ended_before)).fetchone()]
        for table in ("entries", "sent_events", "flows"):
            conn.executemany(f"DELETE FROM {table} WHERE flow_id = ?", [(f,) for f in doomed])
        conn.execute("COMMIT")
        self.transactions += 1
        return doomed

    def _tx_send(
        self, conn: sqlite3.Connection, flow_id: str, topic: str, data: str, key: str
    ) -> SentEvent:
        conn.execute("BEGIN IMMEDIATE")
        if conn.execute("SELECT 1 FROM flows WHERE flow_id = ?", (flow_id,)).fetchone() is None:
            raise FlowNotFound(f"no flow {flow_id!r} in the journal", flow_id=flow_id)
        sql = "SELECT seq, data, key, sent_at FROM sent_events WHERE flow_id = ? AND topic = ?"
        row = conn.execute(sql + " AND key = ?", (flow_id, topic, key)).fetchone()
        if row is None:
            sql = "SELECT coalesce(max(seq), 0) FROM sent_events WHERE flow_id = ? AND topic = ?"
            seq = int(conn.execute(sql, (flow_id, topic)).fetchone()[0]) + 1
            row = (seq, data, key, time.time())
            conn.execute(
                "INSERT INTO sent_events (flow_id, topic, seq, data, key, sent_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (flow_id, topic, *row),
            )
            self.transactions += 1
        conn.execute("COMMIT")
        return SentEvent(flow_id, topic, *row)

    def _tx_fence(self, conn: sqlite3.Connection, flow_id: str, token: int) -> int:
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT token FROM flows WHERE flow_id = ?", (flow_id,)).fetchone()
        if row is None:
            raise FlowNotFound(f"no flow {flow_id!r} in the journal", flow_id=flow_id)
        current = int(row[0])
        if current > token:
            raise OwnershipLost(
                f"flow {flow_id!r} is owned with a newer token ({current} > {token})",
                flow_id=flow_id,
            )
        if current != token:
            conn.execute("UPDATE flows SET token = ? WHERE flow_id = ?", (token, flow_id))
        conn.execute("COMMIT")
        self.transactions += 1
        return current


def _group(entries: Sequence[Entry]) -> dict[str, _Group]:
    """Validate entries (a bad one fails its own caller, not a whole batch) and group by flow."""
    groups: dict[str, _Group] = {}
    for e in entries:
        if not (
            isinstance(e.flow_id, str)
            and isinstance(e.data, str)
            and isinstance(e.seq, int)
            and isinstance(e.token, int)
            and isinstance(e.task, str | None)
            and isinstance(e.state, str | None)
            and isinstance(e.at, float | int)
        ):
            raise TypeError(f"malformed journal entry: {e!r}")
        kind = EventKind(e.kind)
        g = groups.get(e.flow_id)
        if g is None:
            g = groups[e.flow_id] = _Group(e.token)
        g.min_token = min(g.min_token, e.token)
        g.rows.append((e.flow_id, e.seq, kind.value, e.task, e.data, e.state, e.token, e.at))
        g.has_state = g.has_state or (kind is EventKind.FLOW_STATE and e.state is not None)
    return groups
