"""The PostgreSQL journal backend (asyncpg): one round trip per append batch, fencing in SQL."""

from __future__ import annotations

import contextlib
import errno
import re
import socket
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeAlias, TypeVar, cast
from urllib.parse import unquote, urlsplit

import anyio
import asyncpg
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_random_exponential

from ..errors import (
    ConfigurationError,
    FlowcoordError,
    FlowNotFound,
    JournalError,
    JournalSchemaError,
    JournalUnavailable,
    OwnershipLost,
)
from ._contract import FlowPage, JournalBackend, Listing
from ._events import Entry, EventKind, FlowRecord, summed_below
from ._postgres_sql import SCHEMA_VERSION, Statements
from ._sent import SentEvent

__all__ = ["PostgresJournal"]

log = structlog.get_logger("flowcoord.journal.postgres")

_T = TypeVar("_T")
if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    _Conn: TypeAlias = PoolConnectionProxy[asyncpg.Record]
    _Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
    _Op: TypeAlias = Callable[[_Conn], Awaitable[_T]]

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
_DSN_FORM = "postgresql://user[:password]@host[:port]/database"
_CLOSE_TIMEOUT = 5.0
_MIN_ATTEMPT = 0.5  # the last attempt before the deadline still gets this long

# Errors after which the same statement may succeed on another try (a fresh connection, the
# server back up, the lock conflict gone). Appends are idempotent, so an unknown commit
# outcome is one of these too.
_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # ConnectionRefusedError, ConnectionResetError, ...
    TimeoutError,
    asyncpg.PostgresConnectionError,  # SQLSTATE 08xxx, incl. ConnectionDoesNotExistError
    asyncpg.exceptions.OperatorInterventionError,  # 57xxx: admin/crash shutdown, starting up
    asyncpg.TransactionRollbackError,  # 40xxx: serialization failure, deadlock
    asyncpg.TooManyConnectionsError,
)
_NOT_TRANSIENT: tuple[type[BaseException], ...] = (
    asyncpg.ClientConfigurationError,
    asyncpg.DataError,
    asyncpg.exceptions.UnsupportedClientFeatureError,
    asyncpg.exceptions.UnsupportedServerFeatureError,
)
_DRIVER: tuple[type[BaseException], ...] = (
    *_TRANSIENT,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)

# What asyncpg's InterfaceError or InternalClientError says when the connection, not the
# call, is what is wrong: the server closed it (the pool detaches a checked-out connection
# that the server closed: "released back to the pool"), or the server's last words (FATAL
# "terminating connection due to administrator command", sent to an idle connection by
# pg_terminate_backend or a fast shutdown) arrived but the end of the stream has not yet:
# then the protocol waits for a ReadyForQuery that never comes ("cannot switch to state 12;
# another operation (2) is in progress"). Nothing was sent on it: a new connection serves.
_CONNECTION_BROKEN = (
    "connection is closed",
    "connection was closed",
    "released back to the pool",
    "another operation",  # "... is in progress", "... is cancelling"
    'protocol is in the "failed" state',
)
# Nobody at the address: nothing listening, no route, no such name or socket file.
_NOBODY_THERE = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENOENT}


def _connection_broken(exc: BaseException) -> bool:
    """The driver refused the connection's state, not the call."""
    message = str(exc)
    return any(broken in message for broken in _CONNECTION_BROKEN)


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, _NOT_TRANSIENT):
        return False
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.exceptions.InternalClientError):
        # The connection is broken or gone: transient. Anything else the driver refuses (a
        # value its codec cannot encode, a wrong number of arguments) fails the same way again.
        return _connection_broken(exc)
    return isinstance(exc, _TRANSIENT)


def _nobody_there(exc: BaseException | None) -> bool:
    """Connecting found no server at the address (not one that is busy or starting up)."""
    if isinstance(exc, socket.gaierror):
        return exc.errno != socket.EAI_AGAIN  # the name does not resolve (not "try again")
    return isinstance(exc, OSError) and exc.errno in _NOBODY_THERE


