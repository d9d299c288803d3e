"""``flowcoord flows prune``: delete the flows that ended long ago (retention; see
:func:`flowcoord.journal.prune_flows`)."""

from __future__ import annotations

import argparse
import json
from datetime import datetime

import anyio

from .._journal._retention import PruneReport, prune_flows
from .._journal._urls import open_journal, redact
from ._common import EXIT_OK


def cmd_flows_prune(args: argparse.Namespace) -> int:
    cutoff = args.ended_before.cutoff()
    backend = open_journal(args.journal, must_exist=True)

    async def prune() -> PruneReport:
        async with backend:
            return await prune_flows(
                backend, ended_before=cutoff, limit=args.limit, dry_run=args.dry_run
            )

    report = anyio.run(prune)
    if args.json:
        shape = {"ended_before": cutoff, "dry_run": report.dry_run}
        print(json.dumps({**shape, "deleted": report.deleted, "kept": report.kept}))
        return EXIT_OK
    when = datetime.fromtimestamp(cutoff).isoformat(timespec="seconds")
    verb = "would delete" if report.dry_run else "deleted"
    print(
        f"{verb} {len(report.deleted)} flow{'' if len(report.deleted) == 1 else 's'} of "
        f"{redact(args.journal)} that ended before {when}"
        + (f"; kept {len(report.kept)} that belong to flows still running" if report.kept else "")
    )
    for flow_id in report.deleted if report.dry_run else ():
        print(f"  {flow_id}")
    return EXIT_OK
