"""Inspecting the journal: flows list, show and history, graph. Read-only: a journal that
is not there is an error, never created."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from typing import Any

import anyio

from .._journal._contract import JournalBackend, encode_cursor
from .._journal._events import Entry, EventKind, FlowRecord
from .._journal._replay import replay
from .._journal._urls import open_journal, redact
from .._model._graph_export import to_dot, to_mermaid
from .._model._workflow import Workflow
from .._states import FlowState, TaskState
from .._views import entry_view, record_view, status_view
from ..errors import ConfigurationError, FlowNotFound
from ._common import EXIT_OK
from ._load import load_flow
from ._output import _cut, _dur, _one_line, _table, _ts

_PAGE = 500


def _wanted_states(text: str | None) -> list[str] | None:
    """``--state``: one state or several, comma-separated, any case."""
    if not text:
        return None
    out = []
    for part in text.split(","):
        state = part.strip().upper()
        if state not in FlowState.__members__:
            raise ConfigurationError(
                f"unknown state {part.strip()!r}", hint=f"use one of {', '.join(FlowState)}"
            )
        out.append(state)
    return out


async def _all_flows(backend: JournalBackend, states: list[str] | None) -> list[FlowRecord]:
    """Every flow of the journal (in ``states``), by id, page by page (for completion)."""
    push = states[0] if states is not None and len(states) == 1 else None
    out: list[FlowRecord] = []
    after: str | None = None
    while True:
        page = await backend.list_flows(state=push, limit=_PAGE, after=after)
        out.extend(page if states is None else (r for r in page if r.state in states))
        if len(page) < _PAGE:
            return out
        after = page[-1].flow_id


async def _listing(
    backend: JournalBackend, args: argparse.Namespace, states: list[str] | None
) -> tuple[list[FlowRecord], bool]:
    """The page of flows the options ask for, newest first, and whether more follow: one
    query of the journal (its newest-first listing, filtered there)."""
    cursor = None
    if args.after:
        mark = await backend.get_flow(args.after)
        if mark is None:
            raise ConfigurationError(
                f"--after {args.after!r}: no such flow in the journal",
                hint="page on with the flow id the previous page printed",
            )
        cursor = encode_cursor(mark)
    page = await backend.list_newest(
        limit=args.limit,
        cursor=cursor,
        name=args.name or None,
        states=states,
        since=args.since.cutoff() if args.since is not None else None,
    )
    return page.flows, page.next is not None


def _print_listing(
    recs: list[FlowRecord], more: bool, args: argparse.Namespace, states: list[str] | None
) -> None:
    if args.json:
        flows = [record_view(r) for r in recs]  # the HTTP API's shape
        nxt = recs[-1].flow_id if more else None
        print(json.dumps({"flows": flows, "next": nxt}), flush=True)
        return
    if not recs:
        which = [f"in state {'/'.join(states)}"] if states else []
        which += [f"named {args.name!r}"] if args.name else []
        which += [f"created since {args.since.text}"] if args.since is not None else []
        print("no flows" + (" " + ", ".join(which) if which else ""), file=sys.stderr)
        return
    rows = [["FLOW_ID", "NAME", "STATE", "CREATED", "UPDATED"]]
    rows += [[r.flow_id, r.name, r.state, _ts(r.created_at), _ts(r.updated_at)] for r in recs]
    _table(rows, sys.stdout)
    sys.stdout.flush()
    if more:
        print(f"(more: --after {recs[-1].flow_id})", file=sys.stderr)


def cmd_flows_list(args: argparse.Namespace) -> int:
    states = _wanted_states(args.state)
    backend = open_journal(args.journal, must_exist=True)
    if args.watch is None and args.watch_count is None:

        async def once() -> tuple[list[FlowRecord], bool]:
            async with backend:
                return await _listing(backend, args, states)

        recs, more = anyio.run(once)
        _print_listing(recs, more, args, states)
        return EXIT_OK
    interval = args.watch or 2.0
    clear = sys.stdout.isatty() and not args.json

    async def watch() -> None:
        async with backend:
            rounds = 0
            while True:
                recs, more = await _listing(backend, args, states)
                if clear:
                    sys.stdout.write("\x1b[H\x1b[2J")
                if not args.json:
                    print(f"{_ts(time.time())}: every {interval:g}s, Ctrl-C to stop")
                _print_listing(recs, more, args, states)
                rounds += 1
                if args.watch_count is not None and rounds >= args.watch_count:
                    return
                await anyio.sleep(interval)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: the way a watch ends
        anyio.run(watch)
    return EXIT_OK


def flow_ids(journal: str, prefix: str, limit: int = 200) -> list[str]:
    """Ids of the journal's flows starting with ``prefix`` (for shell completion)."""
    backend = open_journal(journal, must_exist=True)

    async def fetch() -> list[str]:
        async with backend:
            recs = await _all_flows(backend, None)
        return [r.flow_id for r in recs if r.flow_id.startswith(prefix)][:limit]

    return anyio.run(fetch)


