"""The parser and the entry point."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import structlog

from .. import __version__
from .._args import int_in
from .._journal._urls import URL_FORMS
from ..errors import FlowcoordError
from ._common import _ENV_JOURNAL, _ENV_TOKEN, EXIT_INTERRUPTED, EXIT_USAGE, _Interrupted
from ._compat import cmd_check_compat
from ._inspect import cmd_flows_list, cmd_flows_show, cmd_graph
from ._output import _one_line
from ._run import cmd_flows_cancel, cmd_flows_resume, cmd_flows_retry, cmd_run
from ._serve import cmd_bench, cmd_demo, cmd_serve, cmd_worker
from ._worker import board_options


def _port(text: str) -> int:
    return int_in(text, 0, 65535, "a port number (0-65535)")


def _limit(text: str) -> int:
    return int_in(text, 1, 10000, "a number from 1 to 10000")


def _journal_arg(p: argparse.ArgumentParser, default: str | None = None) -> None:
    env = os.environ.get(_ENV_JOURNAL)
    p.add_argument(
        "--journal",
        metavar="URL",
        default=env or default,
        required=env is None and default is None,
        help=f"journal URL ({URL_FORMS}); default ${_ENV_JOURNAL}"
        + (f" or {default}" if default else ""),
    )


def _output_args(p: argparse.ArgumentParser, progress: bool = True) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")
    if progress:
        p.add_argument(
            "--progress",
            choices=("auto", "always", "never"),
            default="auto",
            help="one-line progress on stderr (auto: when stderr is a terminal)",
        )


def _flow_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--flow",
        required=True,
        metavar="module:attr",
        help="the flow's definition: a Flow, a factory, or a FlowRegistry",
    )


_TAKE_OVER_DESCRIPTION = (
    "Take a journaled, unfinished flow over and run it here to its end: the journal is "
    "fenced with the next token, so whoever ran the flow before can never write to it again. "
    "With --zk, a flow whose job a live worker holds on the job board is refused (exit 2, "
    "naming the owner) unless --force is given."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowcoord",
        description="Run, inspect, resume and serve journaled flows.",
    )
    parser.add_argument("--version", action="version", version=f"flowcoord {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log engine events (-vv: debug)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run a flow to its end")
    p.add_argument("target", metavar="module:attr", help="a Flow, or a factory returning one")
    p.add_argument(
        "-i", "--input", action="append", metavar="KEY=VALUE", help="an input (JSON or text)"
    )
    p.add_argument("--flow-id", help="the flow's id (a journaled id is resumed)")
    _journal_arg(p, default="memory:")
    _output_args(p)
    p.set_defaults(func=cmd_run)

    flows = sub.add_parser("flows", help="list, show, cancel, resume or retry journaled flows")
    fsub = flows.add_subparsers(dest="flows_command", required=True, metavar="ACTION")
    p = fsub.add_parser("list", help="list flows")
    _journal_arg(p)
    p.add_argument("--state", help="only flows in this state")
    p.add_argument("--limit", type=_limit, default=50, help="at most this many (default 50)")
    p.add_argument("--after", metavar="FLOW_ID", help="the page after this flow id")
    _output_args(p, progress=False)
    p.set_defaults(func=cmd_flows_list)
    p = fsub.add_parser("show", help="show a flow's state and tasks")
    p.add_argument("flow_id")
    _journal_arg(p)
    _output_args(p, progress=False)
    p.set_defaults(func=cmd_flows_show)
    for action, helptext, func in (
        ("resume", "take over an unfinished flow and resume it", cmd_flows_resume),
        ("cancel", "take over an unfinished flow and cancel it (reverting it)", cmd_flows_cancel),
    ):
        p = fsub.add_parser(action, help=helptext, description=_TAKE_OVER_DESCRIPTION)
        p.add_argument("flow_id")
        _journal_arg(p)
        _flow_arg(p)
        board_options(
            p,
            required=False,
            zk_help="the job board's ZooKeeper (host:port[,host:port...]): refuse the "
            "take-over while a live worker holds the flow's claim. Without --zk no claim is "
            "consulted; the journal fence alone shuts the previous owner out",
        )
        p.add_argument(
            "--force",
            action="store_true",
            help="with --zk: take over even from a live owner, which is fenced out at its "
            "next journal write (without --zk every take-over fences)",
        )
        _output_args(p)
        p.set_defaults(func=func)
    p = fsub.add_parser(
        "retry", help="re-run a finished flow from a task, as a new flow (journaled results kept)"
    )
    p.add_argument("flow_id")
    p.add_argument("--from-task", required=True, metavar="TASK", help="the first task to re-run")
    p.add_argument("--new-id", metavar="FLOW_ID", help="the new flow's id (default: random)")
    _journal_arg(p)
    _flow_arg(p)
    _output_args(p)
    p.set_defaults(func=cmd_flows_retry)

    p = sub.add_parser("graph", help="print a flow's graph")
    p.add_argument("target", metavar="module:attr", help="a Flow, or a factory returning one")
    p.add_argument("--format", choices=("dot", "mermaid"), default="dot")
    p.set_defaults(func=cmd_graph)

    p = sub.add_parser(
        "check-compat",
        help="would the journal's unfinished flows resume on this code? (exit 1 if not)",
        description="Replay every unfinished flow of the journal against the registry's code "
        "without running a step or writing anything, and list the flows that would not resume "
        "(a workflow step that changed at a position, a pattern flow whose tasks changed, a "
        "flow no longer registered). Run it before a deploy: exit 1 if any would break.",
    )
    p.add_argument("registry", metavar="module:attr", help="a FlowRegistry (the new code)")
    _journal_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_check_compat)

    p = sub.add_parser("serve", help="serve the JSON API and the dashboard (aiohttp)")
    _journal_arg(p)
    p.add_argument("--registry", required=True, metavar="module:attr", help="a FlowRegistry")
    p.add_argument(
        "--token", help=f"bearer token for changes (default ${_ENV_TOKEN}, or generated)"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, default=8080)
    p.add_argument("--prefix", default="/api", help="the API's path prefix")
    p.add_argument("--no-dashboard", action="store_true", help="serve the API only")
    p.add_argument("--protect-reads", action="store_true", help="require the token on reads too")
    board_options(
        p,
        required=False,
        zk_help="the job board's ZooKeeper (host:port[,host:port...]): resume and cancel "
        "refuse (409 FlowOwned) a flow whose job a live worker holds, unless asked with "
        "force=true. Without --zk no claim is consulted; the journal fence alone applies",
    )
    p.set_defaults(func=cmd_serve)

    for name, helptext, func in (
        ("demo", "run the demo (success, rollback, crash and resume)", cmd_demo),
        ("bench", "run the benchmarks (python -m benchmarks)", cmd_bench),
        ("worker", "run a conductor: take flows from a ZooKeeper job board", cmd_worker),
    ):
        # the command parses its own options (and --help)
        p = sub.add_parser(name, help=helptext, add_help=False)
        p.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        p.set_defaults(func=func)
    return parser


_PASSTHROUGH = frozenset({cmd_demo, cmd_bench, cmd_worker})


def _configure_logging(verbose: int) -> None:
    level = (logging.ERROR, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def _unwrap(exc: BaseException) -> BaseException:
    """The one error inside task-group wrappers (a :class:`FlowFailed` stays whole)."""
    while (
        isinstance(exc, BaseExceptionGroup)
        and not isinstance(exc, FlowcoordError)
        and len(exc.exceptions) == 1
    ):
        exc = exc.exceptions[0]
    return exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.func not in _PASSTHROUGH:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.args = [*extra, *args.args]
    _configure_logging(args.verbose)
    try:
        return int(args.func(args))
    except BaseException as exc:
        err = _unwrap(exc)
        if isinstance(err, _Interrupted):
            print(f"flowcoord: {err}", file=sys.stderr)
            return EXIT_INTERRUPTED
        if isinstance(err, KeyboardInterrupt):
            print("flowcoord: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        if isinstance(err, (FlowcoordError, ValueError, OSError)):
            print(f"flowcoord: error: {_one_line(str(err))}", file=sys.stderr)
            return EXIT_USAGE
        raise
