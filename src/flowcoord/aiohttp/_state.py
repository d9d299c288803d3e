"""What :func:`~flowcoord.aiohttp.setup` keeps on an application, and how handlers reach it
(a module of its own, so that the routes and the wiring both import it, not each other)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from .._engine._engine import Engine, FlowHandle
from .._model._compile import Plan, compile_flow
from .._model._registry import FlowRegistry
from ..errors import ConfigurationError, FlowcoordError, JournalUnavailable

__all__ = ["STATE_KEY", "AppState", "get_engine", "get_registry", "state_of"]


@dataclass(slots=True)
class AppState:
    """What :func:`setup` keeps on the application (under :data:`STATE_KEY`)."""

    make_engine: Callable[[], Engine]
    registry: FlowRegistry
    token: str | None
    prefix: str
    shutdown_timeout: float
    protect_reads: bool = False
    engine: Engine | None = None
    starting: set[str] = field(default_factory=set)
    handles: dict[str, FlowHandle] = field(default_factory=dict)
    plans: dict[str, Plan] = field(default_factory=dict)

    def plan(self, name: str) -> Plan | None:
        """The compiled plan of the registered flow ``name`` (cached), or ``None``."""
        plan = self.plans.get(name)
        if plan is None and name in self.registry:
            try:
                plan = self.plans[name] = compile_flow(self.registry.build(name))
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
