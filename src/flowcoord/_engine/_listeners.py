"""An engine's state listeners, by what each asked to be told (see :meth:`Engine.add_listener
<flowcoord.Engine.add_listener>`), and how a run tells them.

A run tells its listeners of every flow change, of every task or step attempt's end (with
the attempt, when its body started and how long it ran) and of reverts. Task starts and fast
successes are the engine's hot path — two changes per no-op task — so a listener that needs
neither (a tracer that makes its spans at the end, a metrics histogram) says so and costs
nothing for them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .._states import StateChange, StateListener
from ..errors import ConfigurationError


class Listeners:
    """The lists are shared with the runs, so a listener added later is told from then on."""

    __slots__ = ("every", "least", "starts", "successes")

    def __init__(self, listeners: Iterable[StateListener] = ()) -> None:
        self.every: list[StateListener] = []  # all of them: flow changes, failures, reverts
        self.starts: list[StateListener] = []  # those told of task and step starts
        self.successes: list[tuple[float, StateListener]] = []  # (min_elapsed, listener)
        self.least = math.inf  # the least min_elapsed: a success faster is told to no one
        for listener in listeners:
            self.add(listener)

    def add(
        self, listener: StateListener, *, starts: bool = True, min_elapsed: float = 0.0
    ) -> None:
        if not callable(listener):
            raise ConfigurationError(f"a state listener must be callable, got {listener!r}")
        if not (isinstance(min_elapsed, int | float) and math.isfinite(min_elapsed)) or (
            min_elapsed < 0
        ):
            raise ConfigurationError(
                f"min_elapsed must be a finite number of seconds >= 0, got {min_elapsed!r}"
            )
        if min_elapsed and starts:
            raise ConfigurationError(
                "min_elapsed needs starts=False: a listener told of a start would not be told"
                " of its end"
            )
        self.every.append(listener)
        if starts:
            self.starts.append(listener)
        self.successes.append((float(min_elapsed), listener))
        self.least = min(self.least, float(min_elapsed))


def tell(log: Any, listeners: Iterable[StateListener], change: StateChange) -> None:
    """Call each listener with ``change``; one that raises is logged, not propagated."""
    for listener in listeners:
        try:
            listener(change)
        except Exception:
            log.exception("listener_failed", listener=repr(listener))


def tell_success(
    log: Any,
    successes: list[tuple[float, StateListener]],
    change: StateChange,
    always: bool = False,
) -> None:
    """Tell ``change`` (an attempt's success) to the listeners that want it: those whose
    ``min_elapsed`` it reached, and all of them when ``always`` (a child flow's step, whose
    child they were told of) or when the body's time is unknown."""
    elapsed = change.elapsed
    for least, listener in successes:
        if least and not always and elapsed is not None and elapsed < least:
            continue
        try:
            listener(change)
        except Exception:
            log.exception("listener_failed", listener=repr(listener))


def bound_log(run: Any, log: Any) -> Any:
    """``log`` bound to ``run``'s flow (``flow_id``, ``name``), on first use and kept in its
    ``__dict__``: binding costs more than a no-op task, and a run that goes well logs
    nothing (what a run's ``_log`` property returns)."""
    bound = run.__dict__.get("_bound_log")
    if bound is None:
        bound = run.__dict__["_bound_log"] = log.bind(flow_id=run.flow_id, flow=run.name)
    return bound
