"""The PostgreSQL journal's driver boundary: which asyncpg errors are transient or break the
connection, and the retrying, per-attempt and sticky-connection machinery every call runs on."""

from __future__ import annotations

import contextlib
import errno
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeAlias, TypeVar, cast
from urllib.parse import unquote, urlsplit

import anyio
import asyncpg
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_random_exponential

from ..errors import ConfigurationError, FlowcoordError, JournalError, JournalUnavailable

log = structlog.get_logger("flowcoord.journal.postgres")

_T = TypeVar("_T")
if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    _Conn: TypeAlias = PoolConnectionProxy[asyncpg.Record]
    _Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
    _Op: TypeAlias = Callable[[_Conn], Awaitable[_T]]

_DSN_FORM = "postgresql://user[:password]@host[:port]/database"
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


class _DriverBoundary:
    """The one boundary for driver errors and retries, mixed into
    :class:`~flowcoord._journal._postgres.PostgresJournal` (which sets the attributes below):
    every call goes through :meth:`_run`, and leaves only as a
    :class:`~flowcoord.errors.JournalError`."""

    schema: str
    _where: str
    _user: str | None
    _database: str | None
    _retry_deadline: float
    _attempt_timeout: float
    _connect_deadline: float
    _pool: _Pool | None
    _sticky: _Conn | None
    _sticky_busy: bool

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