def _read_flow(journal: str, flow_id: str) -> tuple[list[Entry], FlowRecord | None]:
    backend = open_journal(journal, must_exist=True)

    async def fetch() -> tuple[list[Entry], FlowRecord | None]:
        async with backend:
            entries = await backend.read(flow_id)
            rec = await backend.get_flow(flow_id)
        if not entries:
            raise FlowNotFound(
                f"no flow {flow_id!r} in the journal {redact(journal)}",
                flow_id=flow_id,
                hint="list flows with: flowcoord flows list --journal URL",
            )
        return entries, rec

    return anyio.run(fetch)


def cmd_flows_show(args: argparse.Namespace) -> int:
    entries, rec = _read_flow(args.journal, args.flow_id)
    rep = replay(args.flow_id, entries)
    view = status_view(rep, rec, running_here=False, live_state=None, entries=entries)
    if args.json:  # the HTTP API's shape
        print(json.dumps(view, default=repr, ensure_ascii=False))
        return EXIT_OK
    if view.get("kind") == "workflow":
        return _show_workflow(view)
    done = sum(1 for t in rep.tasks.values() if t.state is TaskState.SUCCESS)
    print(f"flow     {rep.flow_id}")
    print(f"name     {rep.name}")
    print(f"state    {rep.state.value}  ({done}/{len(rep.task_names)} tasks done)")
    print(f"created  {_ts(rep.created_at)}")
    print(f"updated  {_ts(rep.updated_at)}")
    print(f"inputs   {json.dumps(rep.inputs, default=repr, ensure_ascii=False)}")
    rows = [["TASK", "STATE", "ATTEMPT", "DURATION", "FAILURE"]]
    for name in rep.task_names:
        t = rep.tasks.get(name)
        if t is None:
            rows.append([name, "PENDING", "0", "", ""])
            continue
        dur = t.finished_at - t.started_at if t.started_at and t.finished_at else None
        fail = t.revert_failure or t.failure
        rows.append(
            [name, t.state.value, str(t.attempt), _dur(dur), _one_line(str(fail)) if fail else ""]
        )
    print()
    _table(rows, sys.stdout)
    return EXIT_OK


def _show_workflow(view: dict[str, Any]) -> int:
    """A workflow's status as text: its steps by position."""
    steps = view["steps"]
    done = sum(1 for st in steps if st["state"] == "SUCCESS" and st["kind"] == "step")
    print(f"flow     {view['flow_id']}  (workflow)")
    print(f"name     {view['name']}")
    print(f"state    {view['state']}  ({done} steps done)")
    if view.get("parent"):
        print(f"parent   {view['parent']}  (step {view.get('parent_step')})")
    print(f"created  {_ts(view['created_at'])}")
    print(f"updated  {_ts(view['updated_at'])}")
    print(f"inputs   {json.dumps(view['inputs'], default=repr, ensure_ascii=False)}")
    if view.get("failure"):
        f = view["failure"]
        print(f"failure  {_one_line(str(f.get('type')) + ': ' + str(f.get('message')))}")
    rows = [["POS", "STEP", "KIND", "STATE", "ATTEMPT", "DURATION", "COMPENSATION", "DETAIL"]]
    for st in steps:
        fail = st.get("revert_failure") or st.get("failure")
        detail = (
            _one_line(f"{fail.get('type')}: {fail.get('message')}")
            if fail
            else (st.get("child") or "")
        )
        rows.append(
            [
                str(st["position"]),
                str(st["name"]),
                str(st["kind"]),
                str(st["state"]),
                str(st["attempt"]),
                _dur(st.get("duration")),
                str(st.get("revert_state") or ""),
                detail,
            ]
        )
    print()
    _table(rows, sys.stdout)
    return EXIT_OK


