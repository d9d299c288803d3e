"""Entries and records to and from the PostgreSQL journal's parameters and rows: batch
columns (arrays or packed texts), de-duplication, and decoding rows."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from ..errors import JournalSchemaError
from ._events import Entry, EventKind, FlowRecord


def _dedupe(entries: Sequence[Entry]) -> list[Entry]:
    seen: set[tuple[str, int]] = set()
    out = []
    for e in entries:
        if (e.flow_id, e.seq) not in seen:
            seen.add((e.flow_id, e.seq))
            out.append(e)
    return out


def _final_state(entries: Sequence[Entry], state: str) -> str:
    last: Entry | None = None
    for e in entries:
        if e.kind is EventKind.FLOW_STATE and e.state and (last is None or e.seq > last.seq):
            last = e
    return last.state if last is not None and last.state is not None else state


def _columns(entries: Sequence[Entry]) -> tuple[list[object], ...]:
    return (
        [e.flow_id for e in entries],
        [e.seq for e in entries],
        [e.kind.value for e in entries],
        [e.task for e in entries],
        [e.data for e in entries],
        [e.state for e in entries],
        [e.token for e in entries],
        [e.at for e in entries],
    )


_SEP, _NULL = "\x1f", "\x1e"


def _encoded(entries: Sequence[Entry]) -> tuple[bool, tuple[object, ...]]:
    """Parameters $1..$8 for a batch, and whether they are packed texts (see :func:`_pack`)
    rather than arrays: the statement's ``*_packed`` variant takes the former."""
    packed = _pack(entries)
    return (True, packed) if packed is not None else (False, _columns(entries))


def _pack(entries: Sequence[Entry]) -> tuple[str, ...] | None:
    """The entries as one text per column (see ``_UNNEST_PACKED``), or None when a value
    holds a separator, or is a lone empty string (which the server would split into no
    element): then the arrays of :func:`_columns` must be used."""
    n = len(entries)
    texts: list[str] = []
    columns: tuple[list[str | None], ...] = (
        [e.flow_id for e in entries],
        [e.kind for e in entries],  # a StrEnum: the member is its value
        [e.task for e in entries],
        [e.data for e in entries],
        [e.state for e in entries],
    )
    for values in columns:
        nulls = values.count(None)
        text = _SEP.join([_NULL if v is None else v for v in values] if nulls else values)  # type: ignore[arg-type]
        if text.count(_SEP) != n - 1 or text.count(_NULL) != nulls or not text:
            return None
        texts.append(text)
    flow_id, kind, task, data, state = texts
    seq = ",".join([str(e.seq) for e in entries])
    token = ",".join([str(e.token) for e in entries])
    at = ",".join([repr(e.at) for e in entries])  # repr: the shortest exact decimal
    return flow_id, seq, kind, task, data, state, token, at


_KINDS = {k.value: k for k in EventKind}


def _entry(flow_id: str, row: asyncpg.Record) -> Entry:
    seq, kind_s, task, data, state, token, at = row
    kind = _KINDS.get(kind_s)
    if kind is not None:
        return Entry(flow_id, seq, kind, task, data, state, token, at)
    try:
        kind = EventKind(row["kind"])
    except ValueError as exc:
        raise JournalSchemaError(
            f"flow {flow_id!r} has an entry of unknown kind {row['kind']!r}",
            flow_id=flow_id,
            hint="it was written by a newer flowcoord; upgrade this one",
        ) from exc
    return Entry(
        flow_id=flow_id,
        seq=row["seq"],
        kind=kind,
        task=row["task"],
        data=row["data"],
        state=row["state"],
        token=row["token"],
        at=row["at"],
    )


def _record(row: asyncpg.Record) -> FlowRecord:
    return FlowRecord(
        flow_id=row["flow_id"],
        name=row["name"],
        state=row["state"],
        token=row["token"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
