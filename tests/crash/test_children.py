"""The crash explorer over flows with child flows: every crash point of the whole family (a
cut between any two durable entries of the parent, the children and the grandchildren), a
second crash in each resume, a fault at every backend write — the family must end as its
uncrashed run ends it, every member in its state, no effect left or lost."""

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


async def _plain(what: str) -> str:
    return what.upper()


async def _bad_undo(what: str) -> None:
    raise RuntimeError(f"cannot undo {what}")


async def _unpublish(vm: str) -> None:
    await anyio.lowlevel.checkpoint()


@fc.task(provides="dns", revert=_unpublish)
async def _publish(vm: str) -> str:
    await anyio.lowlevel.checkpoint()
    return f"dns-{vm}"


def family(
    *,
    fail: bool = False,
    child_fails: bool = False,
    nested: bool = False,
    catch: bool = False,
    undo_fails: bool = False,
) -> fc.Workflow:
    publish = fc.Linear("publish", _publish)

    @fc.workflow(name="disk")
    async def disk(ctx: fc.Context, size: int) -> str:
        d = await ctx.step(_do, f"disk{size}", revert=_bad_undo if undo_fails else _undo)
        if nested:
            await ctx.run(publish, {"vm": d})
        if child_fails:
            await ctx.step(_fail, "format", revert=_undo)
        return d

    @fc.workflow(name="vm")
    async def vm(ctx: fc.Context, size: int) -> dict[str, Any]:
        v = await ctx.step(_do, f"vm{size}", revert=_undo)
        try:
            d = await ctx.run(disk, {"size": size})
        except fc.errors.StepFailed:
            if not catch:
                raise
            d = await ctx.step(_plain, "no-disk")
        label = await ctx.step(_plain, "label")
        if fail:
            await ctx.step(_fail, "publish", revert=_undo)
        return {"vm": v, "disk": d, "label": label}

    return vm


def pattern_parent(*, fail: bool = False) -> fc.Flow:
    @fc.workflow(name="disk")
    async def disk(ctx: fc.Context, vm: str) -> str:
        return await ctx.step(_do, f"disk-{vm}", revert=_undo)

    async def release(size: int) -> None:
        await anyio.lowlevel.checkpoint()

    @fc.task(provides="vm", revert=release)
    async def allocate(size: int) -> str:
        await anyio.lowlevel.checkpoint()
        return f"vm{size}"

    @fc.task
    async def attach(disk: str) -> str:
        await anyio.lowlevel.checkpoint()
        if fail:
            raise RuntimeError("attach fails")
        return disk

    return fc.Linear("order", allocate, fc.child(disk, provides="disk"), attach)


@dataclass
class Case:
    name: str
    make: Callable[[], fc.Workflow | fc.Flow]
    expect: fc.FlowState
    actions: tuple[Action, ...] = field(default_factory=tuple)
    depth: int = 2


CASES = [
    Case("child-succeeds", family, fc.FlowState.SUCCESS),
    Case("parent-fails-after-child", lambda: family(fail=True), fc.FlowState.REVERTED),
    Case("child-fails", lambda: family(child_fails=True), fc.FlowState.REVERTED),
    Case(
        "child-failure-caught", lambda: family(child_fails=True, catch=True), fc.FlowState.SUCCESS
    ),
    Case(  # the child cannot be undone: it ends FAILED, so does its parent
        "child-compensation-fails",
        lambda: family(fail=True, undo_fails=True),
        fc.FlowState.FAILED,
    ),
    Case("grandchild", lambda: family(nested=True, fail=True), fc.FlowState.REVERTED, depth=1),
    Case("pattern-parent", pattern_parent, fc.FlowState.SUCCESS),
    Case("pattern-parent-fails", lambda: pattern_parent(fail=True), fc.FlowState.REVERTED),
    Case(
        "cancel-after-child",
        family,
        fc.FlowState.CANCELLED,
        (Action("cancel", "SUCCESS", task="2:disk"),),
        depth=1,
    ),
]


@pytest.mark.parametrize("journal", ["memory", "sqlite"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_a_family_of_flows_is_crash_exact(case: Case, journal: str, tmp_path: Path) -> None:
    backend = fc.SQLiteJournal(tmp_path / "j.sqlite") if journal == "sqlite" else None
    report = await CrashExplorer(
        case.make, {"size": 2}, journal=backend, depth=case.depth, actions=case.actions
    ).explore()
    print(report)
    record(report)
    assert report.reference is case.expect, report
    assert report.cuts == report.entries  # every entry of every member is a crash point
    assert report.faults > 0
    report.check()


@pytest.mark.postgres
@pytest.mark.parametrize("case", CASES[:2], ids=lambda c: c.name)
async def test_a_family_of_flows_is_crash_exact_on_postgres(case: Case, pg_dsn: str) -> None:
    journal = fc.PostgresJournal(pg_dsn, schema=f"c_{uuid.uuid4().hex[:12]}")
    report = await CrashExplorer(case.make, {"size": 2}, journal=journal, depth=1).explore()
    print(report)
    record(report)
    assert report.reference is case.expect, report
    report.check()
