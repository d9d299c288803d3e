"""``flowcoord worker``'s options: parsed here, run by
:func:`flowcoord.coordination.run_worker`."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from .._args import int_in, positive_float
from .._coord._queueing import QUEUE_NAME_RULE, check_queue_name, check_rate_limit

if TYPE_CHECKING:
    from .._coord._zk_board import ZooKeeperJobBoard

__all__ = [
    "board_options",
    "open_board_of",
    "queue_settings",
    "worker_arguments",
    "worker_options",
    "worker_parser",
]

# The ZooKeeper modules load when a board is opened, not with the parser (every command
# builds it): --board's default is filled in then (_coord._workers.DEFAULT_BOARD_PATH).
_BOARD_HELP = "board path in the namespace (/board)"


def board_options(p: argparse.ArgumentParser, *, required: bool, zk_help: str) -> None:
    """Where the job board is: ``--zk``, ``--namespace``, ``--board``, ``--zk-auth`` (the
    worker's options, shared by ``flows resume|cancel`` and ``serve``)."""
    p.add_argument("--zk", required=required, metavar="HOSTS", help=zk_help)
    p.add_argument("--namespace", default="/flowcoord", help="ZooKeeper chroot (/flowcoord)")
    p.add_argument("--board", help=_BOARD_HELP)
    p.add_argument(
        "--zk-auth",
        metavar="USER:PASS",
        default=os.environ.get("FLOWCOORD_ZK_AUTH"),
        help="ZooKeeper digest credentials (or $FLOWCOORD_ZK_AUTH); nodes get a digest ACL",
    )


def board_path(opts: argparse.Namespace) -> str:
    """``--board``, or the default board path."""
    from .._coord._workers import DEFAULT_BOARD_PATH

    return str(opts.board or DEFAULT_BOARD_PATH)


def zk_auth(opts: argparse.Namespace) -> tuple[str, str] | None:
    """``--zk-auth`` as a session's ``auth``."""
    return ("digest", opts.zk_auth) if opts.zk_auth else None


def open_board_of(opts: argparse.Namespace) -> AbstractAsyncContextManager[ZooKeeperJobBoard]:
    """The job board ``board_options`` name, on a session of its own (``async with``)."""
    from .._coord._workers import open_board

    return open_board(
        zk_hosts=opts.zk, namespace=opts.namespace, auth=zk_auth(opts), path=board_path(opts)
    )


def worker_parser(prog: str = "flowcoord worker") -> argparse.ArgumentParser:
    """The ``flowcoord worker`` options (parsed by the CLI, run by :func:`run_worker`)."""
    p = argparse.ArgumentParser(
        prog=prog, description="Take flows from a ZooKeeper job board and run them."
    )
    worker_arguments(p)
    p.add_argument("-v", "--verbose", action="count", default=0, help="log task events")
    return p


def worker_arguments(p: argparse.ArgumentParser) -> None:
    """Add the worker's options to ``p`` (the command's ``worker`` and :func:`worker_parser`)."""
    board_options(p, required=True, zk_help="host:port[,host:port...]")
    p.add_argument("--journal", required=True, metavar="URL", help="the journal's URL")
    p.add_argument("--registry", required=True, metavar="module:attr", help="a FlowRegistry")
    p.add_argument("--capacity", type=_positive_int, default=10, help="jobs at once (10)")
    p.add_argument("--name", help="member name (default: host-pid)")
    p.add_argument(
        "--session-timeout", type=positive_float, default=10.0, metavar="S", help="seconds (10)"
    )
    p.add_argument(
        "--gc-threshold",
        type=_positive_int,
        metavar="N",
        help="raise the garbage collector's first threshold to N (e.g. 20000): far fewer "
        "full collections when many flows start at once; Python's default is 700",
    )
    p.add_argument(
        "--max-claims",
        type=_positive_int,
        default=5,
        metavar="N",
        help="trash a job claimed more than N times without finishing, i.e. whose owners "
        "kept dying (5). A job re-claimed after its owner died runs alone, so a poison job "
        "is charged its own deaths and the jobs beside it survive; keep N >= 2",
    )
    p.add_argument(
        "--max-failures",
        type=_positive_int,
        default=3,
        metavar="N",
        help="trash a job given up after journal errors N times (3)",
    )
    p.add_argument(
        "--max-waiting",
        type=lambda text: int_in(text, 0, None, "an integer of at least 0"),
        default=100,
        metavar="N",
        help="hold at most N jobs whose workflows only wait (ctx.sleep, ctx.wait_event) "
        "besides --capacity busy ones: a waiting job keeps its claim, not its slot (100; "
        "0: it keeps its slot)",
    )
    p.add_argument(
        "--hand-back-after",
        type=_hand_back_after,
        default=60.0,
        metavar="SECONDS",
        help="a workflow that only sleeps (ctx.sleep, no event wait) and wakes SECONDS from "
        "now or later is stopped and its job handed back to the board until it wakes: no "
        "claim, memory or slot held meanwhile; any worker resumes it when due (60; 'never': "
        "keep every sleeper)",
    )
    p.add_argument(
        "--queue",
        action="append",
        type=_queue_name,
        metavar="NAME",
        help="serve this queue (repeat for several; default: 'default'); a queue the board "
        "does not have yet is declared, without a limit",
    )
    p.add_argument(
        "--queue-limit",
        action="append",
        type=_queue_limit,
        metavar="NAME=N",
        help="at most N jobs of queue NAME run at once across every worker of the board "
        "(set on the board when this worker starts; the last worker to set it wins)",
    )
    p.add_argument(
        "--partition-limit",
        action="append",
        type=_queue_limit,
        metavar="NAME=N",
        help="at most N jobs of queue NAME with one partition key run at once across the "
        "board (jobs without a partition: no such limit; set on the board as --queue-limit)",
    )
    p.add_argument(
        "--rate-limit",
        action="append",
        type=_rate_limit,
        metavar="NAME=COUNT/PERIOD",
        help="at most COUNT jobs of queue NAME start in any PERIOD seconds across the board, "
        "e.g. emails=10/1 (set on the board as --queue-limit)",
    )
    p.add_argument(
        "--worker-limit",
        action="append",
        type=_queue_limit,
        metavar="NAME=N",
        help="at most N jobs of queue NAME run at once on this worker (within --capacity)",
    )
    p.add_argument(
        "--shutdown-timeout",
        type=positive_float,
        default=30.0,
        metavar="S",
        help="on SIGTERM, wait this long for running tasks before aborting them (30)",
    )
    p.add_argument(
        "--metrics-port",
        type=_positive_int,
        metavar="PORT",
        help="serve Prometheus metrics on http://127.0.0.1:PORT/metrics (needs the "
        "prometheus extra)",
    )


def worker_options(argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``flowcoord worker`` arguments (exits with status 2 on bad usage)."""
    parser = worker_parser()
    opts = parser.parse_args(list(argv))
    opts.board = board_path(opts)
    try:
        queue_settings(opts)
    except ValueError as exc:
        parser.error(str(exc))
    return opts


def queue_settings(opts: argparse.Namespace) -> dict[str, Any]:
    """``--queue``, ``--queue-limit`` and ``--worker-limit`` as :func:`run_worker`'s
    ``queues``, ``queue_limits`` and ``worker_limits``, and ``--partition-limit`` and
    ``--rate-limit`` as its ``partition_limits`` and ``rate_limits`` when given (ValueError: a
    limit for a queue the worker does not serve)."""
    queues = list(dict.fromkeys(getattr(opts, "queue", None) or ["default"]))
    out: dict[str, Any] = {"queues": queues}
    options = [
        ("queue_limit", "queue_limits"),
        ("worker_limit", "worker_limits"),
        ("partition_limit", "partition_limits"),
        ("rate_limit", "rate_limits"),
    ]
    for option, key in options:
        limits = dict(getattr(opts, option, None) or [])
        if not limits and key in ("partition_limits", "rate_limits"):
            continue
        for name in limits:
            if name not in queues:
                flag = "--" + option.replace("_", "-")
                raise ValueError(f"{flag} {name}=...: this worker does not serve queue {name!r}")
        out[key] = limits
    return out


def _positive_int(text: str) -> int:
    return int_in(text, 1, None, "a positive integer")


def _hand_back_after(text: str) -> float | None:
    if text == "never":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds of at least 0, nor 'never'"
        )
    return value


def _queue_name(text: str) -> str:
    try:
        return check_queue_name(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a queue name ({QUEUE_NAME_RULE})"
        ) from None


def _rate_limit(text: str) -> tuple[str, tuple[int, float]]:
    name, sep, rate = text.partition("=")
    count, slash, period = rate.partition("/")
    try:
        if not (sep and slash and count.isdigit()):
            raise ValueError(text)
        checked = check_rate_limit((int(count), float(period.removesuffix("s"))), "rate")
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not NAME=COUNT/PERIOD (COUNT a positive integer, PERIOD seconds "
            "above 0), e.g. emails=10/1"
        ) from None
    assert checked is not None
    return _queue_name(name), checked


def _queue_limit(text: str) -> tuple[str, int]:
    name, sep, limit = text.partition("=")
    if not sep or not limit.isdigit() or int(limit) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=N with N a positive integer")
    return _queue_name(name), int(limit)
