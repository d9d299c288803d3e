"""The PostgreSQL journal backend (asyncpg): one round trip per append batch, fencing in SQL."""

from __future__ import annotations

import contextlib
import re
import time
import zlib
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

import anyio
import asyncpg

from .._aio import running_in_background
from .._states import FINAL_STATE_NAMES
from ..errors import ConfigurationError, FlowNotFound, JournalSchemaError, OwnershipLost
from ._contract import FlowPage, JournalBackend, Listing
from ._events import Entry, FlowRecord, summed_below
from ._postgres_codec import _SEP, _columns, _dedupe, _encoded, _entry, _final_state, _record
from ._postgres_conn import _DSN_FORM, _describe, _DriverBoundary, _keep_session, log
from ._postgres_notify import CHANNEL, EventWatcher, notice
from ._postgres_sql import SCHEMA_VERSION, Statements
from ._sent import SentEvent

if TYPE_CHECKING:
    from ._postgres_conn import _Conn, _Pool

__all__ = ["PostgresJournal"]

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
_CLOSE_TIMEOUT = 5.0


class PostgresJournal(_DriverBoundary, JournalBackend):
    """Keeps the journal in PostgreSQL tables ``flows`` and ``entries`` of one schema.

    ``open()`` connects a pool and creates or migrates the schema (versioned in its ``meta``
    table). Every call runs on a pooled connection; when the connection or the server goes
    away it is retried with exponential backoff and jitter until ``retry_deadline`` seconds
    have passed, then :class:`~flowcoord.errors.JournalUnavailable` is raised. Each attempt is
    bounded by ``attempt_timeout`` (a black-holed connection is abandoned for a new one).
    Appends are idempotent by ``(flow_id, seq)``, so repeating one whose commit outcome was
    lost is safe. A connection that the server closed (``pg_terminate_backend``, a restart) or
    whose operation was interrupted is discarded, never used again; the call is retried on a
    new one.

    ``connect_deadline`` (seconds, default 1) bounds how long ``open()`` retries when there
    is nobody at the address at all (connection refused: no server listening on that host and
    port; no route; a host name that does not resolve): it then raises
    :class:`~flowcoord.errors.JournalUnavailable` at once, naming host and port, rather than after
    ``retry_deadline``. Raise it to wait for a server that is still being started. A server
    that answers but is starting up, shutting down or out of connections is waited for up to
    ``retry_deadline``, and so is every connection lost after ``open()``.
    """

    batch_creates = True

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "flowcoord",
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 10.0,
        retry_deadline: float = 30.0,
        attempt_timeout: float = 10.0,
        connect_deadline: float = 1.0,
    ) -> None:
        if not _SCHEMA_RE.match(schema) or len(schema) > 63:
            raise ConfigurationError(
                f"invalid PostgreSQL schema name {schema!r}",
                hint="use lowercase letters, digits and '_', not starting with a digit",
            )
        if not 0 <= min_size <= max_size or max_size < 1:
            raise ConfigurationError(
                f"invalid pool size min_size={min_size} max_size={max_size}",
                hint="need 0 <= min_size <= max_size and max_size >= 1",
            )
        for name, value, least in [
            ("connect_timeout", connect_timeout, 0.001),
            ("attempt_timeout", attempt_timeout, 0.001),
            ("retry_deadline", retry_deadline, 0.0),
            ("connect_deadline", connect_deadline, 0.0),
        ]:
            if not value >= least:
                raise ConfigurationError(f"{name} must be at least {least:g}, got {value!r}")
        self._dsn = dsn
        self._where, self._user, self._database = _describe(dsn)
        self.schema = schema
        self._sql = Statements(schema)
        self._min_size = min_size
        self._max_size = max_size
        self._connect_timeout = connect_timeout
        self._retry_deadline = retry_deadline
        self._attempt_timeout = attempt_timeout
        self._connect_deadline = connect_deadline
        self._pool: _Pool | None = None
        self._sticky: _Conn | None = None
        self._sticky_busy = False

    def __repr__(self) -> str:
        return f"<PostgresJournal {self._where} schema={self.schema}>"

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None:
            return
        fast = self._connect_deadline
        pool = await self._retrying("connecting", self._connect, nobody_there_deadline=fast)
        try:
            await self._retrying(
                "opening the schema", self._attempt, pool, self._migrate, nobody_there_deadline=fast
            )
        except BaseException:
            pool.terminate()
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        sticky, self._sticky = self._sticky, None
        if sticky is not None and not self._sticky_busy:
            with contextlib.suppress(Exception):
                await pool.release(sticky)
        try:
            with anyio.fail_after(_CLOSE_TIMEOUT):
                await pool.close()
        except (Exception, TimeoutError):
            pool.terminate()

    async def _connect(self, deadline: float) -> _Pool:
        pool: _Pool = asyncpg.create_pool(
            self._dsn,
            min_size=self._min_size,
            max_size=self._max_size,
            timeout=self._connect_timeout,
            reset=_keep_session,
            server_settings={"application_name": "flowcoord", "jit": "off"},
        )
        try:
            with anyio.fail_after(self._connect_timeout + 1):
                await pool
        except BaseException as exc:
            pool.terminate()
            if isinstance(exc, ValueError):  # incl. asyncpg.ClientConfigurationError
                raise ConfigurationError(
                    f"invalid PostgreSQL connection settings: {exc}", hint=f"expected {_DSN_FORM}"
                ) from exc
            raise
        return pool

    async def _migrate(self, conn: _Conn) -> None:
        sql = self._sql
        async with conn.transaction():
            # Concurrent open() calls: one creates, the others wait and find it done.
            await conn.execute(sql.lock, zlib.crc32(self.schema.encode()))
            version = 0
            if await conn.fetchval(sql.meta_exists, f"{sql.s}.meta") is not None:
                found = await conn.fetchval(sql.get_version)
                if found is not None and not str(found).isdigit():
                    raise JournalSchemaError(
                        f"the journal schema {self.schema!r} in {self._where} has an "
                        f"unreadable version {found!r}; nothing was changed",
                        hint="is this schema used by something other than flowcoord?",
                    )
                version = int(found or 0)
            if version > SCHEMA_VERSION:
                raise JournalSchemaError(
                    f"the journal schema {self.schema!r} in {self._where} is at version "
                    f"{version}, newer than this flowcoord knows ({SCHEMA_VERSION}); "
                    "nothing was changed",
                    hint="upgrade flowcoord, or point this engine at another schema",
                )
            for target, statements in sql.migrations(version):
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute(sql.set_version, str(target))
                log.info("journal schema migrated", schema=self.schema, version=target)

    # -- the contract -----------------------------------------------------------------------

    async def create_flow(self, record: FlowRecord, entries: Sequence[Entry]) -> bool:
        now = time.time()
        created = record.created_at or now
        unique = _dedupe(entries)
        state = _final_state(unique, record.state)
        columns = _columns(unique)
        attempts = 0

        async def op(conn: _Conn) -> bool:
            nonlocal attempts
            attempts += 1
            created_id = await conn.fetchval(
                self._sql.create_flow,
                *columns, record.flow_id, record.name, state, record.token, created, now,
            )  # fmt: skip
            # A retry may find the flow that its own lost commit created.
            return created_id is not None or (
                attempts > 1 and await self._is_ours(conn, record, created)
            )

        return await self._run("creating a flow", op)

    async def create_flows(
        self, batch: Sequence[tuple[FlowRecord, Sequence[Entry]]]
    ) -> frozenset[str]:
        now = time.time()
        records = [r for r, _ in batch]
        entries = [e for _, es in batch for e in _dedupe(es)]
        packed, columns = _encoded(entries)
        stmt = self._sql.create_flows_packed if packed else self._sql.create_flows
        args = (
            *columns,
            [r.flow_id for r in records], [r.name for r in records],
            [_final_state(_dedupe(es), r.state) for r, es in batch],
            ",".join([str(r.token) for r in records]),
            ",".join([repr(r.created_at or now) for r in records]),
            ",".join([repr(now)] * len(records)),
        )  # fmt: skip

        async def op(conn: _Conn) -> frozenset[str]:
            rows = await conn.fetch(stmt, *args)
            return frozenset(r[0] for r in rows)

        return await self._run("creating flows", op)

    async def _is_ours(self, conn: _Conn, record: FlowRecord, created: float) -> bool:
        row = await conn.fetchrow(self._sql.get_flow, record.flow_id)
        return row is not None and (row["name"], row["token"], row["created_at"]) == (
            record.name,
            record.token,
            created,
        )

    async def append(self, entries: Sequence[Entry]) -> frozenset[str]:
        if not entries:
            return frozenset()
        min_token: dict[str, int] = {}
        for e in entries:
            min_token[e.flow_id] = min(e.token, min_token.get(e.flow_id, e.token))
        packed, columns = _encoded(entries)
        sql = self._sql
        stmt = sql.append_packed if packed else sql.append
        again = sql.append_again_packed if packed else sql.append_again
        # the flows, packed as the entries are (no flow id holds the separator then)
        flows: object = _SEP.join(min_token) if packed else list(min_token)
        args = (*columns, flows)
        tokens = ",".join(map(str, min_token.values()))

        async def op(conn: _Conn) -> frozenset[str]:
            try:
                rows = await conn.fetch(stmt, *args, tokens, time.time())
            except asyncpg.UniqueViolationError:
                # some entry is stored already (a retry after a lost reply, or sent twice):
                # nothing of this statement was written; store the others, once each
                rows = await conn.fetch(again, *args, tokens, time.time())
            return frozenset([r[0] for r in rows]) if rows else frozenset()  # the refused

        return await self._run("appending", op)

    async def fence(self, flow_id: str, token: int) -> int:
        async def op(conn: _Conn) -> int:
            row = await conn.fetchrow(self._sql.fence, flow_id, token)
            if row is None:
                raise FlowNotFound(f"no flow {flow_id!r} in the journal", flow_id=flow_id)
            current: int = row["token"]
            if current > token:
                raise OwnershipLost(
                    f"flow {flow_id!r} is owned with a newer token ({current} > {token})",
                    flow_id=flow_id,
                )
            return current

        return await self._run("fencing a flow", op)

    async def read(self, flow_id: str, *, after_seq: int = -1) -> list[Entry]:
        async def op(conn: _Conn) -> list[Entry]:
            rows = await conn.fetch(self._sql.read, flow_id, after_seq)
            return [_entry(flow_id, r) for r in rows]

        return await self._run("reading a flow", op)

    async def read_for_resume(self, flow_id: str) -> list[Entry]:
        async def op(conn: _Conn) -> list[Entry]:
            # Two indexed reads on one connection: what checkpoints do not sum up (few rows,
            # the checkpoints among them), then everything from the newest one's "from" on.
            kept = await conn.fetch(self._sql.read_not_summed_up, flow_id)
            start = summed_below((r[1], r[3]) for r in reversed(kept))
            tail = await conn.fetch(self._sql.read, flow_id, start - 1)
            return [_entry(flow_id, r) for r in kept if r[0] < start] + [
                _entry(flow_id, r) for r in tail
            ]

        return await self._run("reading a flow", op)

    async def send_event(self, flow_id: str, topic: str, data: str, key: str) -> SentEvent:
        sql = self._sql

        async def op(conn: _Conn) -> SentEvent:
            async with conn.transaction():
                if await conn.fetchval(sql.lock_flow, flow_id) is None:
                    raise FlowNotFound(f"no flow {flow_id!r} in the journal", flow_id=flow_id)
                row = await conn.fetchrow(sql.sent_by_key, flow_id, topic, key)
                if row is None:  # (a retry after a lost commit finds its own event here)
                    row = await conn.fetchrow(
                        sql.send_event, flow_id, topic, data, key, time.time()
                    )
                    # delivered at commit: a watcher that wakes reads the event
                    await conn.execute(sql.notify, CHANNEL, notice(self.schema, flow_id, topic))
            assert row is not None
            return SentEvent(flow_id, topic, row[0], row[1], row[2], row[3])

        return await self._run("sending an event", op)

    def watch_events(self, wake: Callable[[str, str], None]) -> AbstractAsyncContextManager[None]:
        watcher = EventWatcher(self._dsn, self.schema, wake, timeout=self._connect_timeout)
        return running_in_background(watcher.run)

    async def delete_flows(self, flow_ids: Sequence[str], *, ended_before: float) -> list[str]:
        ids = list(dict.fromkeys(flow_ids))

        async def op(conn: _Conn) -> list[str]:
            final = list(FINAL_STATE_NAMES)
            rows = await conn.fetch(self._sql.delete_flows, ids, ended_before, final)
            return [r[0] for r in rows]

        deleted = set(await self._run("deleting flows", op))
        return [f for f in ids if f in deleted]

    async def sent_events(
        self, flow_id: str, topic: str, *, after: int = 0, limit: int = 1
    ) -> list[SentEvent]:
        async def op(conn: _Conn) -> list[SentEvent]:
            rows = await conn.fetch(self._sql.sent_events, flow_id, topic, after, max(limit, 0))
            return [SentEvent(flow_id, topic, r[0], r[1], r[2], r[3]) for r in rows]

        return await self._run("reading a flow's events", op)

    async def get_flow(self, flow_id: str) -> FlowRecord | None:
        async def op(conn: _Conn) -> FlowRecord | None:
            row = await conn.fetchrow(self._sql.get_flow, flow_id)
            return None if row is None else _record(row)

        return await self._run("reading a flow summary", op)

    async def list_flows(
        self, *, state: str | None = None, limit: int = 100, after: str | None = None
    ) -> list[FlowRecord]:
        query, args = self._sql.list_flows(state, after)

        async def op(conn: _Conn) -> list[FlowRecord]:
            return [_record(r) for r in await conn.fetch(query, *args, limit)]

        return await self._run("listing flows", op)

    async def newest_page(self, listing: Listing) -> FlowPage:
        query, args = self._sql.list_newest(listing)

        async def op(conn: _Conn) -> FlowPage:
            return listing.page([_record(r) for r in await conn.fetch(query, *args)])

        return await self._run("listing flows", op)
