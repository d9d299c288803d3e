"""Events sent to a flow (its mailbox): what every journal keeps beside the flow's entries.

An event is sent by anyone (an operator, another service: ``engine.send_event``,
``flowcoord flows send-event``, ``POST /api/flows/{id}/events/{topic}``) to a flow that
exists, under a ``topic``; within a flow and topic the events are numbered 1, 2, … in the
order they were sent. A ``key`` makes a send idempotent: sending under a key taken in that
flow and topic returns the event it names, with nothing written. A workflow takes them in
order with ``ctx.wait_event(topic)``, and journals which one it took (so a resumed run takes
the same one, and the next wait the next one).

The mailbox is not fenced (a sender owns nothing); what a workflow took is in its journal,
written by its owner like every other step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigurationError

__all__ = ["MAX_EVENT_DATA", "TOPIC_RULE", "SentEvent", "check_event_key", "check_topic"]

TOPIC_RULE = "1-128 letters, digits and '_', '-', '.', ':', '/' (starting with a letter or digit)"
_TOPIC = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}")
_MAX_KEY = 256
#: The largest event (its JSON), in characters: an event is a signal, not a payload store.
MAX_EVENT_DATA = 256 * 1024


@dataclass(frozen=True, slots=True)
class SentEvent:
    """One event in a flow's mailbox: ``seq`` counts from 1 within its flow and topic;
    ``data`` is the value's JSON (the codec's); ``key`` its idempotency key."""

    flow_id: str
    topic: str
    seq: int
    data: str
    key: str
    sent_at: float


def check_topic(topic: object) -> str:
    if not isinstance(topic, str) or _TOPIC.fullmatch(topic) is None:
        raise ConfigurationError(
            f"invalid event topic {topic!r:.80}", hint=f"an event topic is {TOPIC_RULE}"
        )
    return topic


def check_event_key(key: object) -> str:
    if not isinstance(key, str) or not key or len(key) > _MAX_KEY:
        raise ConfigurationError(
            f"invalid event key {key!r:.80}", hint=f"an event key is a string of 1-{_MAX_KEY} chars"
        )
    return key
