"""Binding a workflow step's arguments to its function's parameters, fast: a step runs
often, and ``inspect.signature`` costs as much as the rest of a step."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from .._model._task import Task

__all__ = ["bind"]


class _Signature:
    """What binding a step's arguments needs of its function's signature."""

    __slots__ = ("names", "plain", "required", "sig")

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.sig = sig = inspect.signature(fn)
        params = list(sig.parameters.values())
        self.required = tuple(
            p.name
            for p in params
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        )
        # plain: every parameter positional-or-keyword (the common case, bound by hand)
        self.plain = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
        self.names = tuple(p.name for p in params)


# A step runs often, and inspect.signature costs as much as the rest of a step.
_signature = functools.lru_cache(maxsize=1024)(_Signature)


def bind(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], task: Task
) -> dict[str, Any]:
    """The step's arguments by parameter name; what its retry controller provides (ForEach's
    value) is passed per attempt. TypeError as a call would raise it."""
    sig = _signature(fn)
    required = sig.required
    if sig.plain and len(args) <= len(sig.names):
        bound = dict(zip(sig.names, args, strict=False)) if args else {}
        if kwargs:
            for key in kwargs:
                if key in bound or key not in sig.names:
                    sig.sig.bind_partial(*args, **kwargs)  # raises the TypeError Python would
            bound.update(kwargs)
        if len(bound) == len(sig.names):
            return bound  # every parameter given: none missing
    else:
        bound = dict(sig.sig.bind_partial(*args, **kwargs).arguments)
    if not required:
        return bound
    given = task.retry.provides if task.retry is not None else ()
    missing = [n for n in required if n not in bound and n not in given]
    if missing:
        raise TypeError(f"{task.name}() missing required arguments: {missing}")
    return bound
