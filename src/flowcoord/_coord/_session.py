"""The states of a coordination session and their changes, shared by every coordination
backend (the ZooKeeper session and the in-memory twin): no I/O, no backend types."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

__all__ = ["SessionChange", "SessionListener", "SessionState"]


class SessionState(enum.Enum):
    """Where a coordination session stands, as flowcoord's own supervision sees it.

    - CONNECTED: in confirmed contact with a server; claims made in this session hold.
    - SUSPENDED: contact interrupted; claims may still hold, but start no new work.
    - LOST: the session expired, or has been out of contact long enough (2/3 of the session
      timeout) to be presumed expired. Every ephemeral node it made is gone or going;
      ``generation`` has moved on. A later CONNECTED is a brand-new session.
    - CLOSED: the session was closed by its owner (or failed for good); nothing works any more.
    """

    CONNECTED = "connected"
    SUSPENDED = "suspended"
    LOST = "lost"
    CLOSED = "closed"


@dataclass(frozen=True)
class SessionChange:
    """One transition, as delivered to subscribers and listeners, in order."""

    state: SessionState
    previous: SessionState
    generation: int
    """Number of LOST transitions so far; claims are valid only within one generation."""
    session_id: int
    """ZooKeeper session id after the transition (0 when there is none)."""
    at: float
    """Event-loop clock (``anyio.current_time()``) when it happened."""
    reason: str = ""


class SessionListener(Protocol):
    """A synchronous callback run on every transition, inside the event loop. Keep it short."""

    def __call__(self, change: SessionChange, /) -> None: ...
