"""``flowcoord jobs``: an operator's view of the ZooKeeper job board, and its hand on it.

``list``, ``show``, ``trashed``, ``queues`` and ``members`` read; ``post``, ``trash``,
``requeue`` and ``purge`` change the board (nothing is asked interactively: ``trash`` needs
``--reason``, ``purge`` ``--before`` or ``--all``). Tables by default, ``--json`` the HTTP
API's shapes (:mod:`flowcoord._job_views`). Exit 0 done; 1 when the board says no (no such
job, queue or trash entry; a claimed job; a key taken by another job), the error on stderr
(JSON under ``--json``); 2 for bad usage or a board that cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

from .._args import int_in, since
from .._coord._contract import JobBoard
from .._coord._queueing import MAX_PRIORITY, MIN_PRIORITY
from .._job_views import (
    job_view,
    members_overview,
    queues_overview,
    trashed_view,
)
from .._model._inputs import UNTYPED, convert_inputs, convert_value
from ..errors import (
    ConfigurationError,
    FlowcoordError,
    JobAlreadyClaimed,
    JobKeyConflict,
    JobNotFound,
    UnknownQueue,
)
from ._common import EXIT_FAILED, EXIT_OK
from ._load import load_registry, parse_inputs
from ._output import _cut, _one_line, _table, _ts
from ._worker import board_options, open_board_of

__all__ = ["add_jobs_parser"]

#: What the board refuses (exit 1), as opposed to bad usage or an unreachable board (exit 2).
_REFUSALS = (JobNotFound, JobAlreadyClaimed, JobKeyConflict, UnknownQueue)
_ZK_HELP = "the job board's ZooKeeper (host:port[,host:port...])"


def add_jobs_parser(sub: Any, common: Sequence[argparse.ArgumentParser]) -> None:
    """``flowcoord jobs ACTION``, on ``sub`` (the command's subparsers)."""
    jobs = sub.add_parser(
        "jobs",
        help="list, post, trash and requeue jobs on a ZooKeeper job board",
        description="An operator's view of the job board (the worker's --zk options): its "
        "jobs, queues, members and trash; and posting, trashing, requeueing and purging.",
        parents=common,
    )
    jsub = jobs.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")

    p = _action(jsub, common, "list", "list the jobs on the board, in claim order", _list)
    p.add_argument("--queue", metavar="NAME", help="only this queue's jobs")
    p.add_argument(
        "--limit", type=_count, default=100, help="at most this many (default 100; first ones)"
    )
    p = _action(jsub, common, "show", "show one job", _show)
    p.add_argument("job_id")
    p = _action(
        jsub,
        common,
        "post",
        "post a flow as a job (idempotent under its key)",
        _post,
        "Post a job for a registered flow. Its key (by default the flow id) makes the post "
        "idempotent: posting the key again answers the job it names (deduplicated); other "
        "inputs or another flow under it exit 1 (JobKeyConflict). With --registry the flow "
        "must be registered and the inputs are converted to its annotations, as "
        "'flowcoord run -i' does; without, each value is JSON when it parses, else text.",
    )
    p.add_argument("flow", help="the registered flow's name")
    p.add_argument(
        "-i", "--input", action="append", metavar="KEY=VALUE", help="an input; repeatable"
    )
    p.add_argument("--registry", metavar="module:attr", help="a FlowRegistry, to check inputs")
    p.add_argument("--flow-id", help="the flow's id (default: a fresh one)")
    p.add_argument("--key", help="the idempotency key (default: the flow id)")
    p.add_argument(
        "--priority",
        type=_priority,
        default=0,
        help=f"higher runs first ({MIN_PRIORITY}..{MAX_PRIORITY}; default 0)",
    )
    p.add_argument("--queue", default="default", metavar="NAME", help="a declared queue")
    p.add_argument("--partition", metavar="KEY", help="its partition key (e.g. a tenant id)")
    p.add_argument(
        "--header",
        action="append",
        metavar="NAME=VALUE",
        help="a header that travels with the job (e.g. trace context); repeatable",
    )
    p.add_argument(
        "--not-before",
        type=_due,
        metavar="WHEN",
        help="run no earlier than WHEN: in 30s, 10m, 2h, 3d, 1w; an ISO 8601 time (local "
        "unless it names a zone); or epoch seconds",
    )
    p = _action(
        jsub,
        common,
        "trash",
        "move a waiting job nobody holds to the trash",
        _trash,
        "Move a waiting job to the trash, with a reason. A job a worker holds is refused "
        "(exit 1): cancel or stop its flow first. Its key stays taken (a post of it answers "
        "the trashed job) for the board's key retention.",
    )
    p.add_argument("job_id")
    p.add_argument("--reason", required=True, help="why (shown with the trash entry)")
    _action(jsub, common, "trashed", "list the trash (entries and reasons)", _trashed)
    p = _action(
        jsub,
        common,
        "requeue",
        "post a trashed job again (its claims and failures reset)",
        _requeue,
        "Post the job of a trash entry again (same flow, flow id, inputs, queue, priority "
        "and key; claims and failures reset) and remove the entry.",
    )
    p.add_argument("trash_id", help="as 'flowcoord jobs trashed' prints it")
    p = _action(jsub, common, "purge", "delete trash entries", _purge)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--before",
        type=since,
        metavar="WHEN",
        help="only entries trashed before WHEN: 30s, 10m, 2h, 3d, 1w ago, or an ISO 8601 time",
    )
    which.add_argument("--all", action="store_true", help="every entry")
    p = _action(
        jsub,
        common,
        "queues",
        "each queue: limits, waiting, running (by whom), who serves it",
        _queues,
    )
    p.add_argument(
        "--limit", type=_count, default=1000, help="read at most this many waiting jobs (1000)"
    )
    _action(jsub, common, "members", "the live workers and what each holds", _members)


