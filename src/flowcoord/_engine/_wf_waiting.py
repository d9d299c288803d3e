"""Whether a workflow's run is only waiting: each ``ctx.sleep`` and ``ctx.wait_event`` it is
in blocks and no step of it runs. A conductor does not count such a run against its
capacity (see :attr:`FlowHandle.waiting <flowcoord.FlowHandle.waiting>`): a workflow that
sleeps for a day holds its claim (its fail-over) but not a worker's slot. When it only
sleeps (no event wait: an event may come at any time), :attr:`Waiting.until` is when it
wakes by itself, so that a conductor can hand the job back to the board until then."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Waiting"]


class Waiting:
    __slots__ = ("_log", "_wakes", "count", "listeners", "now")

    def __init__(self, log: Callable[[], Any]) -> None:
        self._log = log  # the run's logger, when it is needed
        self.count = 0  # sleeps and event waits blocked now
        self.now = False  # only waiting: count > 0 and no step running
        self.listeners: list[Callable[[bool], None]] = []
        self._wakes: list[float | None] = []  # per blocked wait: its wake time (None: event)

    @property
    def until(self) -> float | None:
        """While only waiting, and only in sleeps: the epoch time the first of them wakes.
        None otherwise (working, or an event wait among the waits)."""
        if not self.now or None in self._wakes:
            return None
        return min(self._wakes)  # type: ignore[type-var]  # no None: checked above

    def update(self, running: int, *, waits_changed: bool = False) -> None:
        """Tell the listeners if the run went from working to only waiting or back, or
        (``waits_changed``) if it only waits still, for other waits (:attr:`until` may
        have changed)."""
        now = self.count > 0 and running == 0
        if now is self.now and not (now and waits_changed):
            return
        self.now = now
        for listener in self.listeners:
            try:
                listener(now)
            except Exception:
                self._log().exception("waiting_listener_failed", listener=repr(listener))

    @contextmanager
    def blocked(self, running: Callable[[], int], until: float | None) -> Iterator[None]:
        """Around what a sleep (``until``: its wake time) or an event wait (``until``
        None) blocks on; ``running``: the steps running now."""
        self.count += 1
        self._wakes.append(until)
        self.update(running(), waits_changed=True)
        try:
            yield
        finally:
            self.count -= 1
            self._wakes.remove(until)
            self.update(running(), waits_changed=True)
