"""What a caller holds of a flow: its handle while it runs, its outcome once it ended."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from .._states import FlowState
from ..errors import FlowCancelled
from ._runner import FlowRun
from ._workflow import WorkflowRun

__all__ = ["FlowHandle", "FlowOutcome"]


@dataclass(frozen=True, slots=True)
class FlowOutcome:
    """A finished flow: its id, final state and store (inputs plus every provided name; a
    workflow's: its inputs and ``"result"``), and ``result``, what a workflow returned."""

    flow_id: str
    name: str
    state: FlowState
    store: Mapping[str, Any] = field(default_factory=dict)
    result: Any = None

    def __getitem__(self, name: str) -> Any:
        return self.store[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.store.get(name, default)


class FlowHandle:
    """A flow running on an engine: watch it, cancel, suspend, resume or stop it."""

    def __init__(self, run: FlowRun | WorkflowRun) -> None:
        self._run = run
        self.flow_id = run.flow_id
        self.name = run.name
        self._done: anyio.Event | None = None  # made by the first wait()
        self._finished = False
        self._outcome: FlowOutcome | None = None
        self._error: BaseException | None = None

    @property
    def state(self) -> FlowState:
        return self._run.state

    @property
    def done(self) -> bool:
        return self._finished

    @property
    def waiting(self) -> bool:
        """True while the flow only waits: a workflow whose ``ctx.sleep`` or
        ``ctx.wait_event`` calls all block while no step of it runs (a pattern flow never
        is). A conductor does not count a waiting job against its capacity."""
        waits = getattr(self._run, "waits", None)
        return waits is not None and waits.now

    @property
    def waiting_until(self) -> float | None:
        """While the flow only waits and every wait is a ``ctx.sleep`` (no
        ``ctx.wait_event``: an event may come at any time): the epoch time it wakes by
        itself. None otherwise. A conductor hands such a job back to the board until then
        (see ``Conductor(hand_back_after=...)``)."""
        waits = getattr(self._run, "waits", None)
        return None if waits is None else waits.until

    def on_waiting(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(waiting)`` each time :attr:`waiting` changes, and with True
        again when the flow still only waits but for other waits (:attr:`waiting_until`
        may have changed); never for a pattern flow. One that raises is logged."""
        waits = getattr(self._run, "waits", None)
        if waits is not None:
            waits.listeners.append(callback)

    def cancel(self) -> None:
        """Cancel running tasks, revert what was done; the run raises FlowCancelled."""
        self._run.cancel()

    def suspend(self) -> None:
        """Start no new task; running ones finish. The flow waits in SUSPENDED for resume()."""
        self._run.suspend()

    def resume(self) -> None:
        self._run.resume()

    def abort(self, reason: str = "ownership lost") -> None:
        """Ownership of the flow is gone: cancel its running tasks and write nothing more.
        The run raises :class:`~flowcoord.OwnershipLost`; the flow's new owner carries on."""
        self._run.abort(reason)

    def stop(self) -> None:
        """Start no new task, let running ones finish, then end without reverting (the flow
        stays SUSPENDED in the journal and can be resumed by any engine)."""
        self._run.stop()

    async def wait(self) -> FlowOutcome:
        """Wait for the end; return the outcome or raise the flow's error.

        A flow whose run was cancelled from outside (the engine shut down by an error raised
        in its ``async with Engine`` block, or the task running it cancelled) raises
        :class:`~flowcoord.FlowCancelled`: it stays unfinished in the journal and can be
        resumed from there.
        """
        if not self._finished:
            if self._done is None:
                self._done = anyio.Event()
            await self._done.wait()
        if self._error is not None:
            raise self._error
        if self._outcome is None:  # not reached: _finish() gives one or the other
            raise self._cut_short(None)
        return self._outcome

    def _cut_short(self, cause: BaseException | None) -> FlowCancelled:
        how = f" ({type(cause).__name__})" if cause is not None else ""
        return FlowCancelled(
            f"flow {self.flow_id} ({self.name!r}) did not finish: its run was cancelled from "
            f"outside the flow{how}, e.g. the engine shut down because an error was raised in "
            "its 'async with Engine' block",
            flow_id=self.flow_id,
            hint="it stays unfinished in the journal and can be resumed from there: "
            f"engine.resume(flow, {self.flow_id!r})",
        )

    def _finish(self, outcome: FlowOutcome | None, error: BaseException | None) -> None:
        if outcome is None and not isinstance(error, Exception):
            # Cancelled (or KeyboardInterrupt...): the engine's doing, not the flow's. Waiters
            # get a typed error, never the cancellation (it belongs to the engine's task).
            error = self._cut_short(error)
        self._outcome, self._error = outcome, error
        self._finished = True
        if self._done is not None:
            self._done.set()
