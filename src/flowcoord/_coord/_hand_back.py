"""Handing a sleeping workflow's job back to the board until it wakes.

A workflow that only sleeps (``ctx.sleep``, no ``ctx.wait_event`` pending, no step running)
and wakes more than ``hand_back_after`` seconds from now holds nothing a conductor needs to
keep: its wake-up time is journaled, durably, before it sleeps. The conductor stops the run
(the flow ends SUSPENDED in the journal, nothing else written) and releases the job with
``not_before`` set to the wake-up time (:meth:`JobBoard.release
<flowcoord.coordination.JobBoard.release>`): it holds no claim, no memory and no queue or
partition slot meanwhile, and when it falls due any conductor claims it like a delayed job
(under every limit again) and resumes the flow, which sleeps what is left, if anything.

The decision waits :data:`GRACE` seconds after the run starts waiting, so that sleeps
called together (``ctx.gather``) have all journaled their wake-up times first; the run must
still only sleep then. A crash anywhere in between is a crash like any: the claim dies with
the session and another owner resumes the flow.
"""

from __future__ import annotations

import math
import time

import anyio

from .._engine._handle import FlowHandle
from ..errors import ConfigurationError

__all__ = ["GRACE", "check_hand_back_after", "hand_back_time"]

#: Seconds a run waits before it is handed back (see the module docstring).
GRACE = 0.5


def check_hand_back_after(value: object) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ConfigurationError(
            f"hand_back_after must be None or a finite number of seconds of at least 0, "
            f"got {value!r}",
            hint="None keeps every waiting job's claim here; 60: hand back sleeps of a minute "
            "or more",
        )
    return float(value)


async def hand_back_time(handle: FlowHandle, after: float) -> float | None:
    """After :data:`GRACE` seconds: the wake-up time to hand ``handle``'s job back until, if
    its run still only sleeps and wakes ``after`` seconds from now or later; else None."""
    await anyio.sleep(GRACE)
    until = handle.waiting_until
    if until is None or handle.done or until - time.time() < after:
        return None
    return until