def _action(
    jsub: Any,
    common: Sequence[argparse.ArgumentParser],
    name: str,
    helptext: str,
    run: Callable[[JobBoard, argparse.Namespace], Awaitable[int]],
    description: str | None = None,
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = jsub.add_parser(
        name, help=helptext, description=description or helptext[0].upper() + helptext[1:] + ".",
        parents=common,
    )  # fmt: skip
    board_options(p, required=True, zk_help=_ZK_HELP)
    p.add_argument("--json", action="store_true", help="print JSON (errors too, on stderr)")
    p.set_defaults(func=lambda args: _run(args, run))
    return p


def _run(
    args: argparse.Namespace, run: Callable[[JobBoard, argparse.Namespace], Awaitable[int]]
) -> int:
    async def main() -> int:
        async with open_board_of(args) as board:
            try:
                return await run(board, args)
            except _REFUSALS as exc:  # here, before the session's task group wraps it
                _refused(exc, args.json)
                return EXIT_FAILED

    return anyio.run(main)


def _refused(err: FlowcoordError, as_json: bool) -> None:
    if as_json:
        body = {"type": type(err).__name__, "message": _one_line(err.message), "hint": err.hint}
        print(json.dumps(body, ensure_ascii=False), file=sys.stderr)
    else:
        print(f"flowcoord: {_one_line(str(err))}", file=sys.stderr)


def _dump(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, default=repr), flush=True)


# -- reads ----------------------------------------------------------------------------------


_SHOWN = ("job_id", "key", "flow", "flow_id", "queue", "priority", "status", "owner")


async def _list(board: JobBoard, args: argparse.Namespace) -> int:
    jobs = await board.jobs(queue=args.queue, limit=args.limit)
    now = time.time()
    views = [job_view(j, now=now) for j in jobs]
    if args.json:
        _dump({"jobs": views, "limit": args.limit, "queue": args.queue})
        return EXIT_OK
    if not views:
        print("no jobs" + (f" in queue {args.queue!r}" if args.queue else ""), file=sys.stderr)
        return EXIT_OK
    rows = [
        ["JOB_ID", "QUEUE", "PRI", "STATUS", "OWNER", "FLOW", "FLOW_ID", "CLAIMS", "POSTED", "DUE"]
    ]
    for v in views:
        rows.append(
            [
                v["job_id"],
                v["queue"],
                str(v["priority"]),
                v["status"],
                v["owner"] or "-",
                v["flow"],
                _cut(v["flow_id"], 40),
                f"{v['claims']}/{v['failures']}f" if v["failures"] else str(v["claims"]),
                _ts(v["created_at"]),
                _ts(v["not_before"]) if v["status"] == "delayed" else "-",
            ]
        )
    _table(rows, sys.stdout)
    if len(views) == args.limit:
        print(f"(the first {args.limit}: --limit N for more)", file=sys.stderr)
    return EXIT_OK


