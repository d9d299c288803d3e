"""``flowcoord check-compat``: would the unfinished flows of a journal resume on new code?"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import anyio

from .._engine._engine import Engine
from .._engine._fork import check_same_flow
from .._journal._urls import open_journal
from .._model._workflow import Workflow
from .._states import is_finished
from ..errors import FlowDefinitionError
from ._common import EXIT_OK
from ._load import load_registry
from ._output import _table

EXIT_BREAKS = 1


async def _check(args: argparse.Namespace) -> tuple[int, list[dict[str, Any]]]:
    registry = load_registry(args.registry)
    checked, breaks = 0, []
    async with Engine(open_journal(args.journal, must_exist=True)) as engine:
        after: str | None = None
        while True:
            page = await engine.backend.list_flows(limit=500, after=after)
            for rec in page:
                if is_finished(rec.state):
                    continue
                checked += 1
                row: dict[str, Any] = {"flow_id": rec.flow_id, "name": rec.name}
                if rec.name not in registry:
                    breaks.append({**row, "problem": "no flow of this name in the registry"})
                    continue
                flow = registry.build(rec.name)
                if isinstance(flow, Workflow):
                    bad = await engine.check_replay(flow, rec.flow_id)
                    if bad is not None:
                        where = {"position": bad.position, "journaled": bad.journaled}
                        breaks.append({**row, **where, "called": bad.called, "problem": str(bad)})
                    continue
                try:  # a pattern flow resumes if its tasks are those it was journaled with
                    check_same_flow(flow, engine.compile(flow), await engine.status(rec.flow_id))
                except FlowDefinitionError as exc:
                    breaks.append({**row, "problem": str(exc)})
            if len(page) < 500:
                break
            after = page[-1].flow_id
    return checked, breaks


def cmd_check_compat(args: argparse.Namespace) -> int:
    """Replay every unfinished flow of the journal against the registry's code without
    running a step or writing anything; list those that would not resume (exit 1)."""
    checked, breaks = anyio.run(_check, args)
    if args.json:
        print(json.dumps({"checked": checked, "incompatible": breaks}))
    elif breaks:
        rows = [["FLOW_ID", "NAME", "POSITION", "JOURNALED", "CALLED"]]
        for b in breaks:
            at = [str(b.get("position", "")), b.get("journaled") or "", b.get("called") or ""]
            rows.append([b["flow_id"], b["name"], *at])
        _table(rows, sys.stdout)
        for b in breaks:
            print(f"{b['flow_id']}: {b['problem']}", file=sys.stderr)
        print(f"{len(breaks)} of {checked} unfinished flows would not resume", file=sys.stderr)
    else:
        print(f"all {checked} unfinished flows would resume on this code", file=sys.stderr)
    return EXIT_BREAKS if breaks else EXIT_OK
