"""The parser and the entry point."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import structlog

from .. import __version__
from .._args import int_in, positive_float, since
from .._journal._urls import URL_FORMS
from .._states import FlowState
from ..errors import FlowcoordError, FlowFinished
from ._common import (
    _ENV_JOURNAL,
    _ENV_TOKEN,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    _Interrupted,
)
from ._compat import cmd_check_compat
from ._events import cmd_flows_send_event
from ._inspect import cmd_flows_history, cmd_flows_list, cmd_flows_show, cmd_graph
from ._jobs import add_jobs_parser
from ._output import _one_line
from ._prune import cmd_flows_prune
from ._run import cmd_flows_cancel, cmd_flows_resume, cmd_flows_retry, cmd_run
from ._serve import cmd_bench, cmd_completion, cmd_demo, cmd_serve, cmd_worker
from ._worker import board_options, worker_arguments

#: Set by :func:`main` when the command line asks for ``--json``: errors are then JSON too.
_json_errors = False


class _Parser(argparse.ArgumentParser):
    """argparse, whose usage errors are one JSON object on stderr under ``--json``."""

    def error(self, message: str) -> NoReturn:
        if _json_errors:
            _print_json_error("UsageError", message, f"see: {self.prog} --help")
            self.exit(EXIT_USAGE)
        super().error(message)


def _print_json_error(kind: str, message: str, hint: str | None) -> None:
    body = {"type": kind, "message": message, "hint": hint}
    print(json.dumps(body, ensure_ascii=False), file=sys.stderr)


def _size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of characters: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a size is 0 or more, got {value}")
    return value


def _port(text: str) -> int:
    return int_in(text, 0, 65535, "a port number (0-65535)")


def _limit(text: str) -> int:
    return int_in(text, 1, 10000, "a number from 1 to 10000")


def _state_completer(**_: Any) -> list[str]:
    return [s.value for s in FlowState]


def _flow_id_completer(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """Flow ids of the journal named so far (completion only: every error is no answer)."""
    from ._inspect import flow_ids

    try:
        return flow_ids(parsed_args.journal, prefix)
    except Exception:
        return []


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


def _flow_id_arg(p: argparse.ArgumentParser) -> None:
    action = p.add_argument("flow_id")
    action.completer = _flow_id_completer  # type: ignore[attr-defined]


def _output_args(p: argparse.ArgumentParser, progress: bool = True) -> None:
    p.add_argument("--json", action="store_true", help="print JSON (errors too, on stderr)")
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
    "naming the owner) unless --force is given. A finished flow is refused with exit 1."
)

_LIST_DESCRIPTION = (
    "List the journal's flows, newest first. The journal is read whole and filtered here "
    "(the backends list by id and filter by one state only), then sorted by creation time."
)


def _verbosity() -> _Parser:
    """``-v`` for every command, before or after its name (counted once where given)."""
    p = _Parser(add_help=False)
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="log engine and task events to stderr (-vv: debug)",
    )
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="flowcoord",
        description="Run, inspect, resume and serve journaled flows.",
    )
    parser.add_argument("--version", action="version", version=f"flowcoord {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log engine and task events to stderr (-vv: debug); also after the command",
    )
    common = [_verbosity()]
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run a flow to its end", parents=common)
    p.add_argument("target", metavar="module:attr", help="a Flow, or a factory returning one")
    p.add_argument(
        "-i",
        "--input",
        action="append",
        metavar="KEY=VALUE",
        help="an input, converted to the annotation of the parameter that takes it "
        "(unannotated: JSON, else text); repeatable",
    )
    p.add_argument("--flow-id", help="the flow's id (a journaled id is resumed)")
    _journal_arg(p, default="memory:")
    _output_args(p)
    p.set_defaults(func=cmd_run)

    flows = sub.add_parser(
        "flows", help="list, show, cancel, resume or retry journaled flows", parents=common
    )
    fsub = flows.add_subparsers(dest="flows_command", required=True, metavar="ACTION")
    p = fsub.add_parser(
        "list", help="list flows, newest first", description=_LIST_DESCRIPTION, parents=common
    )
    _journal_arg(p)
    state = p.add_argument(
        "--state",
        metavar="STATE[,STATE...]",
        help=f"only flows in these states ({', '.join(FlowState)}; any case)",
    )
    state.completer = _state_completer  # type: ignore[attr-defined]
    p.add_argument("--name", metavar="NAME", help="only flows of this name (* and ? match any)")
    p.add_argument(
        "--since",
        type=since,
        metavar="WHEN",
        help="only flows created since WHEN: 30s, 10m, 2h, 3d, 1w ago, or an ISO 8601 time "
        "(2024-05-01T12:00, local unless it names a zone)",
    )
    p.add_argument("--limit", type=_limit, default=50, help="at most this many (default 50)")
    p.add_argument(
        "--after", metavar="FLOW_ID", help="the page after this flow (as printed with --limit)"
    )
    p.add_argument(
        "--watch",
        nargs="?",
        type=positive_float,
        const=2.0,
        metavar="SECONDS",
        help="list again every SECONDS (default 2) until Ctrl-C",
    )
    p.add_argument("--watch-count", type=_limit, help=argparse.SUPPRESS)  # tests: N rounds
    _output_args(p, progress=False)
    p.set_defaults(func=cmd_flows_list)
    p = fsub.add_parser("show", help="show a flow's state and tasks", parents=common)
    _flow_id_arg(p)
    _journal_arg(p)
    _output_args(p, progress=False)
    p.set_defaults(func=cmd_flows_show)
    p = fsub.add_parser(
        "history",
        aliases=["steps"],
        help="a flow's journal, entry by entry (alias: steps)",
        description="Print the flow's journal as a table: each entry's sequence number, "
        "time, kind, task, attempt, the state it records and a short summary of its data "
        "(failures by type and message). --json prints the entries whole.",
        parents=common,
    )
    _flow_id_arg(p)
    _journal_arg(p)
    _output_args(p, progress=False)
    p.set_defaults(func=cmd_flows_history)
    for action, helptext, func in (
        ("resume", "take over an unfinished flow and resume it", cmd_flows_resume),
        ("cancel", "take over an unfinished flow and cancel it (reverting it)", cmd_flows_cancel),
    ):
        p = fsub.add_parser(
            action, help=helptext, description=_TAKE_OVER_DESCRIPTION, parents=common
        )
        _flow_id_arg(p)
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
        "retry",
        help="re-run a finished flow from a task, as a new flow (journaled results kept)",
        parents=common,
    )
    _flow_id_arg(p)
    p.add_argument("--from-task", required=True, metavar="TASK", help="the first task to re-run")
    p.add_argument("--new-id", metavar="FLOW_ID", help="the new flow's id (default: random)")
    _journal_arg(p)
    _flow_arg(p)
    _output_args(p)
    p.set_defaults(func=cmd_flows_retry)
    p = fsub.add_parser(
        "send-event",
        help="send an event to a flow (its workflow's ctx.wait_event(TOPIC) takes it)",
        description="Put an event in the flow's mailbox, durably: the workflow's next "
        "ctx.wait_event(TOPIC) returns its value (the engine running it finds it at once "
        "on PostgreSQL, within about 50 ms on SQLite). Events of a topic are taken in "
        "the order sent, each once; --key makes the send idempotent (a repeated send under "
        "it sends nothing).",
        parents=common,
    )
    _flow_id_arg(p)
    p.add_argument("topic", metavar="TOPIC", help="the event's topic")
    p.add_argument("--value", metavar="JSON", help="the event's value as JSON (default: null)")
    p.add_argument("--key", metavar="KEY", help="an idempotency key (default: a new one)")
    _journal_arg(p)
    _output_args(p, progress=False)
    p.set_defaults(func=cmd_flows_send_event)
    p = fsub.add_parser(
        "prune",
        help="delete the flows that ended before a time (retention)",
        description="Delete every flow that ended (SUCCESS, FAILED, REVERTED, CANCELLED) and "
        "wrote nothing since WHEN: its summary, entries and mailbox. A flow that has not "
        "ended is never touched; an ended child of a flow still running is kept (its parent "
        "may compensate it). Batches of 200, one transaction each.",
        parents=common,
    )
    p.add_argument(
        "--ended-before",
        type=since,
        required=True,
        metavar="WHEN",
        help="30d, 2w, 12h ago, or an ISO 8601 time (local time unless it names a zone)",
    )
    p.add_argument(
        "--limit",
        type=lambda text: int_in(text, 1, None, "a positive integer"),
        metavar="N",
        help="delete at most N flows",
    )
    p.add_argument("--dry-run", action="store_true", help="list what would go, delete nothing")
    _journal_arg(p)
    _output_args(p, progress=False)
    p.set_defaults(func=cmd_flows_prune)

    add_jobs_parser(sub, common)

    p = sub.add_parser("graph", help="print a flow's graph", parents=common)
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
        parents=common,
    )
    p.add_argument("registry", metavar="module:attr", help="a FlowRegistry (the new code)")
    _journal_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON (errors too, on stderr)")
    p.set_defaults(func=cmd_check_compat)

    p = sub.add_parser(
        "serve", help="serve the JSON API and the dashboard (aiohttp)", parents=common
    )
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
    p.add_argument(
        "--redact",
        metavar="module:attr",
        help="a function redact(field, value) -> shown value, for inputs and results the API "
        "and the dashboard show",
    )
    p.add_argument(
        "--max-value-size",
        type=_size,
        default=None,
        metavar="N",
        help="show inputs and results longer than N characters of JSON cut (default 4096; "
        "0: never cut)",
    )
    board_options(
        p,
        required=False,
        zk_help="the job board's ZooKeeper (host:port[,host:port...]): resume and cancel "
        "refuse (409 FlowOwned) a flow whose job a live worker holds, unless asked with "
        "force=true; the API's /jobs, /queues, /members and /trash and the dashboard's "
        "Queues and Members pages show and operate the board. Without --zk no claim is "
        "consulted; the journal fence alone applies",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "worker",
        help="run a conductor: take flows from a ZooKeeper job board",
        description="Take flows from a ZooKeeper job board and run them.",
        parents=common,
    )
    worker_arguments(p)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser(
        "demo",
        help="run the demo (success, rollback, crash and resume)",
        description="Provision a VM on embedded defaults: a success, a rollback, and a crash "
        "followed by a resume.",
        parents=common,
    )
    p.add_argument(
        "journal_path",
        nargs="?",
        metavar="JOURNAL_PATH",
        help="the SQLite journal to write (default: a temporary file, removed at the end)",
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "completion",
        help="print the shell completion script (bash, zsh, fish)",
        description="Print the script that makes the shell complete flowcoord's commands, "
        'options, states and flow ids (argcomplete): eval "$(flowcoord completion bash)" '
        "in ~/.bashrc, or the same with zsh in ~/.zshrc (after compinit).",
        parents=common,
    )
    p.add_argument("shell", choices=("bash", "zsh", "fish"))
    p.set_defaults(func=cmd_completion)

    # the command parses its own options (and --help)
    p = sub.add_parser("bench", help="run the benchmarks (python -m benchmarks)", add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_bench)
    return parser


_PASSTHROUGH = frozenset({cmd_bench})


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


def _complete(parser: argparse.ArgumentParser) -> None:
    """Answer the shell's completion request, if this is one (then the process exits)."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    try:
        import argcomplete
    except ImportError:  # pragma: no cover - a dependency; nothing to offer without it
        return
    argcomplete.autocomplete(parser)


def main(argv: Sequence[str] | None = None) -> int:
    global _json_errors
    words = list(sys.argv[1:] if argv is None else argv)
    _json_errors = "--json" in words[: words.index("--")] if "--" in words else "--json" in words
    parser = build_parser()
    _complete(parser)
    args, extra = parser.parse_known_args(words)
    if extra:
        if args.func not in _PASSTHROUGH:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.args = [*extra, *args.args]
    _json_errors = bool(getattr(args, "json", False))
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
        if isinstance(err, BrokenPipeError):  # the reader went away (| head): end quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_FAILED
        if isinstance(err, FlowFinished):  # said so; not a usage error: the flow's outcome
            _report(err, "flowcoord: ")
            return EXIT_FAILED
        if isinstance(err, (FlowcoordError, ValueError, OSError)):
            _report(err, "flowcoord: error: ")
            return EXIT_USAGE
        raise


def _report(err: BaseException, prefix: str) -> None:
    if _json_errors:
        if isinstance(err, FlowcoordError):
            message, hint = err.message, err.hint
        else:
            message, hint = str(err), None
        _print_json_error(type(err).__name__, _one_line(message), hint)
    else:
        print(f"{prefix}{_one_line(str(err))}", file=sys.stderr)
