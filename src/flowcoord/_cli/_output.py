"""Terminal output: tables, times, the progress line."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import TextIO

import anyio
import structlog

from .._states import StateChange, TaskState


def _ts(t: float | None, precise: bool = False) -> str:
    """Local time with its offset from UTC: ``2024-05-01 14:03:07+02:00`` (milliseconds
    too when ``precise``)."""
    if not t:
        return "-"
    when = datetime.fromtimestamp(t).astimezone()
    return when.isoformat(sep=" ", timespec="milliseconds" if precise else "seconds")


def _cut(text: str, width: int) -> str:
    """``text`` on one line, at most ``width`` characters (cut with an ellipsis)."""
    text = _one_line(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    return f"{seconds:.2f}s" if seconds < 120 else f"{seconds / 60:.1f}min"


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _Progress:
    """A one-line ``done/total`` display on stderr, fed by the engine's state listener
    (``total`` None: a workflow, whose steps are known as they come)."""

    def __init__(self, out: TextIO, enabled: bool, name: str, total: int | None, done: int) -> None:
        self.out, self.enabled, self.name = out, enabled, name
        self.total, self.done, self.running = total, done, 0
        self.flow_id = ""
        self.state = "PENDING"
        self._start = time.monotonic()
        self._last = 0.0
        self._width = 0

    def __call__(self, change: StateChange) -> None:
        if self.flow_id and change.flow_id != self.flow_id:
            return
        if change.task is None:
            self.state = change.new
        else:
            ok, run = TaskState.SUCCESS.value, TaskState.RUNNING.value
            self.done += (change.new == ok) - (change.old == ok)
            self.running += (change.new == run) - (change.old == run)
        self._draw()

    async def tick(self) -> None:
        """Redraw twice a second, so the elapsed time moves during long tasks."""
        while True:
            await anyio.sleep(0.5)
            self._draw()

    def _draw(self, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self._start < 0.5):
            return  # short runs print nothing
        if not final and now - self._last < 0.1:
            return
        self._last = now
        done = f"{self.done} steps" if self.total is None else f"{self.done}/{self.total} tasks"
        line = (
            f"{self.name}: {done} done, {self.running} running "
            f"[{self.state}] {now - self._start:.1f}s"
        )
        self.out.write("\r" + line.ljust(self._width))
        self._width = len(line)
        self.out.flush()

    def close(self) -> None:
        if self._width:
            self._draw(final=True)
            self.out.write("\n")
            self.out.flush()


def _progress_enabled(mode: str) -> bool:
    if mode == "always":
        return True
    return mode == "auto" and sys.stderr.isatty()


_events = structlog.get_logger("flowcoord.cli")


def log_state_change(change: StateChange) -> None:
    """``-v``: each task's state changes, and the flow's that the engine does not log itself
    (RUNNING, SUCCESS), as log lines on stderr."""
    if change.task is not None:
        _events.info(
            "task_state",
            flow_id=change.flow_id,
            task=change.task,
            old=change.old,
            new=change.new,
        )
    elif change.new in ("RUNNING", "SUCCESS"):
        _events.info("flow_state", flow_id=change.flow_id, old=change.old, new=change.new)
