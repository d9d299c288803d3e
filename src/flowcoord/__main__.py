"""The ``flowcoord`` command: run, inspect, resume and serve flows.

``flowcoord run pkg.flows:build_provision --input size=2 --journal sqlite:///var/lib/j.sqlite``
``flowcoord flows list --journal ...``, ``flowcoord serve --registry pkg.flows:registry ...``.
Exit codes: 0 done, 1 the flow failed (it was reverted), 2 bad usage or configuration, or a
journal that cannot be reached, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

import anyio
import structlog

from . import __version__
from ._engine._engine import Engine, FlowHandle
from ._flow import Flow
from ._graph_export import to_dot, to_mermaid
from ._journal._contract import JournalBackend
from ._journal._events import FlowRecord
from ._journal._replay import FlowReplay, replay
from ._registry import FlowRegistry
from ._states import FlowState, StateChange, TaskState
from ._urls import URL_FORMS, open_journal, redact
from ._views import record_view, status_view
from .errors import (
    ConfigurationError,
    FlowCancelled,
    FlowcoordError,
    FlowNotFound,
    JournalError,
    OwnershipLost,
)

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_ENV_JOURNAL = "FLOWCOORD_JOURNAL"
_ENV_TOKEN = "FLOWCOORD_TOKEN"


class _Interrupted(Exception):
    """The user pressed Ctrl-C; the message says how to carry on."""


# -- loading user code ------------------------------------------------------------------------


def load_object(spec: str) -> Any:
    """Import ``module:attr`` (``attr`` may be dotted). The working directory is importable."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigurationError(
            f"{spec!r} is not of the form module:attr", hint="e.g. myapp.flows:build_provision"
        )
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise ConfigurationError(
                f"cannot import module {module_name!r} (no module named {missing!r})",
                hint="check the name; the current directory and PYTHONPATH are searched",
            ) from None
        raise ConfigurationError(f"importing {module_name!r} failed: {exc}") from None
    except Exception as exc:
        raise ConfigurationError(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigurationError(
                f"module {module_name!r} has no attribute {attr!r}",
                hint="name a Flow, a zero-argument function returning one, or a FlowRegistry",
            ) from None
    return obj


def _call_factory(spec: str, obj: Any) -> Any:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        required = [
            p
            for p in sig.parameters.values()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if required:
            raise ConfigurationError(
                f"{spec} needs arguments ({', '.join(p.name for p in required)})",
                hint="name a Flow or a factory that takes no arguments",
            )
    try:
        return obj()
    except FlowcoordError:
        raise
    except Exception as exc:
        raise ConfigurationError(f"calling {spec} failed: {type(exc).__name__}: {exc}") from None


def load_flow(spec: str, name: str | None = None) -> Flow:
    """The flow that ``spec`` names: a Flow, a zero-argument factory of one, or a
    FlowRegistry (then ``name`` picks the flow)."""
    obj = load_object(spec)
    if isinstance(obj, FlowRegistry):
        if name is None:
            raise ConfigurationError(
                f"{spec} is a FlowRegistry", hint="name a flow: module:attr of a Flow or factory"
            )
        return obj.build(name)
    flow = obj if isinstance(obj, Flow) else _call_factory(spec, obj) if callable(obj) else obj
    if not isinstance(flow, Flow):
        raise ConfigurationError(
            f"{spec} is {type(flow).__name__}, not a flowcoord.Flow",
            hint="name a Flow, or a zero-argument function returning one",
        )
    return flow


def load_registry(spec: str) -> FlowRegistry:
    obj = load_object(spec)
    if not isinstance(obj, FlowRegistry) and callable(obj):
        obj = _call_factory(spec, obj)
    if not isinstance(obj, FlowRegistry):
        raise ConfigurationError(
            f"{spec} is {type(obj).__name__}, not a flowcoord.FlowRegistry",
            hint="name a FlowRegistry, or a zero-argument function returning one",
        )
    return obj


def parse_inputs(pairs: Sequence[str]) -> dict[str, Any]:
    """``k=v`` pairs; ``v`` is read as JSON when it parses (``2``, ``true``, ``[1]``, ``"2"``),
    as a plain string otherwise."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigurationError(
                f"--input {pair!r} is not key=value", hint="e.g. --input size=2 --input name=db-1"
            )
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


# -- output -----------------------------------------------------------------------------------


def _ts(t: float | None) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S") if t else "-"


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    return f"{seconds:.2f}s" if seconds < 120 else f"{seconds / 60:.1f}min"


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _Progress:
    """A one-line ``done/total`` display on stderr, fed by the engine's state listener."""

    def __init__(self, out: TextIO, enabled: bool, name: str, total: int, done: int) -> None:
        self.out, self.enabled, self.name = out, enabled, name
        self.total, self.done, self.running = total, done, 0
        self.flow_id = ""
        self.state = "PENDING"
        self._start = time.monotonic()
        self._last = 0.0
        self._width = 0

    def __call__(self, change: StateChange) -> None:
        if self.flow_id and change.flow_id != self.flow_id:
            return
        if change.task is None:
            self.state = change.new
        else:
            ok, run = TaskState.SUCCESS.value, TaskState.RUNNING.value
            self.done += (change.new == ok) - (change.old == ok)
            self.running += (change.new == run) - (change.old == run)
        self._draw()

    async def tick(self) -> None:
        """Redraw twice a second, so the elapsed time moves during long tasks."""
        while True:
            await anyio.sleep(0.5)
            self._draw()

    def _draw(self, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self._start < 0.5):
            return  # short runs print nothing
        if not final and now - self._last < 0.1:
            return
        self._last = now
        line = (
            f"{self.name}: {self.done}/{self.total} tasks done, {self.running} running "
            f"[{self.state}] {now - self._start:.1f}s"
        )
        self.out.write("\r" + line.ljust(self._width))
        self._width = len(line)
        self.out.flush()

    def close(self) -> None:
        if self._width:
            self._draw(final=True)
            self.out.write("\n")
            self.out.flush()


def _progress_enabled(mode: str) -> bool:
    if mode == "always":
        return True
    return mode == "auto" and sys.stderr.isatty()


# -- running flows ----------------------------------------------------------------------------


async def _watch_signals(
    handle: FlowHandle, abort: anyio.CancelScope, state: dict[str, bool]
) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            if not state.get("stopping"):
                state["stopping"] = True
                print(
                    "\nflowcoord: stopping after the running tasks finish "
                    "(press Ctrl-C again to abort them)",
                    file=sys.stderr,
                )
                handle.stop()
            else:
                state["aborted"] = True
                abort.cancel()
                return


async def _drive(
    backend: JournalBackend,
    url: str,
    flow: Flow,
    inputs: dict[str, Any],
    flow_id: str,
    *,
    progress: str,
    as_json: bool,
    flow_spec: str,
    token_bump: bool = False,
    cancel: bool = False,
    fork_from: tuple[str, str] | None = None,
) -> int:
    """Run (or resume, or take over and cancel, or re-run from a task as a new flow) one flow
    to its end, reporting as it goes."""
    signals: dict[str, bool] = {}
    started = time.monotonic()
    outcome = None
    error: Exception | None = None
    with anyio.CancelScope() as abort:
        async with Engine(backend) as engine:
            plan = engine.compile(flow)
            done, token = 0, 0
            rec = await backend.get_flow(flow_id)
            if rec is not None:
                rep = await engine.status(flow_id)
                done = sum(1 for t in rep.tasks.values() if t.state is TaskState.SUCCESS)
                token = rec.token + 1 if token_bump else 0
            elif cancel:
                raise FlowNotFound(f"no flow {flow_id!r} in the journal", flow_id=flow_id)
            bar = _Progress(
                sys.stderr, _progress_enabled(progress), flow.name, len(plan.task_names), done
            )
            bar.flow_id = flow_id
            engine.add_listener(bar)
            if fork_from is not None:
                source, from_task = fork_from
                handle = await engine.fork(flow, source, from_task=from_task, flow_id=flow_id)
            else:
                handle = await engine.start(flow, inputs, flow_id=flow_id, token=token)
            if cancel:
                handle.cancel()
            async with anyio.create_task_group() as tg:
                tg.start_soon(_watch_signals, handle, abort, signals)
                if bar.enabled:
                    tg.start_soon(bar.tick)
                try:
                    outcome = await handle.wait()
                except Exception as exc:
                    error = exc
                finally:
                    bar.close()
                    tg.cancel_scope.cancel()
            if isinstance(error, (JournalError, OwnershipLost)):
                raise error
            rep = await engine.status(flow_id)
    elapsed = time.monotonic() - started
    resume_hint = (
        ""
        if url.strip().lower().startswith("memory")
        else f"; resume it with: flowcoord flows resume {flow_id} --journal {redact(url)} "
        f"--flow {flow_spec}"
    )
    if abort.cancelled_caught or signals.get("aborted"):
        raise _Interrupted(f"aborted: flow {flow_id} was interrupted mid-task{resume_hint}")
    if signals.get("stopping") and isinstance(error, FlowCancelled):
        raise _Interrupted(f"stopped: flow {flow_id} is {rep.state.value}{resume_hint}")
    summary = f"flow {flow_id} ({flow.name}): {rep.state.value} in {elapsed:.2f}s"
    if as_json:
        body: dict[str, Any] = {"flow_id": flow_id, "name": flow.name, "state": rep.state.value}
        if outcome is not None:
            body["store"] = dict(outcome.store)
        else:
            body["error"] = _one_line(str(error))
            body["failures"] = {k: str(f) for k, f in rep.failures.items()}
        print(json.dumps(body, default=repr, ensure_ascii=False))
    if outcome is not None:
        if not as_json:
            print(summary)
            print(json.dumps(dict(outcome.store), default=repr, indent=2, ensure_ascii=False))
        return EXIT_OK
    assert error is not None
    if cancel and rep.state is FlowState.CANCELLED:
        if not as_json:
            print(summary)
        return EXIT_OK
    reason = "; ".join(f"{k}: {f}" for k, f in rep.failures.items()) or _one_line(str(error))
    print(f"flowcoord: {summary}: {_one_line(reason)}", file=sys.stderr)
    return EXIT_FAILED


def cmd_run(args: argparse.Namespace) -> int:
    flow = load_flow(args.target)
    inputs = parse_inputs(args.input or [])
    backend = open_journal(args.journal)
    flow_id = args.flow_id or uuid.uuid4().hex
    return anyio.run(
        lambda: _drive(
            backend,
            args.journal,
            flow,
            inputs,
            flow_id,
            progress=args.progress,
            as_json=args.json,
            flow_spec=args.target,
        )
    )


def _journaled_flow(args: argparse.Namespace) -> tuple[JournalBackend, Flow]:
    backend = open_journal(args.journal)

    async def name_of() -> str:
        async with backend:
            rec = await backend.get_flow(args.flow_id)
        if rec is None:
            raise FlowNotFound(
                f"no flow {args.flow_id!r} in the journal {redact(args.journal)}",
                flow_id=args.flow_id,
                hint="list flows with: flowcoord flows list --journal URL",
            )
        return rec.name

    name = anyio.run(name_of)
    return open_journal(args.journal), load_flow(args.flow, name)


def _take_over(args: argparse.Namespace, *, cancel: bool) -> int:
    backend, flow = _journaled_flow(args)
    return anyio.run(
        lambda: _drive(
            backend,
            args.journal,
            flow,
            {},
            args.flow_id,
            progress=args.progress,
            as_json=args.json,
            flow_spec=args.flow,
            token_bump=True,
            cancel=cancel,
        )
    )


def cmd_flows_resume(args: argparse.Namespace) -> int:
    return _take_over(args, cancel=False)


def cmd_flows_cancel(args: argparse.Namespace) -> int:
    return _take_over(args, cancel=True)


def cmd_flows_retry(args: argparse.Namespace) -> int:
    backend, flow = _journaled_flow(args)
    new_id = args.new_id or uuid.uuid4().hex
    return anyio.run(
        lambda: _drive(
            backend,
            args.journal,
            flow,
            {},
            new_id,
            progress=args.progress,
            as_json=args.json,
            flow_spec=args.flow,
            fork_from=(args.flow_id, args.from_task),
        )
    )


# -- inspecting -------------------------------------------------------------------------------


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
    sys.stdout.write(to_dot(flow) if args.format == "dot" else to_mermaid(flow))
    return EXIT_OK


# -- serving and the rest ---------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from aiohttp import web

        from .aiohttp import create_app
    except ImportError as exc:
        raise ConfigurationError(
            f"'flowcoord serve' needs aiohttp ({exc})",
            hint="pip install 'flowcoord[aiohttp]'",
        ) from None
    registry = load_registry(args.registry)
    open_journal(args.journal)  # a bad URL fails here, before the server starts
    token = args.token or os.environ.get(_ENV_TOKEN) or None
    if token is None:
        token = secrets.token_urlsafe(24)
        print(
            f"flowcoord: generated API token: {token} (set --token or {_ENV_TOKEN} to choose)",
            file=sys.stderr,
        )
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    app = create_app(
        registry=registry,
        token=token,
        engine_factory=lambda: Engine(open_journal(args.journal)),
        prefix=args.prefix,
        dashboard=not args.no_dashboard,
        protect_reads=args.protect_reads,
    )
    host = args.host
    shown = f"[{host}]" if ":" in host else host
    try:
        web.run_app(
            app,
            host=host,
            port=args.port,
            print=lambda _: print(
                f"flowcoord: serving {len(registry)} flow(s) on http://{shown}:{args.port}/ "
                f"(journal {redact(args.journal)}; Ctrl-C to stop)",
                file=sys.stderr,
            ),
        )
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve on {host}:{args.port}: {exc.strerror or exc}"
        ) from None
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        demo = importlib.import_module("flowcoord._demo")
    except ModuleNotFoundError:
        print("flowcoord: the demo is not part of this build", file=sys.stderr)
        return EXIT_USAGE
    result = demo.main(list(args.args))
    return int(result or 0)


def cmd_bench(args: argparse.Namespace) -> int:
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if importlib.util.find_spec("benchmarks") is None:
        print(
            "flowcoord: no 'benchmarks' package here; run 'flowcoord bench' from a flowcoord "
            "source checkout",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return subprocess.call([sys.executable, "-m", "benchmarks", *args.args])


def cmd_worker(args: argparse.Namespace) -> int:
    from ._worker import run_worker, worker_options

    opts = worker_options(args.args)  # bad usage exits with status 2
    if opts.gc_threshold:
        import gc

        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(opts.gc_threshold, max(gen1, 20), max(gen2, 20))
    registry = load_registry(opts.registry)
    backend = open_journal(opts.journal)
    anyio.run(
        lambda: run_worker(
            zk_hosts=opts.zk,
            namespace=opts.namespace,
            journal=backend,
            registry=registry,
            name=opts.name,
            capacity=opts.capacity,
            session_timeout=opts.session_timeout,
            path=opts.board,
            shutdown_timeout=opts.shutdown_timeout,
            auth=("digest", opts.zk_auth) if opts.zk_auth else None,
        )
    )
    return EXIT_OK  # stopped by SIGTERM/SIGINT, its jobs handed over


# -- the parser -------------------------------------------------------------------------------


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return port


def _limit(text: str) -> int:
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if not 1 <= limit <= 10000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 1 to 10000")
    return limit


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
        ("resume", "resume an unfinished flow from its journal", cmd_flows_resume),
        ("cancel", "take over an unfinished flow and cancel it (reverting it)", cmd_flows_cancel),
    ):
        p = fsub.add_parser(action, help=helptext)
        p.add_argument("flow_id")
        _journal_arg(p)
        _flow_arg(p)
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


if __name__ == "__main__":
    sys.exit(main())
