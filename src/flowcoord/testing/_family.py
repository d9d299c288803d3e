"""A flow and its child flows, as the crash explorer cuts them: every flow of the family by
its path below the root (``""`` for the root, ``"2:disk"`` for the child of step 2,
``"2:vm.1:disk"`` for a grandchild), so that the same family under another root id (the
explorer runs each scenario under a fresh one) is compared member by member.

A child's id is its parent's id, a dot and the step's key (see
:func:`flowcoord._engine._children.child_flow_id`); the explorer's root ids have no dot, so
a member's path is its id after the root's.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence

from .._journal._contract import JournalBackend
from .._journal._events import Entry, EventKind, FlowRecord
from .._states import FlowState
from ._trace import Trace

__all__ = ["Family", "cut_points", "member_id", "path_of", "qualify"]

#: path → entries
Family = dict[str, list[Entry]]


def path_of(root: str, flow_id: str) -> str | None:
    """``flow_id``'s path below ``root``; None if it is not of that family."""
    if flow_id == root:
        return ""
    if flow_id.startswith(root + "."):
        return flow_id[len(root) + 1 :]
    return None


def member_id(root: str, path: str) -> str:
    return f"{root}.{path}" if path else root


def qualify(flow_id: str | None, task: str) -> str:
    """An operation's name in the explorer's trace: a child's steps are prefixed by its
    path (the root's are not), so a parent's ``1:do`` and its child's ``1:do`` differ."""
    if not flow_id:
        return task
    _, dot, path = flow_id.partition(".")
    return f"{path}/{task}" if dot else task


def _children(entries: Sequence[Entry]) -> list[str]:
    out: list[str] = []
    for e in entries:
        if e.kind is EventKind.TASK_STARTED and '"child"' in e.data:
            try:
                child = json.loads(e.data).get("child")
            except ValueError:
                continue
            if isinstance(child, str) and child not in out:
                out.append(child)
    return out


async def read_family(backend: JournalBackend, root: str) -> Family:
    """Every flow of ``root``'s family that is journaled, found through the parents'
    ``task.started`` links."""
    family: Family = {}
    todo = [root]
    while todo:
        fid = todo.pop(0)
        path = path_of(root, fid)
        if path is None or path in family:
            continue
        entries = await backend.read(fid)
        if not entries:
            continue
        family[path] = entries
        todo += _children(entries)
    return family


def cut_points(trace: Trace, root: str) -> list[tuple[int, dict[str, int]]]:
    """Each crash point of the family in ``trace``: the log position just before an entry of
    one of its flows became durable (and the end of the log), with how many entries of each
    flow were durable by then (by path; only those the trace shows)."""
    counts: dict[str, int] = {}
    points: list[tuple[int, dict[str, int]]] = []
    for pos, ev in enumerate(trace.log):
        if ev[0] != "durable":
            continue
        path = path_of(root, ev[1])
        if path is None:
            continue
        if counts:
            points.append((pos, dict(counts)))
        counts[path] = max(counts.get(path, 0), ev[2])
    if counts:
        points.append((len(trace.log), dict(counts)))
    return points


def renamed(entries: Sequence[Entry], old_root: str, new_root: str, path: str) -> list[Entry]:
    """``entries`` of member ``path`` as the same member of the family rooted at
    ``new_root`` (its id, and the ids its data links to)."""
    fid = member_id(new_root, path)
    was, now = f'"{old_root}', f'"{new_root}'
    return [
        dataclasses.replace(
            e, flow_id=fid, data=e.data.replace(was, now) if was in e.data else e.data
        )
        for e in entries
    ]


async def load_family(
    backend: JournalBackend, root: str, prefixes: Mapping[str, Sequence[Entry]]
) -> None:
    """Journal each member's prefix under ``root`` (the first is the root's)."""
    for path, prefix in prefixes.items():
        if not prefix:
            continue
        state = FlowState.PENDING.value
        for e in prefix:
            if e.kind is EventKind.FLOW_STATE and e.state:
                state = e.state
        name = ""
        if prefix[0].kind is EventKind.FLOW_CREATED:
            try:
                name = str(json.loads(prefix[0].data).get("name") or "")
            except ValueError:
                name = ""
        await backend.create_flow(FlowRecord(member_id(root, path), name, state), list(prefix))
