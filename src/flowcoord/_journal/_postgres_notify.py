"""Events sent to flows, as they are sent: PostgreSQL's LISTEN/NOTIFY under the mailbox.

``send_event`` notifies channel :data:`CHANNEL` in its own transaction (so the notice goes
out when the event is committed, never for one rolled back), with the journal's schema, the
flow id and the topic as a JSON array. :class:`EventWatcher` keeps one connection that
listens, and calls ``wake(flow_id, topic)`` for each notice of its schema. It is a hint:
while its connection is down (it reconnects with backoff, and pings an idle connection so a
silently dead one is noticed) notices are lost, and waiting runs find those events on their
next look at the mailbox.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import anyio
import asyncpg
import structlog

__all__ = ["CHANNEL", "EventWatcher", "notice"]

log = structlog.get_logger("flowcoord.journal")

#: The channel every flowcoord journal notifies (the schema is in the payload).
CHANNEL = "flowcoord_events"
#: Seconds an idle listening connection waits before it is pinged.
PING_EVERY = 30.0
_MAX_BACKOFF = 5.0


def notice(schema: str, flow_id: str, topic: str) -> str:
    """The payload ``send_event`` notifies with."""
    return json.dumps([schema, flow_id, topic], separators=(",", ":"))


class EventWatcher:
    """Listens on :data:`CHANNEL` for one schema's sends; :meth:`run` until cancelled."""

    def __init__(
        self, dsn: str, schema: str, wake: Callable[[str, str], None], *, timeout: float
    ) -> None:
        self._dsn = dsn
        self._schema = schema
        self._wake = wake
        self._timeout = timeout
        #: How many times a connection started listening (1 + reconnections).
        self.listening = 0

    def _notified(self, conn: object, pid: int, channel: str, payload: object) -> None:
        try:
            schema, flow_id, topic = json.loads(str(payload))
        except (ValueError, TypeError):
            return  # not one of ours: nothing to wake
        if schema == self._schema and isinstance(flow_id, str) and isinstance(topic, str):
            self._wake(flow_id, topic)

    async def run(self) -> None:
        delay = 0.1
        while True:
            try:
                await self._listen()
                delay = 0.1  # it listened, then lost its connection: try again soon
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning(
                    "event_watch_failed", schema=self._schema, error=str(exc), retry_in=delay
                )
            await anyio.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF)

    async def _listen(self) -> None:
        """Listen on one connection until it is lost."""
        lost = anyio.Event()
        with anyio.fail_after(self._timeout + 1):
            conn = await asyncpg.connect(
                self._dsn,
                timeout=self._timeout,
                server_settings={"application_name": "flowcoord-events"},
            )
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            with anyio.fail_after(self._timeout):
                await conn.add_listener(CHANNEL, self._notified)
            self.listening += 1
            while not lost.is_set():
                with anyio.move_on_after(PING_EVERY):
                    await lost.wait()
                if not lost.is_set():  # idle: is the other end still there?
                    with anyio.fail_after(self._timeout):
                        await conn.execute("SELECT 1")
            log.info("event_watch_lost", schema=self._schema)
        finally:
            conn.terminate()
