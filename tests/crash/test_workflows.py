"""The crash explorer over code-first workflows: every journal cut (and every second cut of
the resume), a fault at every backend write, and cancel / stop at chosen steps must leave each
workflow as its uncrashed run leaves it — on the in-memory journal and on SQLite."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.lowlevel
import pytest

import flowcoord as fc
from flowcoord.testing import Action, CrashExplorer

from .conftest import record

pytestmark = pytest.mark.anyio


async def _do(what: str) -> str:
    await anyio.lowlevel.checkpoint()
    return f"{what}!"


async def _undo(what: str, result: str | None) -> None:
    await anyio.lowlevel.checkpoint()


async def _fail(what: str) -> str:
    await anyio.lowlevel.checkpoint()
    raise RuntimeError(f"{what} fails")


async def _bad_undo(what: str) -> None:
    raise RuntimeError(f"cannot undo {what}")


async def _plain(what: str) -> str:  # no compensation: an irreversible step
    return what.upper()


async def _flaky(what: str, ok: bool) -> str:
    await anyio.lowlevel.checkpoint()
    if not ok:
        raise ConnectionError(f"{what} not yet")
    return what


def saga(
    *,
    fail: bool = False,
    undo_fails: bool = False,
    catch: bool = False,
    flaky: bool = False,
    flaky_plain: bool = False,
    nap: bool = False,
    wait: bool = False,
) -> fc.Workflow:
    @fc.workflow(name="saga")
    async def wf(ctx: fc.Context, size: int) -> dict[str, Any]:
        vm = await ctx.step(_do, f"vm{size}", revert=_undo)
        ip, disk = await ctx.gather(
            ctx.step(_do, "ip", revert=_bad_undo if undo_fails else _undo),
            ctx.step(_do, "disk", revert=_undo),
        )
        label = await ctx.step(_plain, "label")
        if nap:  # a durable sleep: its wake-up time is one more entry to cut at
            await ctx.sleep(0.001)
        if wait:  # an event nobody sends: the timeout is journaled (None), then used
            label = str(await ctx.wait_event("go", timeout=0.001)) + label
        if flaky:
            retry = fc.ForEach([False, False, True], provides="ok")
            label = await ctx.step(_flaky, "dns", revert=_undo, retry=retry)
        if flaky_plain:  # retried, no compensation: each attempt is one task.failed entry
            await ctx.step(_flaky, "mx", retry=fc.ForEach([False, True], provides="ok"))
        if ctx.patched("v2"):
            await ctx.step(_do, "audit", revert=_undo)
        if catch:
            try:
                await ctx.step(_fail, "optional", revert=_undo)
            except fc.errors.StepFailed:
                label = await ctx.step(_plain, "fallback")
        if fail:
            await ctx.step(_fail, "publish", revert=_undo)
        return {"vm": vm, "ip": ip, "disk": disk, "label": label}

    return wf


@dataclass
class Case:
    name: str
    make: Callable[[], fc.Workflow]
    expect: fc.FlowState
    actions: tuple[Action, ...] = field(default_factory=tuple)
    depth: int = 2


CASES = [
    Case("success", saga, fc.FlowState.SUCCESS),
    Case("step-fails", lambda: saga(fail=True), fc.FlowState.REVERTED),
    Case("compensation-fails", lambda: saga(fail=True, undo_fails=True), fc.FlowState.FAILED),
    Case("failure-caught", lambda: saga(catch=True), fc.FlowState.SUCCESS),
    Case("retried-step", lambda: saga(flaky=True), fc.FlowState.SUCCESS),
    Case("retried-then-fails", lambda: saga(flaky=True, fail=True), fc.FlowState.REVERTED),
    Case("retried-plain-step", lambda: saga(flaky_plain=True), fc.FlowState.SUCCESS),
    Case("durable-sleep", lambda: saga(nap=True), fc.FlowState.SUCCESS),
    Case("sleep-then-fails", lambda: saga(nap=True, fail=True), fc.FlowState.REVERTED),
    Case("event-timeout", lambda: saga(wait=True), fc.FlowState.SUCCESS),
    Case(
        "cancel-at-a-step",
        saga,
        fc.FlowState.CANCELLED,
        (Action("cancel", "RUNNING", task="4:_plain"),),
        depth=1,
    ),
    Case(
        "stop-at-a-step",
        saga,
        fc.FlowState.SUCCESS,
        (Action("stop", "RUNNING", task="2:_do"),),
        depth=1,
    ),
    Case(  # what a conductor's hand-back does: the run stops at its sleep, resumed later
        "stop-at-a-sleep",
        lambda: saga(nap=True),
        fc.FlowState.SUCCESS,
        (Action("stop", "RUNNING", task="4:_plain"),),
        depth=1,
    ),
]


@pytest.mark.parametrize("journal", ["memory", "sqlite"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_workflow_is_crash_exact(case: Case, journal: str, tmp_path: Path) -> None:
    backend = fc.SQLiteJournal(tmp_path / "j.sqlite") if journal == "sqlite" else None
    report = await CrashExplorer(
        case.make, {"size": 2}, journal=backend, depth=case.depth, actions=case.actions
    ).explore()
    print(report)
    record(report)
    assert report.reference is case.expect, report
    assert report.cuts == report.entries
    assert report.faults > 0
    report.check()


@pytest.mark.postgres
@pytest.mark.parametrize("case", CASES[:3], ids=lambda c: c.name)
async def test_workflow_is_crash_exact_on_postgres(case: Case, pg_dsn: str) -> None:
    journal = fc.PostgresJournal(pg_dsn, schema=f"w_{uuid.uuid4().hex[:12]}")
    report = await CrashExplorer(case.make, {"size": 2}, journal=journal, depth=1).explore()
    print(report)
    record(report)
    assert report.reference is case.expect, report
    report.check()


@pytest.mark.parametrize(
    "case", [CASES[0], CASES[1], CASES[4], CASES[5], CASES[6], CASES[7]], ids=lambda c: c.name
)
async def test_a_workflow_with_checkpoints_is_crash_exact(case: Case, tmp_path: Path) -> None:
    # a checkpoint every 2 successes: resumes read through them at every cut
    report = await CrashExplorer(
        case.make,
        {"size": 2},
        journal=fc.SQLiteJournal(tmp_path / "j.sqlite"),
        depth=case.depth,
        actions=case.actions,
        checkpoint_every=2,
    ).explore()
    print(report)
    record(report)
    assert report.reference is case.expect, report
    report.check()