def _show_lines(view: dict[str, Any], indent: str = "") -> None:
    times = {"created_at": "posted", "not_before": "due"}
    for name in (*_SHOWN, "claims", "failures", "created_at", "not_before"):
        value = view.get(name)
        if name in times:
            print(f"{indent}{times[name]:<10}{_ts(value) if value else '-'}")
        elif name in view:
            print(f"{indent}{name.replace('_', ' '):<10}{'-' if value is None else value}")
    print(
        f"{indent}{'inputs':<10}{json.dumps(view.get('inputs'), ensure_ascii=False, default=repr)}"
    )
    done = {*_SHOWN, "claims", "failures", "created_at", "not_before", "inputs", "state"}
    done |= {"outcome", "deduplicated"}
    for name, value in view.items():  # what the board gained since (headers, ...)
        if name not in done and value not in (None, {}, [], ""):
            shown = value if isinstance(value, str) else json.dumps(value, default=repr)
            print(f"{indent}{name.replace('_', ' '):<10}{shown}")


async def _show(board: JobBoard, args: argparse.Namespace) -> int:
    view = job_view(await board.get(args.job_id))
    if args.json:
        _dump(view)
    else:
        _show_lines(view)
    return EXIT_OK


async def _trashed(board: JobBoard, args: argparse.Namespace) -> int:
    views = [trashed_view(t) for t in await board.trashed()]
    if args.json:
        _dump({"trash": views})
        return EXIT_OK
    if not views:
        print("the trash is empty", file=sys.stderr)
        return EXIT_OK
    rows = [["TRASH_ID", "QUEUE", "FLOW", "FLOW_ID", "CLAIMS", "TRASHED", "REASON"]]
    for v in views:
        job = v["job"]
        rows.append(
            [
                v["trash_id"],
                job["queue"],
                job["flow"],
                _cut(job["flow_id"], 40),
                f"{job['claims']}/{job['failures']}f" if job["failures"] else str(job["claims"]),
                _ts(v["trashed_at"]),
                _cut(v["reason"], 60),
            ]
        )
    _table(rows, sys.stdout)
    return EXIT_OK


def _limits(config: dict[str, Any]) -> str:
    shown = [f"{k}={v}" for k, v in config.items() if k != "name" and v is not None]
    return ", ".join(shown) or "none"


async def _queues(board: JobBoard, args: argparse.Namespace) -> int:
    overview = await queues_overview(board, limit=args.limit)
    if args.json:
        _dump(overview)
        return EXIT_OK
    more = "" if overview["complete"] else "+"
    rows = [["QUEUE", "LIMITS", "WAITING", "DELAYED", "RUNNING", "SERVED_BY"]]
    running = [["QUEUE", "JOB_ID", "OWNER", "FLOW", "FLOW_ID", "CLAIMS"]]
    for q in overview["queues"]:
        served = [
            s["member"] + (f" (<={s['worker_limit']})" if s["worker_limit"] else "")
            for s in q["served_by"]
        ]
        rows.append(
            [
                q["name"],
                _limits(q["config"]),
                f"{q['waiting']}{more}",
                f"{q['delayed']}{more}",
                str(len(q["running"])),
                ", ".join(served) or "-",
            ]
        )
        for j in q["running"]:
            running.append(
                [
                    q["name"],
                    j["job_id"],
                    j["owner"],
                    j["flow"],
                    _cut(j["flow_id"], 40),
                    str(j["claims"]),
                ]
            )
    _table(rows, sys.stdout)
    if len(running) > 1:
        print()
        _table(running, sys.stdout)
    if overview["trash"]:
        print(f"\n{len(overview['trash'])} in the trash: flowcoord jobs trashed")
    return EXIT_OK


