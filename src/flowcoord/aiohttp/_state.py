"""What :func:`~flowcoord.aiohttp.setup` keeps on an application, and how handlers reach it
(a module of its own, so that the routes and the wiring both import it, not each other)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from aiohttp import web

from .._coord._contract import JobBoard
from .._engine._engine import Engine
from .._model._compile import Plan, compile_flow
from .._model._registry import FlowRegistry
from .._model._workflow import Workflow
from .._views import ValuePolicy
from ..errors import ConfigurationError, FlowcoordError, JournalUnavailable

__all__ = ["STATE_KEY", "AppState", "get_engine", "get_registry", "state_of"]


@dataclass(slots=True)
class AppState:
    """What :func:`setup` keeps on the application (under :data:`STATE_KEY`).

    Which flows run here is the engine's to say (:meth:`Engine.handle
    <flowcoord.Engine.handle>`), and the engine refuses a flow id it is starting or running
    already (:class:`~flowcoord.errors.FlowRunning`, answered 409): nothing of that is kept
    here. ``board`` is the job board whose live claims resume and cancel respect (given to
    :func:`setup`, or opened by ``make_board`` for the app's lifetime), or ``None``.
    ``values`` says how inputs and results are shown (redacted, cut to a size).
    """

    make_engine: Callable[[], Engine]
    registry: FlowRegistry
    token: str | None
    prefix: str
    shutdown_timeout: float
    protect_reads: bool = False
    engine: Engine | None = None
    board: JobBoard | None = None
    make_board: Callable[[], AbstractAsyncContextManager[JobBoard]] | None = None
    plans: dict[str, Plan] = field(default_factory=dict)
    values: ValuePolicy = field(default_factory=ValuePolicy)

    def plan(self, name: str) -> Plan | None:
        """The compiled plan of the registered flow ``name`` (cached), or ``None``."""
        plan = self.plans.get(name)
        if plan is None and name in self.registry:
            try:
                flow = self.registry.build(name)
                if isinstance(flow, Workflow):
                    return None  # its steps are code: no graph before it runs
                plan = self.plans[name] = compile_flow(flow)
            except FlowcoordError:
                return None
        return plan


STATE_KEY = web.AppKey("flowcoord", AppState)


def state_of(app: web.Application | web.Request) -> AppState:
    try:
        if isinstance(app, web.Request):
            return app.config_dict[STATE_KEY]
        return app[STATE_KEY]
    except KeyError:
        raise ConfigurationError(
            "flowcoord.aiohttp.setup() was not called on this application"
        ) from None


def get_engine(app: web.Application | web.Request) -> Engine:
    """The running engine of an app set up with :func:`setup` (pass the app or a request)."""
    engine = state_of(app).engine
    if engine is None:
        raise JournalUnavailable(
            "the flowcoord engine is not running",
            hint="it runs between the application's startup and cleanup",
        )
    return engine


def get_registry(app: web.Application | web.Request) -> FlowRegistry:
    """The flow registry given to :func:`setup`."""
    return state_of(app).registry
