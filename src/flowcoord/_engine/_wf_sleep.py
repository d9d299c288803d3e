"""Durable sleep (``await ctx.sleep(seconds)``): the time to wake at is journaled, durably,
when the sleep is first reached; a run resumed later (after a crash, a stop, on another
machine) sleeps only what is left of it, and not at all once it has passed.

While it sleeps the run obeys its handle: suspended, it waits for ``resume`` (the time keeps
running); stopped, it ends as SUSPENDED at once (resumed, it sleeps what is left); cancelled,
it compensates. A sleeping run holds its flow (and, under a conductor, its job's claim, but
not a slot of the conductor's capacity: see :mod:`._wf_waiting`).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import anyio

from ..errors import WorkflowContextError

if TYPE_CHECKING:
    from ._workflow import WorkflowRun

__all__ = ["check_seconds", "sleep"]

NAME = "sleep"


def check_seconds(
    seconds: object, flow: str, what: str = "ctx.sleep takes", hint: str | None = None
) -> float:
    """``seconds`` as a float, if it is a finite number of at least 0."""
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or seconds < 0
    ):
        raise WorkflowContextError(
            f"{what} a finite number of seconds of at least 0, got {seconds!r}",
            flow=flow,
            hint=hint,
        )
    return float(seconds)


async def sleep(run: WorkflowRun, pos: int, seconds: float) -> None:
    """Sleep until the journaled wake-up time of position ``pos`` (journaled now, durably,
    as ``now + seconds`` if it is not journaled yet)."""
    from ._wf_steps import ReplayEnd

    rec = run._journaled(pos, NAME)
    if rec is not None and rec.succeeded:
        wake = float(rec.result)
    else:
        if run._replay_only:
            raise ReplayEnd
        wake = time.time() + seconds
        await run.write_value(pos, NAME, wake)  # durable before the sleep: a crash in it
        # must not start it over
    if wake - time.time() <= 0:
        await run._gate()
        return
    with run.blocked(wake):  # the run may be only waiting: see _wf_waiting
        while True:
            await run._gate()  # suspended: wait for resume; stopped: the run ends here
            left = wake - time.time()
            if left <= 0:
                return
            with anyio.move_on_after(left):
                await run._resumed.wait()  # woken early by suspend, stop or resume
