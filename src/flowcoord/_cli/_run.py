"""Running flows from the command line: run, resume, cancel, retry."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio

from .._coord._contract import JobBoard
from .._coord._takeover import take_over
from .._engine._engine import Engine, FlowHandle
from .._journal._contract import JournalBackend
from .._journal._events import FlowRecord
from .._journal._urls import open_journal, redact
from .._model._flow import Flow
from .._model._inputs import convert_inputs
from .._model._workflow import Workflow
from .._states import FlowState, TaskState, is_finished
from ..errors import FlowCancelled, FlowFinished, FlowNotFound, JournalError, OwnershipLost
from ._common import EXIT_FAILED, EXIT_OK, _Interrupted
from ._load import load_flow, parse_inputs
from ._output import _one_line, _Progress, _progress_enabled, log_state_change
from ._worker import open_board_of


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
    flow: Flow | Workflow,
    inputs: dict[str, Any],
    flow_id: str,
    *,
    progress: str,
    as_json: bool,
    flow_spec: str,
    token_bump: bool = False,
    cancel: bool = False,
    fork_from: tuple[str, str] | None = None,
    board: Callable[[], AbstractAsyncContextManager[JobBoard]] | None = None,
    force: bool = False,
    verbose: bool = False,
) -> int:
    """Run (or resume, or take over and cancel, or re-run from a task as a new flow) one flow
    to its end, reporting as it goes. ``token_bump``: take it over (``board`` opens the job
    board whose live claims to respect, ``force`` overrides them)."""
    signals: dict[str, bool] = {}
    started = time.monotonic()
    outcome = None
    error: Exception | None = None
    with anyio.CancelScope() as abort:
        async with Engine(backend) as engine:
            total = None if isinstance(flow, Workflow) else len(engine.compile(flow).task_names)
            done, token = 0, 0  # a plain run: its own flow, nothing to fence
            rec = await backend.get_flow(flow_id)
            if rec is not None:
                rep = await engine.status(flow_id)
                done = sum(1 for t in rep.tasks.values() if t.state is TaskState.SUCCESS)
            elif cancel:
                raise FlowNotFound(f"no flow {flow_id!r} in the journal", flow_id=flow_id)
            bar = _Progress(sys.stderr, _progress_enabled(progress), flow.name, total, done)
            bar.flow_id = flow_id
            engine.add_listener(bar)
            if verbose:
                engine.add_listener(log_state_change)
            if fork_from is not None:
                source, from_task = fork_from
                handle = await engine.fork(flow, source, from_task=from_task, flow_id=flow_id)
            elif token_bump:  # resume / cancel: take it over from whoever ran it
                handle = await _take_over_on(engine, flow, flow_id, board, cancel, force)
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
    inputs = convert_inputs(flow, parse_inputs(args.input or []), text=True)
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
            verbose=bool(args.verbose),
        )
    )


def _journaled_flow(
    args: argparse.Namespace, take_over: str | None = None
) -> tuple[JournalBackend, Flow | Workflow]:
    """The journal (which must exist) and the definition of its flow ``args.flow_id``; with
    ``take_over`` ("resume", "cancel"), a finished flow raises :class:`FlowFinished`."""
    backend = open_journal(args.journal, must_exist=True)

    async def record() -> FlowRecord:
        async with backend:
            rec = await backend.get_flow(args.flow_id)
        if rec is None:
            raise FlowNotFound(
                f"no flow {args.flow_id!r} in the journal {redact(args.journal)}",
                flow_id=args.flow_id,
                hint="list flows with: flowcoord flows list --journal URL",
            )
        return rec

    rec = anyio.run(record)
    if take_over is not None and is_finished(rec.state):  # as Engine.take_over says it
        raise FlowFinished(
            f"flow {args.flow_id} has finished ({rec.state}); there is nothing to {take_over}",
            flow_id=args.flow_id,
            state=rec.state,
        )
    return open_journal(args.journal, must_exist=True), load_flow(args.flow, rec.name)


async def _take_over_on(
    engine: Engine,
    flow: Flow | Workflow,
    flow_id: str,
    board: Callable[[], AbstractAsyncContextManager[JobBoard]] | None,
    cancel: bool,
    force: bool,
) -> FlowHandle:
    """The coordination take-over; the board (if any) is open for the look-up only."""
    if board is None:
        return await take_over(engine, flow, flow_id, board=None, cancel=cancel)
    async with board() as opened:
        return await take_over(engine, flow, flow_id, board=opened, cancel=cancel, force=force)


def _take_over(args: argparse.Namespace, *, cancel: bool) -> int:
    backend, flow = _journaled_flow(args, "cancel" if cancel else "resume")
    board = (lambda: open_board_of(args)) if args.zk else None
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
            board=board,
            force=args.force,
            verbose=bool(args.verbose),
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
            verbose=bool(args.verbose),
        )
    )