_TASK_STATE = {
    EventKind.TASK_STARTED: TaskState.RUNNING.value,
    EventKind.TASK_SUCCEEDED: TaskState.SUCCESS.value,
    EventKind.TASK_FAILED: TaskState.FAILURE.value,
    EventKind.REVERT_STARTED: TaskState.REVERTING.value,
    EventKind.REVERT_DONE: TaskState.REVERTED.value,
    EventKind.REVERT_FAILED: TaskState.REVERT_FAILURE.value,
}
#: Keys with a column of their own, or too big to sum up.
_NOT_SUMMED = frozenset({"attempt", "started_at", "failure"})


def _compact(value: Any, width: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)
    return _cut(text, width)


def _failure_text(failure: Any) -> str:
    if not isinstance(failure, dict):
        return _compact(failure)
    types = failure.get("exc_types") or ["Exception"]
    return f"{types[0]}: {failure.get('message', '')}"


def _summary(kind: str, data: Any) -> str:
    """An entry's data on one short line: a failure by type and message first, then the
    other values as ``key=value``."""
    if not isinstance(data, dict):
        return _cut(data if isinstance(data, str) else _compact(data, 100), 100)
    parts = []
    if "failure" in data:
        parts.append(_failure_text(data["failure"]))
    if kind == EventKind.CHECKPOINT:
        tasks = data.get("tasks")
        count = len(tasks) if isinstance(tasks, list) else "?"
        return f"{count} successes summed up, from seq {data.get('from')}"
    for key, value in data.items():
        if key not in _NOT_SUMMED:
            parts.append(f"{key}={value}" if isinstance(value, str) else f"{key}={_compact(value)}")
    return _cut("  ".join(parts), 100)


def cmd_flows_history(args: argparse.Namespace) -> int:
    entries, _ = _read_flow(args.journal, args.flow_id)
    name = ""
    if entries[0].kind is EventKind.FLOW_CREATED:
        first = entry_view(entries[0])["data"]
        name = str(first.get("name", "")) if isinstance(first, dict) else ""
    if args.json:  # the HTTP API's entry shape
        views = [entry_view(e) for e in entries]
        print(json.dumps({"flow_id": args.flow_id, "name": name, "entries": views}, default=repr))
        return EXIT_OK
    rows = [["SEQ", "TIME", "KIND", "TASK", "ATTEMPT", "STATE", "SUMMARY"]]
    for e in entries:
        data = entry_view(e)["data"]
        attempt = data.get("attempt") if isinstance(data, dict) else None
        state = e.state or _TASK_STATE.get(e.kind, "")
        rows.append(
            [
                str(e.seq),
                _ts(e.at, precise=True),
                e.kind.value,
                e.task or "",
                str(attempt) if isinstance(attempt, int) else "",
                state,
                _summary(e.kind, data),
            ]
        )
    _table(rows, sys.stdout)
    return EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    flow = load_flow(args.target)
    if isinstance(flow, Workflow):
        raise ConfigurationError(
            f"{args.target} is a workflow: its steps are code, there is no graph before it runs",
            hint="see a run's steps with: flowcoord flows show ID --journal URL",
        )
    sys.stdout.write(to_dot(flow) if args.format == "dot" else to_mermaid(flow))
    return EXIT_OK
