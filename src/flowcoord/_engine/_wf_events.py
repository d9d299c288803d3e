"""``await ctx.wait_event(topic)``: the next event sent to this flow under ``topic``,
journaled (which one, and its value) so that a resumed run takes the same one again and the
run's next wait for that topic the one after it.

The wait obeys the run's handle like a durable sleep: suspended, it waits for ``resume``;
stopped, the run ends SUSPENDED at once; cancelled, it compensates. ``timeout`` (seconds):
None is returned if no event came by then (journaled too); the time a crashed run waited
does not count for its resumed run (a crash changes only the time a flow takes).
"""

from __future__ import annotations

import math
import time
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

import anyio

from .._journal._sent import check_topic
from ..errors import ConfigurationError, JournalError, WorkflowContextError
from ._mailbox import POLL_INTERVAL, Mailbox
from ._wf_sleep import check_seconds

if TYPE_CHECKING:
    from ._workflow import WorkflowRun

__all__ = ["check_timeout", "check_wait", "wait_event"]

# per run and topic: one wait at a time takes an event (concurrent waits take one each)
_LOCKS: WeakKeyDictionary[WorkflowRun, dict[str, anyio.Lock]] = WeakKeyDictionary()


def check_wait(topic: object, flow: str) -> str:
    """``topic`` if it is a valid event topic (else a WorkflowContextError: the run ends,
    nothing written, the flow stays for the fixed code)."""
    try:
        return check_topic(topic)
    except ConfigurationError as exc:
        raise WorkflowContextError(exc.message, flow=flow, hint=exc.hint) from None


def check_timeout(timeout: object, flow: str) -> float | None:
    if timeout is None:
        return None
    return check_seconds(timeout, flow, "ctx.wait_event's timeout is None or")


def _taken(run: WorkflowRun, name: str) -> int:
    """The number of the last event of this topic the run took (0: none)."""
    taken = 0
    for rec in run.journal.steps.values():
        if rec.name == name and rec.succeeded and isinstance(rec.result, dict):
            taken = max(taken, int(rec.result.get("event") or 0))
    return taken


async def wait_event(
    run: WorkflowRun,
    pos: int,
    topic: str,
    timeout: float | None,  # noqa: ASYNC109 - a journaled outcome (None)
) -> Any:
    from ._wf_steps import ReplayEnd

    name = f"event:{topic}"
    rec = run._journaled(pos, name)
    if rec is not None and rec.succeeded:
        return rec.result.get("value") if isinstance(rec.result, dict) else None
    if run._replay_only:
        raise ReplayEnd
    if run.engine is None:
        raise WorkflowContextError(
            f"ctx.wait_event({topic!r}) needs an engine to wait on", flow=run.name
        )
    mailbox = run.engine.mailbox
    deadline = None if timeout is None else time.monotonic() + timeout
    lock = _LOCKS.setdefault(run, {}).setdefault(topic, anyio.Lock())
    async with lock:
        try:
            result = await _take(run, mailbox, topic, name, deadline)
        finally:
            mailbox.forget(run.flow_id, topic)  # (one run per flow: nobody else waits here)
        await run.write_value(pos, name, result)
    return result["value"]


async def _take(
    run: WorkflowRun, mailbox: Mailbox, topic: str, name: str, deadline: float | None
) -> dict[str, Any]:
    """The next event of ``topic`` this run has not taken, as ``{"event": its number,
    "value": ...}``, waiting for it; ``{"event": None, "value": None}`` past ``deadline``."""
    waiting = False
    with ExitStack() as blocked:  # only waiting from the first look that found nothing
        while True:
            await run._gate()  # suspended: wait for resume; stopped: the run ends here
            sent = mailbox.sent(run.flow_id, topic)  # before the look: no send is missed
            try:
                after = _taken(run, name)
                found = await mailbox.backend.sent_events(run.flow_id, topic, after=after)
            except JournalError as exc:
                run._broken = run._broken or exc  # the run ends with it, whatever the code does
                raise
            if found:
                return {"event": found[0].seq, "value": run.writer.codec.decode(found[0].data)}
            left = math.inf if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return {"event": None, "value": None}
            if not waiting:
                blocked.enter_context(run.blocked())
                waiting = True
            with anyio.move_on_after(min(POLL_INTERVAL, left)):
                await _either(sent, run._resumed)


async def _either(a: anyio.Event, b: anyio.Event) -> None:
    async with anyio.create_task_group() as tg:

        async def wait(e: anyio.Event) -> None:
            await e.wait()
            tg.cancel_scope.cancel()

        tg.start_soon(wait, a)
        tg.start_soon(wait, b)