def _why_nobody(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return "the host name does not resolve"
    code = exc.errno if isinstance(exc, OSError) else None
    if code == errno.ECONNREFUSED:
        return "connection refused, nothing listens there"
    if code == errno.ENOENT:
        return "no server socket there"
    return "no route to the host"


def _closed(conn: _Conn) -> bool:
    """Whether a checked-out connection is closed (without a round trip)."""
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:  # "released back to the pool": closed, the pool took it
        return True


def _keep_connection(exc: BaseException) -> bool:
    """After ``exc``, is the connection it came from still fit for use? Only when the server
    refused a statement and then said it is ready for the next (or flowcoord refused what it
    answered): not when it was lost, closed by the server, or interrupted mid-protocol."""
    if isinstance(exc, FlowcoordError):
        return True
    return isinstance(exc, asyncpg.PostgresError) and not isinstance(
        exc, asyncpg.PostgresConnectionError | asyncpg.exceptions.OperatorInterventionError
    )


async def _keep_session(conn: object) -> None:
    """Pool reset hook: nothing to undo (no session state is ever set), so no round trip."""


class PostgresJournal(JournalBackend):
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
        args = (*columns, list(min_token))
        tokens = ",".join(map(str, min_token.values()))

        async def op(conn: _Conn) -> frozenset[str]:
            try:
                rows = await conn.fetch(stmt, *args, tokens, time.time())
            except asyncpg.UniqueViolationError:
                # some entry is stored already (a retry after a lost reply, or sent twice):
                # nothing of this statement was written; store the others, once each
                rows = await conn.fetch(again, *args, tokens, time.time())
            return frozenset(min_token).difference(r[0] for r in rows)

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
            assert row is not None
            return SentEvent(flow_id, topic, row[0], row[1], row[2], row[3])

        return await self._run("sending an event", op)

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

    # -- the one boundary for driver errors and retries -------------------------------------

    async def _run(self, what: str, op: _Op[_T]) -> _T:
        pool = self._pool
        if pool is None:
            raise JournalUnavailable(
                f"the PostgreSQL journal ({self._where}) is not open", hint="open() it first"
            )
        return await self._retrying(what, self._attempt, pool, op)

    async def _retrying(
        self,
        what: str,
        fn: Callable[..., Awaitable[_T]],
        *args: object,
        nobody_there_deadline: float | None = None,
    ) -> _T:
        """Call ``fn(*args, deadline)`` until it succeeds, fails for good, or time runs out:
        ``retry_deadline``, or ``nobody_there_deadline`` (when given) for errors that say no
        server is at the address (see :func:`_nobody_there`)."""
        start = time.monotonic()
        deadline = start + self._retry_deadline
        fast = deadline if nobody_there_deadline is None else start + nobody_there_deadline

        def stop_at(exc: BaseException | None) -> float:
            return min(deadline, fast) if _nobody_there(exc) else deadline

        try:  # the first attempt without tenacity's machinery (the common, healthy case)
            return await fn(*args, deadline)
        except FlowcoordError:
            raise
        except BaseException as exc:
            if not _is_transient(exc) or time.monotonic() >= stop_at(exc):
                if isinstance(exc, _DRIVER):
                    raise self._translate(exc, what, time.monotonic() - start) from exc
                raise
        base_wait = wait_random_exponential(multiplier=0.05, max=2.0)

        def last_error(state: RetryCallState) -> BaseException | None:
            return state.outcome.exception() if state.outcome else None

        def wait(state: RetryCallState) -> float:
            until = stop_at(last_error(state))
            return max(0.0, min(base_wait(state), until - time.monotonic()))

        def before_sleep(state: RetryCallState) -> None:
            exc = last_error(state)
            log.warning(
                "journal call failed; retrying",
                what=what,
                attempt=state.attempt_number,
                error=repr(exc),
                where=self._where,
            )

        retrying = AsyncRetrying(
            sleep=anyio.sleep,
            stop=lambda state: time.monotonic() >= stop_at(last_error(state)),
            wait=wait,
            retry=retry_if_exception(_is_transient),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return cast(_T, await retrying(fn, *args, deadline))
        except FlowcoordError:
            raise
        except _DRIVER as exc:
            raise self._translate(exc, what, time.monotonic() - start) from exc

    async def _attempt(self, pool: _Pool, op: _Op[_T], deadline: float) -> _T:
        budget = min(self._attempt_timeout, max(deadline - time.monotonic(), _MIN_ATTEMPT))
        conn: _Conn | None = None
        sticky = False
        try:
            with anyio.fail_after(budget):
                if self._sticky is not None and not self._sticky_busy:
                    if _closed(self._sticky):  # the server closed it meanwhile: no round trip
                        await self._drop_sticky(pool)
                    else:
                        conn, sticky = self._sticky, True
                        self._sticky_busy = True
                if conn is None:
                    conn = await pool.acquire()
                result = await op(conn)
        except BaseException as exc:
            if sticky:
                self._sticky, self._sticky_busy = None, False
            if conn is not None:
                if not _keep_connection(exc):
                    # Lost, closed by the server, or mid-protocol (cancelled, timed out, its
                    # state refused by the driver): never to be handed out again.
                    # InterfaceError: already closed and handed back by the pool itself.
                    with contextlib.suppress(asyncpg.InterfaceError):
                        conn.terminate()
                with anyio.CancelScope(shield=True):
                    await pool.release(conn)
            raise
        if sticky:
            self._sticky_busy = False
        elif self._sticky is None and self._pool is pool:
            self._sticky = conn  # keep one connection checked out: no acquire/release
        else:
            await pool.release(conn)
        return result

    async def _drop_sticky(self, pool: _Pool) -> None:
        conn, self._sticky = self._sticky, None
        if conn is not None:
            with contextlib.suppress(asyncpg.InterfaceError):
                conn.terminate()
            with anyio.CancelScope(shield=True):
                await pool.release(conn)  # a closed connection: its holder is freed

    def _translate(self, exc: BaseException, what: str, waited: float) -> JournalError:
        where, user, db = self._where, self._user, self._database
        if isinstance(exc, asyncpg.InvalidPasswordError):
            return JournalUnavailable(
                f"{where} refused the password for user {user!r}",
                hint="fix the password in the DSN (or PGPASSWORD / ~/.pgpass)",
            )
        if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
            return JournalUnavailable(
                f"{where} refused user {user!r}: {exc}",
                hint="create the role, or allow it in pg_hba.conf",
            )
        if isinstance(exc, asyncpg.InvalidCatalogNameError):
            return JournalUnavailable(
                f"database {db!r} does not exist on {where}",
                hint=f"create it (CREATE DATABASE {db}) or fix the database name in the DSN",
            )
        if isinstance(exc, asyncpg.InsufficientPrivilegeError):
            return JournalUnavailable(
                f"user {user!r} lacks a privilege on {where} while {what}: {exc}",
                hint=f"grant it CREATE on the database or USAGE on schema {self.schema!r}",
            )
        gave_up = f"(gave up after {waited:.1f}s): {type(exc).__name__}: {exc}"
        unreachable = not isinstance(exc, asyncpg.PostgresError) or isinstance(
            exc, asyncpg.PostgresConnectionError
        )
        if _nobody_there(exc) and self._pool is None:  # open() failed to connect
            return JournalUnavailable(
                f"cannot reach {where} while {what}: {_why_nobody(exc)} "
                f"({type(exc).__name__}: {exc}; gave up after {waited:.1f}s)",
                hint="is PostgreSQL running there? Check host and port in the DSN; to wait "
                f"for a server that is still starting, raise connect_deadline (now "
                f"{self._connect_deadline:g}s)",
            )
        if _is_transient(exc) and unreachable:
            return JournalUnavailable(
                f"cannot reach {where} while {what} {gave_up}",
                hint="is the server running and accepting TCP connections there? "
                "Check host and port in the DSN",
            )
        if _is_transient(exc):
            return JournalUnavailable(
                f"{where} kept failing while {what} {gave_up}",
                hint="the server is shutting down, starting up, out of connections, "
                "or contended; retry later",
            )
        return JournalError(f"{where} failed while {what}: {type(exc).__name__}: {exc}")


# -- rows <-> records -------------------------------------------------------------------------


def _describe(dsn: str) -> tuple[str, str | None, str | None]:
    """``("PostgreSQL at host:port", user, database)``; :class:`ConfigurationError` if malformed."""
    try:
        url = urlsplit(dsn)
        port = url.port
    except ValueError as exc:
        raise ConfigurationError(
            f"malformed PostgreSQL DSN: {exc}", hint=f"expected {_DSN_FORM}"
        ) from exc
    if url.scheme not in ("postgresql", "postgres"):
        raise ConfigurationError(
            f"malformed PostgreSQL DSN: scheme {url.scheme!r}, not 'postgresql'",
            hint=f"expected {_DSN_FORM}",
        )
    user = unquote(url.username) if url.username else None
    database = unquote(url.path.lstrip("/")) or user
    host = url.hostname or "the default host"
    return f"PostgreSQL at {host}:{port or 5432}", user, database


def _dedupe(entries: Sequence[Entry]) -> list[Entry]:
    seen: set[tuple[str, int]] = set()
    out = []
    for e in entries:
        if (e.flow_id, e.seq) not in seen:
            seen.add((e.flow_id, e.seq))
            out.append(e)
    return out


def _final_state(entries: Sequence[Entry], state: str) -> str:
    last: Entry | None = None
    for e in entries:
        if e.kind is EventKind.FLOW_STATE and e.state and (last is None or e.seq > last.seq):
            last = e
    return last.state if last is not None and last.state is not None else state


def _columns(entries: Sequence[Entry]) -> tuple[list[object], ...]:
    return (
        [e.flow_id for e in entries],
        [e.seq for e in entries],
        [e.kind.value for e in entries],
        [e.task for e in entries],
        [e.data for e in entries],
        [e.state for e in entries],
        [e.token for e in entries],
        [e.at for e in entries],
    )


_SEP, _NULL = "\x1f", "\x1e"


def _encoded(entries: Sequence[Entry]) -> tuple[bool, tuple[object, ...]]:
    """Parameters $1..$8 for a batch, and whether they are packed texts (see :func:`_pack`)
    rather than arrays: the statement's ``*_packed`` variant takes the former."""
    packed = _pack(entries)
    return (True, packed) if packed is not None else (False, _columns(entries))


def _pack(entries: Sequence[Entry]) -> tuple[str, ...] | None:
    """The entries as one text per column (see ``_UNNEST_PACKED``), or None when a value
    holds a separator, or is a lone empty string (which the server would split into no
    element): then the arrays of :func:`_columns` must be used."""
    n = len(entries)
    texts: list[str] = []
    columns: tuple[list[str | None], ...] = (
        [e.flow_id for e in entries],
        [e.kind for e in entries],  # a StrEnum: the member is its value
        [e.task for e in entries],
        [e.data for e in entries],
        [e.state for e in entries],
    )
    for values in columns:
        nulls = values.count(None)
        text = _SEP.join([_NULL if v is None else v for v in values] if nulls else values)  # type: ignore[arg-type]
        if text.count(_SEP) != n - 1 or text.count(_NULL) != nulls or not text:
            return None
        texts.append(text)
    flow_id, kind, task, data, state = texts
    seq = ",".join([str(e.seq) for e in entries])
    token = ",".join([str(e.token) for e in entries])
    at = ",".join([repr(e.at) for e in entries])  # repr: the shortest exact decimal
    return flow_id, seq, kind, task, data, state, token, at


_KINDS = {k.value: k for k in EventKind}


def _entry(flow_id: str, row: asyncpg.Record) -> Entry:
    seq, kind_s, task, data, state, token, at = row
    kind = _KINDS.get(kind_s)
    if kind is not None:
        return Entry(flow_id, seq, kind, task, data, state, token, at)
    try:
        kind = EventKind(row["kind"])
    except ValueError as exc:
        raise JournalSchemaError(
            f"flow {flow_id!r} has an entry of unknown kind {row['kind']!r}",
            flow_id=flow_id,
            hint="it was written by a newer flowcoord; upgrade this one",
        ) from exc
    return Entry(
        flow_id=flow_id,
        seq=row["seq"],
        kind=kind,
        task=row["task"],
        data=row["data"],
        state=row["state"],
        token=row["token"],
        at=row["at"],
    )


def _record(row: asyncpg.Record) -> FlowRecord:
    return FlowRecord(
        flow_id=row["flow_id"],
        name=row["name"],
        state=row["state"],
        token=row["token"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
