"""Wiring an engine into an aiohttp application: its lifetime, and how handlers reach it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import anyio
import structlog
from aiohttp import web

from .._coord._contract import JobBoard
from .._engine._engine import Engine
from .._model._registry import FlowRegistry
from .._views import DEFAULT_MAX_VALUE, Redactor, ValuePolicy
from ..errors import ConfigurationError
from ._api import add_api_routes
from ._dashboard import add_dashboard_routes
from ._errors import error_middleware
from ._events_api import add_event_routes
from ._jobs_api import add_job_routes
from ._openapi import add_openapi_route
from ._state import STATE_KEY, AppState, get_engine, get_registry, state_of

__all__ = ["STATE_KEY", "AppState", "create_app", "get_engine", "get_registry", "setup", "state_of"]

log = structlog.get_logger("flowcoord.aiohttp")


def setup(
    app: web.Application,
    *,
    registry: FlowRegistry,
    token: str | None,
    engine: Engine | None = None,
    engine_factory: Callable[[], Engine] | None = None,
    prefix: str = "/api",
    dashboard: bool = True,
    shutdown_timeout: float = 10.0,
    protect_reads: bool = False,
    board: JobBoard | None = None,
    board_factory: Callable[[], AbstractAsyncContextManager[JobBoard]] | None = None,
    redact: Redactor | None = None,
    max_value_size: int | None = DEFAULT_MAX_VALUE,
) -> None:
    """Serve flowcoord's JSON API under ``prefix`` (and the dashboard at ``/``) from ``app``.

    Give either ``engine`` or ``engine_factory``: the engine is started with the app (a
    ``cleanup_ctx``) and stopped with it; flows still running at shutdown are stopped — they
    stay resumable in the journal — and after ``shutdown_timeout`` seconds the tasks still
    running are cancelled. Handlers reach the engine with :func:`get_engine`. Mutating
    requests need ``Authorization: Bearer <token>``; ``token=None`` turns that check off.
    ``protect_reads=True`` asks for the token on reads too (flow inputs, results and
    tracebacks can be sensitive); the dashboard then sends the token typed into it.

    A job board (at most one of ``board`` and ``board_factory``, e.g.
    ``board_factory=lambda: flowcoord.coordination.open_board(zk_hosts=..., namespace=...)``,
    entered with the app before the engine and left after it) makes ``resume`` and
    ``cancel`` respect live claims (:func:`flowcoord.coordination.take_over`): a flow whose
    job a live member holds is refused with 409 ``FlowOwned`` unless the request asks for
    ``force``. Without one, a take-over fences the journal and nothing else.

    Journaled values (a flow's inputs, each task's result, a workflow step's arguments and
    result) are shown by the API and the dashboard through ``redact(field, value)`` when
    given, which returns what to show instead (``field``: ``"inputs.<name>"``,
    ``"tasks.<task>.result"``, ``"tasks.<task>.args"``, ``"result"``,
    ``"retries.<scope>.value"``); then a value whose JSON is longer than ``max_value_size``
    characters (``None``: no limit) is shown as ``{"$truncated": <length>, "preview": ...}``.
    """

    if (engine is None) == (engine_factory is None):
        raise ConfigurationError("setup() needs exactly one of engine= and engine_factory=")
    if not isinstance(registry, FlowRegistry):
        raise ConfigurationError(f"registry must be a flowcoord.FlowRegistry, got {registry!r}")
    if token is not None and (not isinstance(token, str) or not token.strip()):
        raise ConfigurationError(
            "token must be a non-empty string or None", hint="pass token=None to turn auth off"
        )
    if not isinstance(prefix, str) or not prefix.startswith("/") or prefix.rstrip("/") == "":
        raise ConfigurationError(
            f"prefix must be a path like '/api', got {prefix!r}",
            hint="the dashboard owns '/', so the API needs a prefix of its own",
        )
    if not shutdown_timeout >= 0:
        raise ConfigurationError(f"shutdown_timeout must be >= 0, got {shutdown_timeout!r}")
    if board is not None and board_factory is not None:
        raise ConfigurationError("setup() takes at most one of board= and board_factory=")
    if board is not None and not isinstance(board, JobBoard):
        raise ConfigurationError(f"board must be a flowcoord.coordination.JobBoard, got {board!r}")
    if STATE_KEY in app:
        raise ConfigurationError("flowcoord.aiohttp.setup() was already called on this app")
    if redact is not None and not callable(redact):
        raise ConfigurationError(
            f"redact must be a function redact(field, value) -> shown value, got {redact!r}"
        )
    if max_value_size is not None and (
        isinstance(max_value_size, bool)
        or not isinstance(max_value_size, int)
        or max_value_size < 16
    ):
        got = repr(max_value_size)[:40]
        raise ConfigurationError(
            f"max_value_size must be a number of characters >= 16, or None, got {got}"
        )
    if engine is not None:
        given = engine
        make: Callable[[], Engine] = lambda: given  # noqa: E731
    else:
        assert engine_factory is not None
        make = engine_factory
    prefix = prefix.rstrip("/")
    if token is None:
        log.warning("api_auth_disabled", hint="anyone who can reach the server can start flows")
    if protect_reads and token is None:
        raise ConfigurationError("protect_reads=True needs a token")
    app[STATE_KEY] = AppState(
        make,
        registry,
        token,
        prefix,
        float(shutdown_timeout),
        protect_reads=protect_reads,
        board=board,
        make_board=board_factory,
        values=ValuePolicy(redact, max_value_size),
    )
    app.middlewares.append(error_middleware(prefix))
    if board_factory is not None:
        app.cleanup_ctx.append(_board_lifetime)
    app.cleanup_ctx.append(_engine_lifetime)
    add_api_routes(app, prefix)
    add_job_routes(app, prefix)
    add_event_routes(app, prefix)
    add_openapi_route(app, prefix)
    if dashboard:
        add_dashboard_routes(app, prefix)


def create_app(
    *,
    registry: FlowRegistry,
    token: str | None,
    engine: Engine | None = None,
    engine_factory: Callable[[], Engine] | None = None,
    prefix: str = "/api",
    dashboard: bool = True,
    shutdown_timeout: float = 10.0,
    protect_reads: bool = False,
    board: JobBoard | None = None,
    board_factory: Callable[[], AbstractAsyncContextManager[JobBoard]] | None = None,
    redact: Redactor | None = None,
    max_value_size: int | None = DEFAULT_MAX_VALUE,
) -> web.Application:
    """A new application with :func:`setup` applied (what ``flowcoord serve`` runs)."""
    app = web.Application()
    setup(
        app,
        registry=registry,
        token=token,
        engine=engine,
        engine_factory=engine_factory,
        prefix=prefix,
        dashboard=dashboard,
        shutdown_timeout=shutdown_timeout,
        protect_reads=protect_reads,
        board=board,
        board_factory=board_factory,
        redact=redact,
        max_value_size=max_value_size,
    )
    return app


async def _board_lifetime(app: web.Application) -> AsyncIterator[None]:
    st = app[STATE_KEY]
    assert st.make_board is not None
    async with st.make_board() as board:
        st.board = board
        try:
            yield
        finally:
            st.board = None


async def _engine_lifetime(app: web.Application) -> AsyncIterator[None]:
    st = app[STATE_KEY]
    engine = st.make_engine()
    if not isinstance(engine, Engine):
        raise ConfigurationError(f"engine_factory returned {engine!r}, not a flowcoord.Engine")
    with anyio.CancelScope() as hard:
        async with engine:
            st.engine = engine
            try:
                yield
            finally:
                st.engine = None
                if not await _stop_running(engine, st.shutdown_timeout):
                    hard.cancel()


async def _stop_running(engine: Engine, grace: float) -> bool:
    """Stop every running flow (resumable later) and wait up to ``grace`` s for them."""
    handles = engine.running
    if not handles:
        return True
    log.info("stopping_flows", count=len(handles), grace=grace)
    for h in handles:
        h.stop()
    with anyio.move_on_after(grace):
        for h in handles:
            with contextlib.suppress(Exception):
                await h.wait()
        return True
    log.warning(
        "flows_cancelled_at_shutdown",
        flows=[h.flow_id for h in handles if not h.done],
        hint="their running tasks were cancelled; resume the flows from the journal",
    )
    return False
