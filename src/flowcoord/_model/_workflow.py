"""Workflows: code-first flows, ``async def fn(ctx, **inputs)`` whose steps are journaled by
the order they are called in (see :class:`flowcoord.Context`)."""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, overload

from ..errors import FlowDefinitionError, InvalidTaskError, MissingInputError

__all__ = ["Workflow", "workflow"]

WorkflowFn = Callable[..., Awaitable[Any]]


class Workflow:
    """A workflow: an ``async def`` taking a context first and its inputs by name after it.

    Made by :func:`workflow`. The engine runs it like a pattern flow (``engine.run(wf,
    {"size": 2})``, ``start``, ``resume``, handles, the journals), and journals each
    ``await ctx.step(...)`` so that a resumed run returns journaled results without running
    their steps again.
    """

    def __init__(self, fn: WorkflowFn, *, name: str | None = None) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise InvalidTaskError(
                f"workflow {getattr(fn, '__qualname__', fn)!r} must be an async def",
                hint="write 'async def my_workflow(ctx, ...)'",
            )
        self.fn = fn
        #: the tasks its steps made of plain functions, shared by its runs (see
        #: flowcoord.Context.step): the last 256, newest last
        self.step_tasks: OrderedDict[object, Any] = OrderedDict()  # by function, or a tuple
        self.name = name or fn.__name__
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise InvalidTaskError(
                f"workflow name {self.name!r} must be a non-empty str without '/'"
            )
        params = list(inspect.signature(fn).parameters.values())
        if not params or params[0].kind not in (
            params[0].POSITIONAL_ONLY,
            params[0].POSITIONAL_OR_KEYWORD,
        ):
            raise InvalidTaskError(
                f"workflow {self.name!r}: its first parameter must be the context",
                hint="write 'async def my_workflow(ctx, ...)'",
            )
        required: list[str] = []
        optional: list[str] = []
        self.takes_any = False
        for p in params[1:]:
            if p.kind is p.VAR_KEYWORD:
                self.takes_any = True
            elif p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY):
                raise InvalidTaskError(
                    f"workflow {self.name!r}: parameter {p.name!r} must be passable by keyword",
                    hint="inputs are passed by name",
                )
            else:
                (optional if p.default is not p.empty else required).append(p.name)
        self.requires: tuple[str, ...] = tuple(required)
        self.optional: tuple[str, ...] = tuple(optional)
        self.__doc__ = fn.__doc__

    def check_inputs(self, inputs: Mapping[str, Any]) -> None:
        """Raise a typed error, naming the workflow, for missing or unknown inputs."""
        missing = [n for n in self.requires if n not in inputs]
        if missing:
            raise MissingInputError(
                f"the workflow needs inputs {missing}", flow=self.name, names=missing
            )
        if not self.takes_any:
            known = {*self.requires, *self.optional}
            unknown = sorted(n for n in inputs if n not in known)
            if unknown:
                raise FlowDefinitionError(
                    f"the workflow has no inputs {unknown}; it takes {sorted(known)}",
                    flow=self.name,
                    names=unknown,
                )

    def __repr__(self) -> str:
        return f"<Workflow {self.name!r} requires={self.requires}>"


@overload
def workflow(fn: WorkflowFn, /) -> Workflow: ...


@overload
def workflow(
    fn: None = None, /, *, name: str | None = None
) -> Callable[[WorkflowFn], Workflow]: ...


def workflow(
    fn: WorkflowFn | None = None, /, *, name: str | None = None
) -> Workflow | Callable[[WorkflowFn], Workflow]:
    """Make a workflow of ``async def fn(ctx, **inputs)``: ``@workflow`` or
    ``@workflow(name="provision-v2")``."""
    if fn is not None:
        return Workflow(fn, name=name)
    return lambda f: Workflow(f, name=name)
