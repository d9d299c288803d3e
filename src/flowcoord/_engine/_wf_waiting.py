"""Whether a workflow's run is only waiting: each ``ctx.sleep`` and ``ctx.wait_event`` it is
in blocks and no step of it runs. A conductor does not count such a run against its
capacity (see :attr:`FlowHandle.waiting <flowcoord.FlowHandle.waiting>`): a workflow that
sleeps for a day holds its claim (its fail-over) but not a worker's slot."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Waiting"]


class Waiting:
    __slots__ = ("_log", "count", "listeners", "now")

    def __init__(self, log: Any) -> None:
        self._log = log
        self.count = 0  # sleeps and event waits blocked now
        self.now = False  # only waiting: count > 0 and no step running
        self.listeners: list[Callable[[bool], None]] = []

    def update(self, running: int) -> None:
        """Tell the listeners if the run went from working to only waiting or back."""
        now = self.count > 0 and running == 0
        if now is self.now:
            return
        self.now = now
        for listener in self.listeners:
            try:
                listener(now)
            except Exception:
                self._log.exception("waiting_listener_failed", listener=repr(listener))

    @contextmanager
    def blocked(self, running: Callable[[], int]) -> Iterator[None]:
        """Around what a sleep or a wait blocks on (``running``: the steps running now)."""
        self.count += 1
        self.update(running())
        try:
            yield
        finally:
            self.count -= 1
            self.update(running())
