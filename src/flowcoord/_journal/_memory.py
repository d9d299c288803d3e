"""The in-memory journal backend: a real backend (the contract suite runs on it), kept in dicts."""

from __future__ import annotations

import bisect
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from .._states import is_finished
from ..errors import FlowNotFound, OwnershipLost
from ._contract import FlowPage, JournalBackend, Listing
from ._events import Entry, EventKind, FlowRecord
from ._sent import SentEvent

__all__ = ["MemoryJournal"]

_NONE: frozenset[str] = frozenset()
_STATE = EventKind.FLOW_STATE


def _seq(e: Entry) -> int:
    return e.seq


class _Flow:
    __slots__ = (
        "created_at",
        "entries",
        "flow_id",
        "last_seq",
        "name",
        "state",
        "token",
        "updated_at",
    )

    def __init__(self, record: FlowRecord, now: float) -> None:
        self.flow_id = record.flow_id
        self.name = record.name
        self.state = record.state
        self.token = record.token
        self.created_at = record.created_at or now
        self.updated_at = now
        self.entries: list[Entry] = []
        self.last_seq = -1

    def record(self) -> FlowRecord:
        return FlowRecord(
            self.flow_id, self.name, self.state, self.token, self.created_at, self.updated_at
        )


class MemoryJournal(JournalBackend):
    """Keeps everything in this process. Lost when the process ends."""

    immediate = True

    def __init__(self) -> None:
        self._flows: dict[str, _Flow] = {}
        self._newest: list[tuple[float, str]] = []  # (created_at, flow_id), ascending
        self._sent: dict[tuple[str, str], list[SentEvent]] = {}  # (flow, topic) -> events
        self._sent_keys: dict[tuple[str, str, str], SentEvent] = {}
        self._watchers: list[Callable[[str, str], None]] = []  # watch_events

    async def create_flow(self, record: FlowRecord, entries: Sequence[Entry]) -> bool:
        if record.flow_id in self._flows:
            return False
        flow = _Flow(record, time.time())
        self._flows[record.flow_id] = flow
        key = (flow.created_at, flow.flow_id)
        if not self._newest or key > self._newest[-1]:
            self._newest.append(key)  # the common case: created after every other flow
        else:
            bisect.insort(self._newest, key)
        self._write(flow, entries)
        return True

    async def append(self, entries: Sequence[Entry]) -> frozenset[str]:
        return self.append_now(entries)

    def append_now(self, entries: Sequence[Entry]) -> frozenset[str]:
        """Synchronous append (the memory backend never waits)."""
        if len(entries) == 1:
            e = entries[0]
            flow = self._flows.get(e.flow_id)
            if flow is None or e.token < flow.token:
                return frozenset((e.flow_id,))
            self._write(flow, entries)
            return _NONE
        by_flow: dict[str, list[Entry]] = {}
        for e in entries:
            by_flow.setdefault(e.flow_id, []).append(e)
        refused: set[str] = set()
        for flow_id, batch in by_flow.items():
            flow = self._flows.get(flow_id)
            if flow is None or any(e.token < flow.token for e in batch):
                refused.add(flow_id)
                continue
            self._write(flow, batch)
        return frozenset(refused)

    def _write(self, flow: _Flow, batch: Sequence[Entry]) -> None:
        entries = flow.entries
        for e in batch:
            seq = e.seq
            if seq > flow.last_seq:
                flow.last_seq = seq
                entries.append(e)
            else:  # out of order or a repeat: idempotent by seq, entries stay sorted
                k = bisect.bisect_left(entries, seq, key=_seq)
                if k < len(entries) and entries[k].seq == seq:
                    continue
                entries.insert(k, e)
            if e.kind is _STATE and e.state is not None:
                flow.state = e.state
            if e.at > flow.updated_at:
                flow.updated_at = e.at

    async def fence(self, flow_id: str, token: int) -> int:
        flow = self._flows.get(flow_id)
        if flow is None:
            raise FlowNotFound(f"no flow {flow_id!r} in the journal", flow_id=flow_id)
        current = flow.token
        if current > token:
            raise OwnershipLost(
                f"flow {flow_id!r} is owned with a newer token ({current} > {token})",
                flow_id=flow_id,
            )
        flow.token = token
        return current

    async def read(self, flow_id: str, *, after_seq: int = -1) -> list[Entry]:
        flow = self._flows.get(flow_id)
        if flow is None:
            return []
        return [e for e in flow.entries if e.seq > after_seq]

    async def send_event(self, flow_id: str, topic: str, data: str, key: str) -> SentEvent:
        if flow_id not in self._flows:
            raise FlowNotFound(f"no flow {flow_id!r} in the journal", flow_id=flow_id)
        found = self._sent_keys.get((flow_id, topic, key))
        if found is not None:
            return found
        events = self._sent.setdefault((flow_id, topic), [])
        event = SentEvent(flow_id, topic, len(events) + 1, data, key, time.time())
        events.append(event)
        self._sent_keys[(flow_id, topic, key)] = event
        for wake in list(self._watchers):  # every engine on this journal (this process)
            wake(flow_id, topic)
        return event

    @asynccontextmanager
    async def watch_events(self, wake: Callable[[str, str], None]) -> AsyncIterator[None]:
        self._watchers.append(wake)
        try:
            yield
        finally:
            self._watchers.remove(wake)

    async def sent_events(
        self, flow_id: str, topic: str, *, after: int = 0, limit: int = 1
    ) -> list[SentEvent]:
        events = self._sent.get((flow_id, topic), [])
        return events[max(after, 0) : max(after, 0) + max(limit, 0)]

    async def delete_flows(self, flow_ids: Sequence[str], *, ended_before: float) -> list[str]:
        deleted = []
        for flow_id in dict.fromkeys(flow_ids):
            flow = self._flows.get(flow_id)
            if flow is None or not is_finished(flow.state) or flow.updated_at >= ended_before:
                continue
            del self._flows[flow_id]
            key = (flow.created_at, flow_id)
            at = bisect.bisect_left(self._newest, key)
            if at < len(self._newest) and self._newest[at] == key:
                del self._newest[at]
            for sent in [k for k in self._sent if k[0] == flow_id]:
                del self._sent[sent]
            for taken in [k for k in self._sent_keys if k[0] == flow_id]:
                del self._sent_keys[taken]
            deleted.append(flow_id)
        return deleted

    async def get_flow(self, flow_id: str) -> FlowRecord | None:
        flow = self._flows.get(flow_id)
        return flow.record() if flow else None

    async def list_flows(
        self, *, state: str | None = None, limit: int = 100, after: str | None = None
    ) -> list[FlowRecord]:
        out = []
        for fid in sorted(self._flows):
            if after is not None and fid <= after:
                continue
            rec = self._flows[fid].record()
            if state is not None and rec.state != state:
                continue
            out.append(rec)
            if len(out) >= limit:
                break
        return out

    async def newest_page(self, listing: Listing) -> FlowPage:
        order = self._newest
        end = len(order) if listing.after is None else bisect.bisect_left(order, listing.after)
        if listing.until is not None:
            end = min(end, bisect.bisect_left(order, (listing.until, "")))
        kept: list[FlowRecord] = []
        for k in range(end - 1, -1, -1):
            created_at, flow_id = order[k]
            if listing.since is not None and created_at < listing.since:
                break
            rec = self._flows[flow_id].record()
            if listing.keeps(rec):
                kept.append(rec)
                if len(kept) > listing.limit:
                    break
        return listing.page(kept)
