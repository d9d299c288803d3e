"""Retention: deleting the flows that ended long ago (``flowcoord flows prune``).

A flow is pruned when it has ended (SUCCESS, FAILED, REVERTED, CANCELLED) and has written
nothing since the cut-off: its summary, entries and mailbox go, in one transaction per
batch (:meth:`JournalBackend.delete_flows
<flowcoord.journal.JournalBackend.delete_flows>`, which checks both again on the locked
rows: a flow resumed or forked meanwhile stays). A flow that has not ended is never
touched, however old.

A child flow (``ctx.run``, a child task) is kept while a flow it may belong to has not
ended: a running parent may still compensate it, which needs its journal. A child's id is
its parent's id, a dot and its position (the first 100 characters of a longer parent's
id, then a digest), so the flows an id may belong to are those named by what comes before
each of its dots (and, for a 100-character prefix, the flows whose ids start with it).
This errs on keeping: a flow named ``a.b`` stays while a flow ``a`` runs, child or not.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from .._states import FINAL_STATE_NAMES, is_finished
from ._contract import JournalBackend

__all__ = ["PruneReport", "prune_flows"]

_LONG_PARENT = 100  # a child of a longer parent is named after this many of its characters


@dataclass(slots=True)
class PruneReport:
    """What :func:`prune_flows` did (or, ``dry_run``, would do): the flows it ``deleted``
    and those it ``kept`` because a flow they may belong to has not ended."""

    deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    dry_run: bool = False


def _parents(flow_id: str) -> Iterator[str]:
    for i, ch in enumerate(flow_id):
        if ch == "." and i:
            yield flow_id[:i]


async def _running_parent(journal: JournalBackend, flow_id: str, ended: set[str]) -> bool:
    """Whether a flow ``flow_id`` may belong to (see the module docstring) has not ended."""
    for parent in _parents(flow_id):
        if parent in ended:
            continue
        record = await journal.get_flow(parent)
        if record is not None and not is_finished(record.state):
            return True
        if len(parent) == _LONG_PARENT:  # a digest child: any flow named from this prefix
            after: str | None = parent
            while after is not None:
                page = await journal.list_flows(limit=100, after=after)
                after = None
                for r in page:
                    if not r.flow_id.startswith(parent):
                        break
                    if r.flow_id != flow_id and not is_finished(r.state):
                        return True
                    after = r.flow_id
    return False


async def prune_flows(
    journal: JournalBackend,
    *,
    ended_before: float,
    limit: int | None = None,
    dry_run: bool = False,
    batch: int = 200,
) -> PruneReport:
    """Delete the flows of ``journal`` that ended and wrote nothing since ``ended_before``
    (epoch seconds), at most ``limit`` of them, ``batch`` per transaction; ``dry_run``:
    delete nothing, report what would go. See the module docstring for what is kept."""
    report = PruneReport(dry_run=dry_run)
    ended: dict[str, None] = {}
    for state in FINAL_STATE_NAMES:
        after: str | None = None
        while True:
            page = await journal.list_flows(state=state, limit=batch, after=after)
            ended.update((r.flow_id, None) for r in page if r.updated_at < ended_before)
            if len(page) < batch:
                break
            after = page[-1].flow_id
    done = set(ended)
    doomed: list[str] = []
    for flow_id in sorted(ended):
        if limit is not None and len(doomed) >= limit:
            break
        if await _running_parent(journal, flow_id, done):
            report.kept.append(flow_id)
        else:
            doomed.append(flow_id)
    if dry_run:
        report.deleted = doomed
        return report
    for i in range(0, len(doomed), batch):
        report.deleted += await journal.delete_flows(
            doomed[i : i + batch], ended_before=ended_before
        )
    return report
