"""The in-memory journal backend: a real backend (the contract suite runs on it), kept in dicts."""

from __future__ import annotations

import time
from collections.abc import Sequence

from ..errors import FlowNotFound, OwnershipLost
from ._contract import JournalBackend
from ._events import Entry, EventKind, FlowRecord

__all__ = ["MemoryJournal"]


class _Flow:
    __slots__ = ("entries", "record", "seqs")

    def __init__(self, record: FlowRecord) -> None:
        self.record = record
        self.entries: list[Entry] = []
        self.seqs: set[int] = set()


class MemoryJournal(JournalBackend):
    """Keeps everything in this process. Lost when the process ends."""

    immediate = True

    def __init__(self) -> None:
        self._flows: dict[str, _Flow] = {}

    async def create_flow(self, record: FlowRecord, entries: Sequence[Entry]) -> bool:
        if record.flow_id in self._flows:
            return False
        now = time.time()
        flow = _Flow(_replace(record, created_at=record.created_at or now, updated_at=now))
        self._flows[record.flow_id] = flow
        self._write(flow, entries)
        return True

    async def append(self, entries: Sequence[Entry]) -> frozenset[str]:
        return self.append_now(entries)

    def append_now(self, entries: Sequence[Entry]) -> frozenset[str]:
        """Synchronous append (the memory backend never waits)."""
        by_flow: dict[str, list[Entry]] = {}
        for e in entries:
            by_flow.setdefault(e.flow_id, []).append(e)
        refused: set[str] = set()
        for flow_id, batch in by_flow.items():
            flow = self._flows.get(flow_id)
            if flow is None or any(e.token < flow.record.token for e in batch):
                refused.add(flow_id)
                continue
            self._write(flow, batch)
        return frozenset(refused)

    def _write(self, flow: _Flow, batch: Sequence[Entry]) -> None:
        state = None
        for e in batch:
            if e.seq in flow.seqs:
                continue
            flow.seqs.add(e.seq)
            if flow.entries and flow.entries[-1].seq > e.seq:
                flow.entries.append(e)
                flow.entries.sort(key=lambda x: x.seq)
            else:
                flow.entries.append(e)
            if e.kind is EventKind.FLOW_STATE and e.state is not None:
                state = e.state
        rec = flow.record
        flow.record = _replace(rec, state=state or rec.state, updated_at=time.time())

    async def fence(self, flow_id: str, token: int) -> int:
        flow = self._flows.get(flow_id)
        if flow is None:
            raise FlowNotFound(f"no flow {flow_id!r} in the journal", flow_id=flow_id)
        current = flow.record.token
        if current > token:
            raise OwnershipLost(
                f"flow {flow_id!r} is owned with a newer token ({current} > {token})",
                flow_id=flow_id,
            )
        flow.record = _replace(flow.record, token=token)
        return current

    async def read(self, flow_id: str, *, after_seq: int = -1) -> list[Entry]:
        flow = self._flows.get(flow_id)
        if flow is None:
            return []
        return [e for e in flow.entries if e.seq > after_seq]

    async def get_flow(self, flow_id: str) -> FlowRecord | None:
        flow = self._flows.get(flow_id)
        return flow.record if flow else None

    async def list_flows(
        self, *, state: str | None = None, limit: int = 100, after: str | None = None
    ) -> list[FlowRecord]:
        out = []
        for fid in sorted(self._flows):
            if after is not None and fid <= after:
                continue
            rec = self._flows[fid].record
            if state is not None and rec.state != state:
                continue
            out.append(rec)
            if len(out) >= limit:
                break
        return out


def _replace(rec: FlowRecord, **changes: object) -> FlowRecord:
    from dataclasses import replace

    return replace(rec, **changes)  # type: ignore[arg-type]
