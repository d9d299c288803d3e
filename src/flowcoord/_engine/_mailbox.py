"""Sending events to flows (``engine.send_event``), and waking the runs that wait for them.

An event goes to the journal's mailbox of the flow (:mod:`flowcoord._journal._sent`), which
is durable when the send returns; a run of this engine that waits for that flow and topic
is woken at once; so is a run of another engine (another process) when its journal tells
it of the send (``JournalBackend.watch_events``: PostgreSQL's LISTEN/NOTIFY, a shared memory
journal), else it finds the event on its next look, within :data:`POLL_INTERVAL`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import anyio

from .._codec import Codec
from .._ids import check_flow_id
from .._journal._contract import JournalBackend
from .._journal._sent import MAX_EVENT_DATA, SentEvent, check_event_key, check_topic
from ..errors import ConfigurationError

__all__ = ["POLL_INTERVAL", "Mailbox"]

#: Seconds between two looks at the mailbox of a waiting run (for events sent by others).
POLL_INTERVAL = 1.0


class Mailbox:
    """What an engine (or a CLI) sends events through."""

    def __init__(self, backend: JournalBackend, codec: Codec) -> None:
        self.backend = backend
        self.codec = codec
        self._sent: dict[tuple[str, str], anyio.Event] = {}
        #: Called once, when a run first waits here (the engine starts watching the journal).
        self.on_first_wait: Callable[[], None] | None = None

    async def send(
        self, flow_id: str, topic: str, value: Any = None, *, key: str | None = None
    ) -> SentEvent:
        """Send ``value`` (anything the codec encodes) to flow ``flow_id`` under ``topic``;
        idempotent under ``key`` (default: a new one, so each call sends once)."""
        check_flow_id(flow_id)
        check_topic(topic)
        key = uuid.uuid4().hex if key is None else check_event_key(key)
        data = self.codec.encode(value, what=f"event {topic!r} for flow {flow_id!r}")
        if len(data) > MAX_EVENT_DATA:
            raise ConfigurationError(
                f"event {topic!r} for flow {flow_id!r} is {len(data)} characters of JSON "
                f"(at most {MAX_EVENT_DATA})",
                hint="send a reference to the data (an id, a URL), not the data",
            )
        event = await self.backend.send_event(flow_id, topic, data, key)
        self.wake(flow_id, topic)
        return event

    def wake(self, flow_id: str, topic: str) -> None:
        event = self._sent.pop((flow_id, topic), None)
        if event is not None:
            event.set()

    def forget(self, flow_id: str, topic: str) -> None:
        """Nobody of this engine waits for ``flow_id``'s ``topic`` any more."""
        self._sent.pop((flow_id, topic), None)

    def sent(self, flow_id: str, topic: str) -> anyio.Event:
        """An event set when this mailbox next sends to ``flow_id`` under ``topic`` (or
        the journal tells of a send there)."""
        start, self.on_first_wait = self.on_first_wait, None
        if start is not None:
            start()
        got = self._sent.get((flow_id, topic))
        if got is None:
            got = self._sent[(flow_id, topic)] = anyio.Event()
        return got