async def _members(board: JobBoard, args: argparse.Namespace) -> int:
    members = await members_overview(board)
    if args.json:
        _dump({"members": members})
        return EXIT_OK
    if not members:
        print("no live members", file=sys.stderr)
        return EXIT_OK
    rows = [["MEMBER", "HOST", "PID", "STARTED", "QUEUES", "HOLDS", "JOBS"]]
    for m in members:
        info = m["info"]
        capacity = info.get("capacity")
        holds = f"{len(m['claims'])}/{capacity}" if capacity else str(len(m["claims"]))
        queues = info.get("queues")
        rows.append(
            [
                m["name"],
                str(info.get("host", "-")),
                str(info.get("pid", "-")),
                _ts(info.get("started_at"))
                if isinstance(info.get("started_at"), int | float)
                else "-",
                ",".join(map(str, queues)) if isinstance(queues, list) else "-",
                holds,
                _cut(", ".join(f"{j['flow_id']} ({j['queue']})" for j in m["jobs"]) or "-", 60),
            ]
        )
    _table(rows, sys.stdout)
    return EXIT_OK


# -- changes --------------------------------------------------------------------------------


async def _post(board: JobBoard, args: argparse.Namespace) -> int:
    raw = parse_inputs(args.input or [])
    if args.registry:
        registry = load_registry(args.registry)
        inputs = convert_inputs(registry.build(args.flow), raw, text=True)
    else:
        inputs = {k: convert_value(v, UNTYPED, text=True) for k, v in raw.items()}
    job = await board.post(
        args.flow,
        inputs,
        flow_id=args.flow_id,
        priority=args.priority,
        queue=args.queue,
        key=args.key,
        not_before=args.not_before,
        partition=args.partition,
        headers=_headers(args.header or []),
    )
    view = job_view(job)
    if args.json:
        _dump(view)
        return EXIT_OK
    if job.deduplicated:
        print(
            f"job {job.job_id} (key {job.key!r}): already posted, {view['status']}"
            + (f" (outcome {job.outcome})" if job.outcome else "")
            + f"; flow {job.flow} {job.flow_id}"
        )
    else:
        due = f", due {_ts(job.not_before)}" if view["status"] == "delayed" else ""
        print(
            f"job {job.job_id} posted: flow {job.flow} {job.flow_id}, queue {job.queue}, "
            f"priority {job.priority}, key {job.key!r}{due}"
        )
    return EXIT_OK


async def _trash(board: JobBoard, args: argparse.Namespace) -> int:
    entry = await board.trash_job(args.job_id, args.reason)
    if args.json:
        _dump(trashed_view(entry))
    else:
        print(
            f"job {entry.job.job_id} ({entry.job.flow} {entry.job.flow_id}) trashed: "
            f"{entry.trash_id}; requeue it with: flowcoord jobs requeue {entry.trash_id}"
        )
    return EXIT_OK


async def _requeue(board: JobBoard, args: argparse.Namespace) -> int:
    job = await board.requeue(args.trash_id)
    if args.json:
        _dump(job_view(job))
    else:
        print(f"job {job.job_id} ({job.flow} {job.flow_id}) is on queue {job.queue} again")
    return EXIT_OK


async def _purge(board: JobBoard, args: argparse.Namespace) -> int:
    before = None if args.all else args.before.cutoff()
    purged = await board.purge_trash(before=before)
    if args.json:
        _dump({"purged": purged, "before": before})
    else:
        print(f"{purged} trash entr{'y' if purged == 1 else 'ies'} deleted")
    return EXIT_OK


# -- argument types -------------------------------------------------------------------------


def _headers(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigurationError(
                f"--header {pair!r} is not NAME=VALUE", hint="e.g. --header traceparent=00-..."
            )
        out[name.strip()] = value
    return out


def _count(text: str) -> int:
    return int_in(text, 1, 100_000, "a number from 1 to 100000")


def _priority(text: str) -> int:
    return int_in(text, MIN_PRIORITY, MAX_PRIORITY, f"a priority ({MIN_PRIORITY}..{MAX_PRIORITY})")


def _due(text: str) -> float:
    """``--not-before``: a time from now (``10m``), an ISO 8601 time, or epoch seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    when = since(text)  # "10m" there is ago; here it is from now
    return time.time() + when.ago if when.ago is not None else when.cutoff()
