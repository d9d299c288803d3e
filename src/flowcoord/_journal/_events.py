"""Journal records: one append-only entry per thing that happened to a flow."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "SUMMED_UP",
    "Entry",
    "EventKind",
    "FlowRecord",
    "resume_entries",
    "summed_below",
]


class EventKind(StrEnum):
    """What an entry records. The values are stored; never rename one."""

    FLOW_CREATED = "flow.created"  # data: {"name", "inputs", "tasks"}
    FLOW_STATE = "flow.state"  # state: the new FlowState value; data: {"reason"?}
    STORE = "store"  # data: {"values": {...}} names added to the flow's store
    TASK_STARTED = "task.started"  # task; data: {"attempt"}
    TASK_SUCCEEDED = "task.succeeded"  # task; data: {"result", "attempt"}
    TASK_FAILED = "task.failed"  # task; data: {"failure", "attempt"}
    REVERT_STARTED = "revert.started"  # task
    REVERT_DONE = "revert.done"  # task
    REVERT_FAILED = "revert.failed"  # task; data: {"failure"}
    RETRY = (
        "retry.decision"  # task: the retry scope; data: {"decision", "attempt", "reset", "value"?}
    )
    # data: {"from", "tasks", "attempts", "results"}: tasks that succeeded since the previous
    # checkpoint, with their attempts and results. Every task.started / task.succeeded entry
    # below seq "from" is summed up by the checkpoints, so resuming need not read them.
    CHECKPOINT = "flow.checkpoint"


#: The kinds of entry that checkpoints sum up (every other kind is always read on resume).
SUMMED_UP = frozenset({EventKind.TASK_STARTED, EventKind.TASK_SUCCEEDED})


# Not frozen: a frozen dataclass's __init__ costs ~4x more, and two entries are made per task.
# Treat entries as immutable all the same (they are hashable by value).
@dataclass(slots=True, unsafe_hash=True)
class Entry:
    """One journal entry.

    ``(flow_id, seq)`` is the entry's idempotency key: appending the same key twice stores it
    once. ``token`` is the writer's fencing token; a backend refuses an entry whose token is
    older than the flow's current token. ``data`` is JSON text produced by the codec.
    """

    flow_id: str
    seq: int
    kind: EventKind
    task: str | None = None
    data: str = "{}"
    state: str | None = None
    token: int = 0
    at: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class FlowRecord:
    """A flow's summary row, kept by the backend beside its entries."""

    flow_id: str
    name: str
    state: str
    token: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0


def summed_below(newest_first: Iterable[tuple[str, str]]) -> int:
    """The ``from`` of the newest checkpoint among ``(kind, data)`` rows given newest first
    (0 when there is none): the task.started / task.succeeded entries below it are summed
    up by the flow's checkpoints."""
    for kind, data in newest_first:
        if kind == EventKind.CHECKPOINT:
            head, _, _ = data.partition(",")  # "from" is written first: no full parse
            if head.startswith('{"from":') and head[8:].isdigit():
                return int(head[8:])
            try:
                return int(json.loads(data)["from"])
            except (ValueError, KeyError, TypeError):
                return 0  # unreadable: read everything, and replay reports the entry

    return 0


def resume_entries(entries: Sequence[Entry]) -> list[Entry]:
    """What resuming needs of a flow's ``entries`` (ordered by seq): all of them but the
    started/succeeded entries that the newest checkpoint says are summed up."""
    start = summed_below((e.kind, e.data) for e in reversed(entries))
    if not start:
        return list(entries)
    return [e for e in entries if e.seq >= start or e.kind not in SUMMED_UP]
