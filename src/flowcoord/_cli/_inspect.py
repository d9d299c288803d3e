"""Inspecting the journal: flows list, flows show, graph."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import anyio

from .._journal._events import FlowRecord
from .._journal._replay import FlowReplay, replay
from .._journal._urls import open_journal, redact
from .._model._graph_export import to_dot, to_mermaid
from .._model._workflow import Workflow
from .._states import FlowState, TaskState
from .._views import record_view, status_view
from ..errors import ConfigurationError, FlowNotFound
from ._common import EXIT_OK
from ._load import load_flow
from ._output import _dur, _one_line, _table, _ts


def cmd_flows_list(args: argparse.Namespace) -> int:
    state = args.state.upper() if args.state else None
    if state is not None and state not in FlowState.__members__:
        raise ConfigurationError(
            f"unknown state {args.state!r}", hint=f"use one of {', '.join(FlowState)}"
        )
    backend = open_journal(args.journal)

    async def fetch() -> list[Any]:
        async with backend:
            return await backend.list_flows(state=state, limit=args.limit + 1, after=args.after)

    recs = anyio.run(fetch)
    more = len(recs) > args.limit
    recs = recs[: args.limit]
    if args.json:
        flows = [record_view(r) for r in recs]  # the HTTP API's shape
        nxt = recs[-1].flow_id if more else None
        print(json.dumps({"flows": flows, "next": nxt}))
        return EXIT_OK
    if not recs:
        print("no flows" + (f" in state {state}" if state else ""), file=sys.stderr)
        return EXIT_OK
    rows = [["FLOW_ID", "NAME", "STATE", "CREATED", "UPDATED"]]
    rows += [[r.flow_id, r.name, r.state, _ts(r.created_at), _ts(r.updated_at)] for r in recs]
    _table(rows, sys.stdout)
    if more:
        print(f"(more: --after {recs[-1].flow_id})", file=sys.stderr)
    return EXIT_OK


def cmd_flows_show(args: argparse.Namespace) -> int:
    backend = open_journal(args.journal)

    async def fetch() -> tuple[FlowReplay, FlowRecord | None]:
        async with backend:
            entries = await backend.read(args.flow_id)
            rec = await backend.get_flow(args.flow_id)
        if not entries:
            raise FlowNotFound(
                f"no flow {args.flow_id!r} in the journal {redact(args.journal)}",
                flow_id=args.flow_id,
                hint="list flows with: flowcoord flows list --journal URL",
            )
        return replay(args.flow_id, entries), rec

    rep, rec = anyio.run(fetch)
    if args.json:  # the HTTP API's shape
        view = status_view(rep, rec, running_here=False, live_state=None)
        print(json.dumps(view, default=repr, ensure_ascii=False))
        return EXIT_OK
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


def cmd_graph(args: argparse.Namespace) -> int:
    flow = load_flow(args.target)
    if isinstance(flow, Workflow):
        raise ConfigurationError(
            f"{args.target} is a workflow: its steps are code, there is no graph before it runs",
            hint="see a run's steps with: flowcoord flows show ID --journal URL",
        )
    sys.stdout.write(to_dot(flow) if args.format == "dot" else to_mermaid(flow))
    return EXIT_OK
