"""State listeners and what they ask to be told: every change by default; with
``starts=False`` no task or step starts, the ends carrying the attempt, its start and its
body's time; with ``min_elapsed`` no fast successes either (failures, child steps, reverts
and flow changes always)."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

import flowcoord as fc

pytestmark = pytest.mark.anyio


def _pattern(tries: dict[str, int]) -> fc.Flow:
    async def undo() -> None:
        pass

    @fc.task(provides="a", revert=undo)
    async def fast() -> int:
        return 1

    @fc.task(provides="b")
    async def slow(a: int) -> int:
        await anyio.sleep(0.03)
        return a + 1

    @fc.task(retry=fc.Times(2))
    async def flaky(b: int) -> None:
        tries["n"] += 1
        raise ValueError("no")

    return fc.Linear("p", fast, slow, flaky)


async def test_a_default_listener_is_told_every_start_with_its_attempt() -> None:
    changes: list[fc.StateChange] = []
    tries = {"n": 0}
    async with fc.Engine() as engine:
        engine.add_listener(changes.append)
        with pytest.raises(ValueError):
            await engine.run(_pattern(tries), flow_id="d")
    starts = [(c.task, c.attempt) for c in changes if c.task is not None and c.new == "RUNNING"]
    assert starts == [("fast", 1), ("slow", 1), ("flaky", 1), ("flaky", 2)]
    ends = [c for c in changes if c.task is not None and c.new in ("SUCCESS", "FAILURE")]
    assert [(c.task, c.new, c.attempt) for c in ends] == [
        ("fast", "SUCCESS", 1),
        ("slow", "SUCCESS", 1),
        ("flaky", "FAILURE", 1),
        ("flaky", "FAILURE", 2),
    ]
    assert all(c.started_at is not None and c.elapsed is not None for c in ends)
    assert ("fast", "REVERTING", "REVERTED") in [(c.task, c.old, c.new) for c in changes]


async def test_without_starts_the_ends_carry_the_attempt_its_start_and_its_time() -> None:
    changes: list[fc.StateChange] = []
    tries = {"n": 0}
    before = time.time()
    async with fc.Engine() as engine:
        engine.add_listener(changes.append, starts=False)
        with pytest.raises(ValueError):
            await engine.run(_pattern(tries), flow_id="s")
    after = time.time()
    assert not [c for c in changes if c.task is not None and c.new == "RUNNING"]
    ends = {(c.task, c.attempt): c for c in changes if c.new in ("SUCCESS", "FAILURE")}
    assert set(ends) == {("fast", 1), ("slow", 1), ("flaky", 1), ("flaky", 2)}
    slow = ends["slow", 1]
    assert slow.elapsed is not None
    assert slow.elapsed >= 0.03
    assert slow.started_at is not None
    assert before <= slow.started_at <= after - slow.elapsed
    assert ends["fast", 1].started_at is not None
    assert ends["fast", 1].started_at <= slow.started_at  # in order: fast ran first
    reverts = [(c.task, c.new, c.attempt) for c in changes if c.task and c.new[:6] == "REVERT"]
    assert reverts == [
        ("flaky", "REVERTING", 1),
        ("flaky", "REVERTED", 1),
        ("flaky", "REVERTING", 2),
        ("flaky", "REVERTED", 2),
        ("slow", "REVERTING", 1),
        ("slow", "REVERTED", 1),
        ("fast", "REVERTING", 1),
        ("fast", "REVERTED", 1),
    ]
    # the flow's own changes are told all the same
    assert [c.new for c in changes if c.task is None] == ["RUNNING", "REVERTING", "REVERTED"]


async def test_min_elapsed_leaves_out_fast_successes_only() -> None:
    changes: list[fc.StateChange] = []
    tries = {"n": 0}
    async with fc.Engine() as engine:
        engine.add_listener(changes.append, starts=False, min_elapsed=0.02)
        with pytest.raises(ValueError):
            await engine.run(_pattern(tries), flow_id="m")
    assert [(c.task, c.old, c.new, c.attempt) for c in changes if c.task is not None] == [
        ("slow", "RUNNING", "SUCCESS", 1),  # "fast" succeeded faster than 0.02 s
        ("flaky", "RUNNING", "FAILURE", 1),
        ("flaky", "FAILURE", "REVERTING", 1),
        ("flaky", "REVERTING", "REVERTED", 1),
        ("flaky", "REVERTED", "PENDING", 1),  # the retry
        ("flaky", "RUNNING", "FAILURE", 2),
        ("flaky", "FAILURE", "REVERTING", 2),
        ("flaky", "REVERTING", "REVERTED", 2),
        ("slow", "SUCCESS", "REVERTING", 1),
        ("slow", "REVERTING", "REVERTED", 1),
        ("fast", "SUCCESS", "REVERTING", 1),
        ("fast", "REVERTING", "REVERTED", 1),
    ]


async def test_a_workflows_steps_are_told_alike_and_a_child_step_always() -> None:
    async def do(x: int) -> int:
        return x

    async def sleepy(x: int) -> int:
        await anyio.sleep(0.03)
        return x

    @fc.workflow(name="inner")
    async def inner(ctx: fc.Context) -> int:
        return await ctx.step(do, 2)

    @fc.workflow(name="outer")
    async def outer(ctx: fc.Context) -> Any:
        await ctx.step(do, 1)
        await ctx.step(sleepy, 1)
        return await ctx.run(inner)

    every: list[fc.StateChange] = []
    filtered: list[fc.StateChange] = []
    async with fc.Engine() as engine:
        engine.add_listener(every.append)
        engine.add_listener(filtered.append, starts=False, min_elapsed=0.02)
        out = await engine.run(outer, flow_id="w")
    assert out.result == 2
    assert [(c.task, c.attempt) for c in every if c.task and c.new == "RUNNING"] == [
        ("1:do", 1),
        ("2:sleepy", 1),
        ("3:inner", 1),
        ("1:do", 1),  # the child's step (its flow id tells it apart)
    ]
    # fast steps left out, the slow one and the child's step told (its child was)
    assert [(c.flow_id, c.task, c.new) for c in filtered if c.task is not None] == [
        ("w", "2:sleepy", "SUCCESS"),
        ("w", "3:inner", "SUCCESS"),
    ]
    sleepy_end = next(c for c in filtered if c.task == "2:sleepy")
    assert sleepy_end.attempt == 1
    assert sleepy_end.started_at is not None
    assert sleepy_end.elapsed is not None
    assert sleepy_end.elapsed >= 0.03
    assert [c.new for c in filtered if c.task is None and c.flow_id == "w.3:inner"] == [
        "RUNNING",
        "SUCCESS",
    ]


async def test_an_interrupted_attempt_is_told_with_the_time_its_body_ran() -> None:
    started = anyio.Event()

    @fc.task
    async def hang() -> None:
        started.set()
        await anyio.sleep_forever()

    changes: list[fc.StateChange] = []
    async with fc.Engine() as engine:
        engine.add_listener(changes.append, starts=False, min_elapsed=1.0)
        handle = await engine.start(fc.Linear("h", hang), flow_id="h")
        await started.wait()
        await anyio.sleep(0.02)
        handle.cancel()
        with pytest.raises(fc.errors.FlowCancelled):
            await handle.wait()
    end = next(c for c in changes if c.task == "hang")
    assert (end.old, end.new, end.attempt) == ("RUNNING", "PENDING", 1)
    assert end.elapsed is not None
    assert end.elapsed >= 0.02
    assert end.started_at is not None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_elapsed": 0.01}, "min_elapsed needs starts=False"),
        ({"starts": False, "min_elapsed": -1}, "min_elapsed must be"),
        ({"starts": False, "min_elapsed": float("nan")}, "min_elapsed must be"),
        ({"starts": False, "min_elapsed": "1"}, "min_elapsed must be"),
    ],
)
async def test_bad_listener_options_are_refused(kwargs: dict[str, Any], match: str) -> None:
    engine = fc.Engine()
    with pytest.raises(fc.errors.ConfigurationError, match=match):
        engine.add_listener(lambda change: None, **kwargs)
    with pytest.raises(fc.errors.ConfigurationError, match="must be callable"):
        engine.add_listener("not a function")  # type: ignore[arg-type]
