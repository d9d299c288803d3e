"""Flows the crash explorer runs in CI: every pattern, retry decision, failing reverts,
timeouts, and control calls (cancel / suspend / stop) at chosen points.

Task behaviour depends only on inputs (a ForEach value says which attempt fails), so a
resumed process behaves as the crashed one would have."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel

import flowcoord as fc
from flowcoord.testing import Action


def _task(
    name: str,
    *,
    provides: str | None = None,
    requires: dict[str, str] | None = None,
    fail_when: Callable[[dict[str, Any]], bool] | None = None,
    revert: bool = True,
    revert_fails: bool = False,
    steps: int = 1,
    sleep: float = 0.0,
    timeout: float | None = None,
) -> fc.Task:
    args = dict(requires or {})

    async def body(**kw: Any) -> Any:
        for _ in range(steps):
            await anyio.lowlevel.checkpoint()
        if sleep:
            await anyio.sleep(sleep)
        if fail_when is not None and fail_when(kw):
            raise RuntimeError(f"{name} fails")
        return f"{name}({','.join(str(kw[k]) for k in sorted(kw))})"

    async def undo(**kw: Any) -> None:
        await anyio.lowlevel.checkpoint()
        if revert_fails:
            raise RuntimeError(f"revert of {name} fails")

    body.__signature__ = _signature(list(args))  # type: ignore[attr-defined]
    return fc.FunctionTask(
        body,
        name,
        provides=provides,
        rebind=dict(args) or None,
        revert=undo if revert else None,
        timeout=timeout,
    )


def _signature(names: list[str]) -> Any:
    import inspect

    return inspect.Signature([inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in names])


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], fc.Flow]
    inputs: dict[str, Any] = field(default_factory=dict)
    actions: tuple[Action, ...] = ()
    depth: int = 2
    expect: fc.FlowState = fc.FlowState.SUCCESS


def _linear() -> fc.Flow:
    return fc.Linear(
        "linear",
        _task("a", provides="a"),
        _task("b", provides="b", requires={"x": "a"}),
        _task("c", requires={"y": "b"}, revert=False),
    )


def _unordered() -> fc.Flow:
    return fc.Unordered("unordered", *(_task(f"u{i}", steps=i) for i in range(4)))


def _graph() -> fc.Flow:
    return fc.Graph(
        "graph",
        _task("top", provides="top"),
        _task("left", provides="left", requires={"t": "top"}, steps=2),
        _task("right", provides="right", requires={"t": "top"}),
        _task("bottom", requires={"l": "left", "r": "right"}),
    )


def _nested() -> fc.Flow:
    return fc.Linear(
        "nested",
        _task("n1", provides="n1"),
        fc.Unordered("mid", _task("n2", requires={"v": "n1"}), _task("n3", steps=2)),
        fc.Graph("tail", _task("n4", provides="n4"), _task("n5", requires={"v": "n4"})),
    )


def _fails() -> fc.Flow:
    return fc.Linear("fails", _task("f1"), _task("f2", fail_when=lambda kw: True), _task("f3"))


def _unordered_fails() -> fc.Flow:
    return fc.Unordered(
        "ufails", _task("g1", steps=3), _task("g2", fail_when=lambda kw: True), _task("g3")
    )


def _retry_foreach() -> fc.Flow:
    """ForEach: the scope's first attempt fails in r2, the second succeeds."""
    return fc.Linear(
        "foreach",
        _task("r0", provides="r0"),
        fc.Linear(
            "scope",
            _task("r1", requires={"v": "attempt"}),
            _task("r2", requires={"v": "attempt"}, fail_when=lambda kw: kw["v"] == 1),
            retry=fc.ForEach([1, 2], provides="attempt"),
        ),
        _task("r3"),
    )


def _retry_times_exhausted() -> fc.Flow:
    return fc.Linear(
        "times",
        _task("s1"),
        fc.Linear(
            "scope",
            _task("s2"),
            _task("s3", fail_when=lambda kw: True, revert=False),
            retry=fc.Times(3),
        ),
    )


def _revert_all() -> fc.Flow:
    return fc.Linear(
        "revertall",
        _task("v1"),
        fc.Linear(
            "outer",
            _task("v2"),
            fc.Linear(
                "inner",
                _task("v3", fail_when=lambda kw: True),
                retry=fc.Times(2, on_exhausted=fc.Decision.REVERT_ALL),
            ),
            retry=fc.Times(3),
        ),
    )


def _revert_fails() -> fc.Flow:
    return fc.Linear(
        "revertfails",
        _task("w1", revert_fails=True),
        _task("w2"),
        _task("w3", fail_when=lambda kw: True),
    )


def _timeout() -> fc.Flow:
    return fc.Linear("timeout", _task("t1"), _task("t2", sleep=5, timeout=0.02))


def _slow_linear() -> fc.Flow:
    return fc.Linear(
        "slow",
        _task("p1", steps=2),
        _task("p2", steps=2),
        _task("p3", steps=2),
    )


CASES = [
    Case("linear", _linear),
    Case("unordered", _unordered),
    Case("graph", _graph),
    Case("nested", _nested),
    Case("fails", _fails, expect=fc.FlowState.REVERTED),
    Case("unordered-fails", _unordered_fails, expect=fc.FlowState.REVERTED),
    Case("foreach-retry", _retry_foreach),
    Case("times-exhausted", _retry_times_exhausted, expect=fc.FlowState.REVERTED),
    Case("revert-all", _revert_all, expect=fc.FlowState.REVERTED, depth=1),
    Case("revert-fails", _revert_fails, expect=fc.FlowState.FAILED),
    Case("timeout", _timeout, expect=fc.FlowState.REVERTED),
    Case(
        "cancel",
        _slow_linear,
        actions=(Action("cancel", "RUNNING", "p2"),),
        expect=fc.FlowState.CANCELLED,
    ),
    Case("suspend", _slow_linear, actions=(Action("suspend", "RUNNING", "p2"),)),
    Case("stop", _slow_linear, actions=(Action("stop", "RUNNING", "p2"),)),
    Case(
        "suspend-reverting",
        _fails,
        actions=(Action("suspend", "REVERTING", "f2"),),
        expect=fc.FlowState.REVERTED,
    ),
    Case(
        "stop-reverting",
        _fails,
        actions=(Action("stop", "REVERTING", "f2"),),
        expect=fc.FlowState.REVERTED,
    ),
]

#: A control call at every point of a small flow: cancel, suspend and stop when each task
#: starts running and when it has succeeded (depth 1: the control is the point).
CONTROL_CASES = [
    Case(
        f"{do}-{task}-{state.lower()}",
        _slow_linear,
        actions=(Action(do, state, task),),
        depth=1,
        expect=fc.FlowState.CANCELLED if do == "cancel" else fc.FlowState.SUCCESS,
    )
    for do in ("cancel", "suspend", "stop")
    for task in ("p1", "p2", "p3")
    for state in ("RUNNING", "SUCCESS")
]
