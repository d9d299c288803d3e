"""Wakes for events sent to a SQLite journal by any process (``watch_events``).

SQLite cannot notify, but ``PRAGMA data_version`` tells a connection, at the cost of a
look at the file's header, whether another connection committed since it last asked. The
watcher asks every :data:`INTERVAL` seconds on a connection of its own (in a worker thread:
it never blocks the event loop) and, only when something was committed, reads the sends
made since the newest it saw through the ``sent_at`` index: a waiting run is woken within
about :data:`INTERVAL` of a send from another process, and an idle journal costs one
pragma per interval. A wake is a hint, as on PostgreSQL: a send whose clock went back is
found by the run's own look at its mailbox.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.to_thread
import structlog

__all__ = ["INTERVAL", "SendWatcher"]

log = structlog.get_logger("flowcoord.journal")

#: Seconds between two looks at the file's data version.
INTERVAL = 0.05
_SINCE = "SELECT flow_id, topic, seq, sent_at FROM sent_events WHERE sent_at >= ? ORDER BY sent_at"
_Send = tuple[str, str, int]
_T = TypeVar("_T")
#: Seconds to wait after a failed look (the file gone, locked, without a mailbox yet).
_BACKOFF = 1.0


class SendWatcher:
    """Calls ``wake(flow_id, topic)`` for each send it sees (see the module docstring)."""

    def __init__(self, path: Path, wake: Callable[[str, str], None], busy_timeout: float) -> None:
        self.path = path
        self.wake = wake
        self.busy_timeout = busy_timeout
        self.looks = 0  # data version checks so far (the tests read it)
        self._limiter = anyio.CapacityLimiter(1)
        self._since = time.time()  # sends at or after this are new ...
        self._seen: set[_Send] = set()  # ... but these, sent at exactly _since

    async def run(self) -> None:
        conn: sqlite3.Connection | None = None
        version: int | None = None
        try:
            while True:
                try:
                    if conn is None:
                        conn = await self._thread(self._connect)
                        version = None
                    version, sends = await self._thread(self._look, conn, version)
                except sqlite3.Error as exc:
                    log.debug("event_watch_failed", path=str(self.path), error=str(exc))
                    if conn is not None:
                        await self._thread(conn.close)
                        conn = None
                    await anyio.sleep(_BACKOFF)
                    continue
                for flow_id, topic in sends:
                    self.wake(flow_id, topic)
                await anyio.sleep(INTERVAL)
        finally:
            if conn is not None:
                with anyio.CancelScope(shield=True), contextlib.suppress(sqlite3.Error):
                    await self._thread(conn.close)

    async def _thread(self, fn: Callable[..., _T], *args: object) -> _T:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        return conn

    def _look(
        self, conn: sqlite3.Connection, version: int | None
    ) -> tuple[int, list[tuple[str, str]]]:
        """The file's data version now, and the sends since the newest seen (none when
        nothing was committed since ``version``)."""
        self.looks += 1
        now: int = conn.execute("PRAGMA data_version").fetchone()[0]
        if now == version:
            return now, []
        out: list[tuple[str, str]] = []
        for flow_id, topic, seq, sent_at in conn.execute(_SINCE, (self._since,)):
            send = (flow_id, topic, seq)
            if sent_at == self._since and send in self._seen:
                continue
            if sent_at > self._since:
                self._since, self._seen = sent_at, set()
            self._seen.add(send)
            out.append((flow_id, topic))
        return now, out
