"""A code-first workflow's status in the HTTP API: ``kind``, ``steps`` (by position, with
attempts, compensation and gather group), parent/child links. Real workflows on a real
engine behind a real aiohttp server on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import flowcoord as fc
import flowcoord.aiohttp as fcweb
from flowcoord.journal import Entry, EventKind, FlowRecord

pytestmark = pytest.mark.anyio

TOKEN = "wf-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Client = TestClient[web.Request, web.Application]
STEP_FIELDS = {
    "position",
    "name",
    "key",
    "kind",
    "state",
    "attempt",
    "started_at",
    "finished_at",
    "duration",
    "result",
    "failure",
    "revert_state",
    "revert_failure",
    "group",
    "child",
}


class World:
    """What the workflows' steps do and record, per test."""

    def __init__(self) -> None:
        self.release = anyio.Event()
        self.undone: list[str] = []
        self.calls: dict[str, int] = {}

    def call(self, name: str) -> int:
        self.calls[name] = self.calls.get(name, 0) + 1
        return self.calls[name]


def make_registry(w: World) -> fc.FlowRegistry:
    async def allocate(size: int) -> str:
        return f"vm{size}"

    async def release(size: int, result: str | None) -> None:
        w.undone.append("allocate")

    async def publish(vm: str) -> str:
        await anyio.sleep(0.02)
        return vm + "-ip"

    async def attach(vm: str, disk: str) -> str:
        await anyio.sleep(0.01)
        return f"{vm}:{disk}"

    async def detach(vm: str, disk: str, result: str | None) -> None:
        w.undone.append(f"detach {disk}")

    @fc.workflow(name="provision")
    async def provision(ctx: fc.Context, size: int) -> dict[str, Any]:
        ctx.now()  # 1: a journaled value
        vm = await ctx.step(allocate, size, revert=release)  # 2
        ip, d1, d2 = await ctx.gather(  # 3, 4, 5: one group, named by its first position
            ctx.step(publish, vm),
            ctx.step(attach, vm, "a", revert=detach),
            ctx.step(attach, vm, "b", name="attach_b", revert=detach),
        )
        if ctx.patched("tag-vms"):  # 6: a patch marker
            ctx.uuid()  # 7
        return {"vm": vm, "ip": ip, "disks": [d1, d2]}

    async def reserve(size: int) -> str:
        return f"r{size}"

    async def unreserve(size: int, result: str | None) -> None:
        w.undone.append("reserve")

    async def copy(r: str) -> str:
        return r + "-copy"

    async def uncopy(r: str, result: str | None) -> None:
        raise OSError("the copy is locked")

    async def notify(r: str) -> None:
        return None

    async def boom(r: str) -> None:
        raise RuntimeError("the disk is full")

    @fc.workflow(name="teardown")
    async def teardown(ctx: fc.Context, size: int) -> None:
        r = await ctx.step(reserve, size, revert=unreserve)  # 1: compensated
        await ctx.gather(ctx.step(copy, r, revert=uncopy), ctx.step(notify, r))  # 2 fails to undo
        await ctx.step(boom, r)  # 4: fails

    async def flaky(size: int) -> int:
        if w.call("flaky") < 3:
            raise ValueError(f"flake {w.calls['flaky']}")
        return size

    async def unflaky(size: int, result: int | None) -> None:
        w.undone.append(f"flaky {w.calls['flaky']}")

    async def wobbly(size: int) -> int:
        await anyio.sleep(0.005)
        if w.call("wobbly") < 2:
            raise TimeoutError("wobble")
        return size * 2

    async def hopeless(size: int) -> None:
        raise ConnectionError(f"down {w.call('hopeless')}")

    @fc.workflow(name="retrying")
    async def retrying(ctx: fc.Context, size: int, give_up: bool = False) -> int:
        a = await ctx.step(flaky, size, revert=unflaky, retry=fc.Times(3))  # 1
        b = await ctx.step(wobbly, size, retry=fc.Times(3))  # 2: no compensation
        if give_up:
            await ctx.step(hopeless, size, retry=fc.Times(2))  # 3
        return a + b

    async def hold(size: int) -> str:
        await w.release.wait()
        return "held"

    async def unhold(size: int, result: str | None) -> None:
        w.undone.append("hold")

    @fc.workflow(name="gated")
    async def gated(ctx: fc.Context, size: int) -> str:
        await ctx.step(allocate, size, revert=release)
        return await ctx.step(hold, size, revert=unhold)

    @fc.task(provides="b")
    async def double(a: int) -> int:
        return a * 2

    registry = fc.FlowRegistry()
    for wf in (provision, teardown, retrying, gated):
        registry.register(wf.name, wf)
    registry.register("double", lambda: fc.Linear("double", double))
    return registry


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def journal() -> fc.MemoryJournal:
    return fc.MemoryJournal()


@pytest.fixture
async def client(world: World, journal: fc.MemoryJournal) -> AsyncIterator[Client]:
    app = web.Application()
    fcweb.setup(
        app,
        engine_factory=lambda: fc.Engine(journal),
        registry=make_registry(world),
        token=TOKEN,
        shutdown_timeout=0.5,
    )
    async with TestClient(TestServer(app)) as c:
        yield c
    world.release.set()


async def _json(resp: Any, status: int) -> Any:
    body = await resp.json()
    assert resp.status == status, body
    return body


async def _run(client: Client, flow: str, flow_id: str, **inputs: Any) -> Any:
    """Submit and wait for the end; the status the submit answers with."""
    resp = await client.post(
        "/api/flows?wait=10",
        json={"flow": flow, "inputs": inputs, "flow_id": flow_id},
        headers=AUTH,
    )
    return await _json(resp, 200)


async def _status(client: Client, flow_id: str) -> Any:
    return await _json(await client.get(f"/api/flows/{flow_id}"), 200)


async def _until(client: Client, flow_id: str, pred: Callable[[Any], bool]) -> Any:
    with anyio.fail_after(10):
        while True:
            resp = await client.get(f"/api/flows/{flow_id}")
            if resp.status == 200:
                body = await resp.json()
                if pred(body):
                    return body
            await anyio.sleep(0.01)


def _steps(status: Any) -> dict[str, Any]:
    return {s["key"]: s for s in status["steps"]}


def _brief(step: Any) -> tuple[Any, ...]:
    return (step["key"], step["kind"], step["state"], step["revert_state"], step["group"])


async def test_a_successful_workflow_with_a_gather(client: Client) -> None:
    done = await _run(client, "provision", "p-1", size=2)
    assert done["state"] == "SUCCESS"
    status = await _status(client, "p-1")
    assert status["kind"] == "workflow"
    assert status["result"] == {"vm": "vm2", "ip": "vm2-ip", "disks": ["vm2:a", "vm2:b"]}
    assert status["failure"] is None
    assert (status["parent"], status["parent_step"], status["children"]) == (None, None, [])
    steps = status["steps"]
    assert [s["position"] for s in steps] == [1, 2, 3, 4, 5, 6, 7]
    assert [_brief(s) for s in steps] == [
        ("1:now", "value", "SUCCESS", None, None),
        ("2:allocate", "step", "SUCCESS", None, None),
        ("3:publish", "step", "SUCCESS", None, 3),
        ("4:attach", "step", "SUCCESS", None, 3),
        ("5:attach_b", "step", "SUCCESS", None, 3),
        ("6:patch:tag-vms", "patch", "SUCCESS", None, None),
        ("7:uuid", "value", "SUCCESS", None, None),
    ]
    for s in steps:
        assert set(s) >= STEP_FIELDS, s
        assert s["name"] == s["key"].split(":", 1)[1]
        assert s["attempt"] == 1
        assert s["failure"] is None
        assert s["revert_failure"] is None
        assert s["child"] is None
        assert s["finished_at"] is not None
    by = _steps(status)
    # steps have their times, values and patches only the time they were journaled
    for key in ("2:allocate", "3:publish", "4:attach", "5:attach_b"):
        s = by[key]
        assert s["started_at"] <= s["finished_at"]
        assert s["duration"] == pytest.approx(s["finished_at"] - s["started_at"])
        assert [a["state"] for a in s["attempts"]] == ["SUCCESS"]
    assert by["3:publish"]["duration"] >= 0.015  # it slept 20 ms
    for key in ("1:now", "6:patch:tag-vms", "7:uuid"):
        assert by[key]["started_at"] is None
        assert by[key]["duration"] is None
    # the gather's steps ran at once: each started before the others ended
    gather = [by["3:publish"], by["4:attach"], by["5:attach_b"]]
    assert max(s["started_at"] for s in gather) < min(s["finished_at"] for s in gather)
    assert by["2:allocate"]["finished_at"] <= min(s["started_at"] for s in gather)
    assert by["2:allocate"]["revertible"]
    assert not by["3:publish"]["revertible"]
    # results and values as journaled
    assert by["2:allocate"]["result"] == "vm2"
    assert by["5:attach_b"]["result"] == "vm2:b"
    assert isinstance(by["1:now"]["result"], float)
    assert by["6:patch:tag-vms"]["result"] is True
    assert len(by["7:uuid"]["result"]) == 32
    # the pattern flows' fields are still there, for the same steps (in journal order)
    assert sorted(t["name"] for t in status["tasks"]) == sorted(s["key"] for s in steps)
    assert status["progress"] == {"done": 7, "total": 7}
    assert status["counts"] == {"SUCCESS": 7}


async def test_a_failed_workflow_compensated_with_a_failing_compensation(
    client: Client, world: World
) -> None:
    done = await _run(client, "teardown", "t-1", size=1)
    assert done["state"] == "FAILED"  # a compensation raised
    assert world.undone == ["reserve"]
    status = await _status(client, "t-1")
    assert status["kind"] == "workflow"
    assert [_brief(s) for s in status["steps"]] == [
        ("1:reserve", "step", "SUCCESS", "REVERTED", None),
        ("2:copy", "step", "SUCCESS", "REVERT_FAILURE", 2),
        ("3:notify", "step", "SUCCESS", None, 2),  # no compensation; its one entry has the group
        ("4:boom", "step", "FAILURE", None, None),
    ]
    by = _steps(status)
    boom = by["4:boom"]
    assert boom["failure"]["type"] == "RuntimeError"
    assert boom["failure"]["message"] == "the disk is full"
    assert "RuntimeError: the disk is full" in boom["failure"]["traceback"]
    assert boom["result"] is None
    assert boom["started_at"] is not None
    assert boom["duration"] is not None
    assert boom["attempts"][0]["error"] == "RuntimeError: the disk is full"
    copy = by["2:copy"]
    assert copy["revert_failure"]["type"] == "OSError"
    assert copy["revert_failure"]["message"] == "the copy is locked"
    assert copy["failure"] is None
    assert copy["result"] == "r1-copy"
    assert by["1:reserve"]["revert_failure"] is None
    # the workflow's own failure: the step that raised
    assert "the disk is full" in status["failure"]["message"]
    assert status["result"] is None
    # the pattern view of the same tasks agrees
    tasks = {t["name"]: t["state"] for t in status["tasks"]}
    assert tasks["1:reserve"] == "REVERTED"
    assert tasks["2:copy"] == "REVERT_FAILURE"
    assert tasks["4:boom"] == "FAILURE"


async def test_retries_show_every_attempt(client: Client, world: World) -> None:
    done = await _run(client, "retrying", "r-1", size=3)
    assert done["state"] == "SUCCESS"
    status = await _status(client, "r-1")
    by = _steps(status)
    flaky = by["1:flaky"]
    assert (flaky["state"], flaky["attempt"], flaky["revert_state"]) == ("SUCCESS", 3, None)
    assert flaky["result"] == 3
    assert flaky["failure"] is None
    assert [(a["attempt"], a["state"], a["revert_state"]) for a in flaky["attempts"]] == [
        (1, "FAILURE", "REVERTED"),  # each failed attempt is compensated before the next
        (2, "FAILURE", "REVERTED"),
        (3, "SUCCESS", None),
    ]
    assert [a["error"] for a in flaky["attempts"]] == [
        "ValueError: flake 1",
        "ValueError: flake 2",
        None,
    ]
    assert world.undone == ["flaky 1", "flaky 2"]
    # the step's span runs from its first attempt's start to its last attempt's end
    assert flaky["started_at"] == flaky["attempts"][0]["started_at"]
    assert flaky["finished_at"] == flaky["attempts"][-1]["finished_at"]
    starts = [a["started_at"] for a in flaky["attempts"]]
    assert starts == sorted(starts)
    # a step without compensation: one entry per attempt, each with its start
    wobbly = by["2:wobbly"]
    assert (wobbly["state"], wobbly["attempt"], wobbly["revertible"]) == ("SUCCESS", 2, False)
    assert [(a["attempt"], a["state"]) for a in wobbly["attempts"]] == [
        (1, "FAILURE"),
        (2, "SUCCESS"),
    ]
    for a in wobbly["attempts"]:
        assert a["started_at"] is not None
        assert a["duration"] >= 0.004
    assert wobbly["attempts"][0]["finished_at"] <= wobbly["attempts"][1]["started_at"]
    assert wobbly["duration"] >= 0.008
    assert status["retries"] == {"1:flaky": 2, "2:wobbly": 1}


async def test_retries_that_give_up_fail_the_step(client: Client, world: World) -> None:
    done = await _run(client, "retrying", "r-2", size=1, give_up=True)
    assert done["state"] == "REVERTED"
    by = _steps(await _status(client, "r-2"))
    hopeless = by["3:hopeless"]
    assert (hopeless["state"], hopeless["attempt"], hopeless["retrying"]) == ("FAILURE", 2, False)
    assert [a["error"] for a in hopeless["attempts"]] == [
        "ConnectionError: down 1",
        "ConnectionError: down 2",
    ]
    assert hopeless["failure"]["message"] == "down 2"
    assert by["1:flaky"]["revert_state"] == "REVERTED"  # the rollback after the give-up
    assert by["2:wobbly"]["revert_state"] is None


async def test_a_running_workflow_then_cancelled(client: Client, world: World) -> None:
    resp = await client.post(
        "/api/flows", json={"flow": "gated", "inputs": {"size": 1}, "flow_id": "g-1"}, headers=AUTH
    )
    await _json(resp, 202)
    status = await _until(
        client, "g-1", lambda b: len(b.get("steps") or []) == 2 and b["running_here"]
    )
    hold = _steps(status)["2:hold"]
    assert (hold["state"], hold["finished_at"], hold["duration"]) == ("RUNNING", None, None)
    assert hold["started_at"] is not None
    assert status["state"] == "RUNNING"
    assert status["kind"] == "workflow"

    await _json(await client.post("/api/flows/g-1/cancel", headers=AUTH), 202)
    status = await _until(client, "g-1", lambda b: b["finished"])
    assert status["state"] == "CANCELLED"
    assert [_brief(s) for s in status["steps"]] == [
        ("1:allocate", "step", "SUCCESS", "REVERTED", None),
        ("2:hold", "step", "INTERRUPTED", "REVERTED", None),  # cut short, then compensated
    ]
    assert sorted(world.undone) == ["allocate", "hold"]


async def test_retry_a_workflow_from_a_step(client: Client) -> None:
    await _run(client, "provision", "p-2", size=1)
    resp = await client.post(
        "/api/flows/p-2/retry", json={"from_task": "3:publish", "flow_id": "p-3"}, headers=AUTH
    )
    assert (await _json(resp, 202))["action"] == "retrying"
    status = await _until(client, "p-3", lambda b: b["finished"])
    assert status["state"] == "SUCCESS"
    assert status["forked_from"] == "p-2"
    by = _steps(status)
    assert by["2:allocate"]["forked"] == "p-2"  # reused, not run again
    assert by["3:publish"]["forked"] is None
    resp = await client.post("/api/flows/p-2/retry", json={"from_task": "9:nope"}, headers=AUTH)
    assert "no task '9:nope'" in (await _json(resp, 422))["error"]


async def test_a_workflow_has_no_graph_dot_and_a_pattern_flow_no_steps(client: Client) -> None:
    await _run(client, "provision", "p-4", size=1)
    body = await _json(await client.get("/api/flows/p-4/graph.dot"), 422)
    assert "is a workflow" in body["error"]
    done = await _run(client, "double", "d-1", a=2)
    assert done["kind"] == "pattern"
    assert done["steps"] is None
    status = await _status(client, "d-1")
    assert (status["kind"], status["steps"], status["children"]) == ("pattern", None, [])
    assert [t["name"] for t in status["tasks"]] == ["double"]


async def test_parent_and_child_links(client: Client, journal: fc.MemoryJournal) -> None:
    """Child flows are not run by the engine yet: their journal format, written by hand."""

    def entry(flow_id: str, seq: int, kind: EventKind, task: str | None, data: Any) -> Entry:
        return Entry(flow_id, seq, kind, task, json.dumps(data), None, 0, 1796000000.0 + seq)

    parent = [
        entry("parent-1", 0, EventKind.FLOW_CREATED, None, {"name": "gated", "workflow": True}),
        entry(
            "parent-1",
            1,
            EventKind.TASK_STARTED,
            "1:order",
            {"attempt": 1, "args": {}, "group": None, "revert": True, "child": "child-1"},
        ),
        entry("parent-1", 2, EventKind.TASK_SUCCEEDED, "1:order", {"result": 7, "attempt": 1}),
    ]
    child = [
        entry(
            "child-1",
            0,
            EventKind.FLOW_CREATED,
            None,
            {"name": "order", "workflow": True, "parent": "parent-1", "parent_step": "1:order"},
        ),
    ]
    assert await journal.create_flow(FlowRecord("parent-1", "gated", "RUNNING"), parent)
    assert await journal.create_flow(FlowRecord("child-1", "order", "PENDING"), child)
    status = await _status(client, "parent-1")
    assert status["children"] == [
        {"flow_id": "child-1", "step": "1:order", "position": 1, "attempt": 1}
    ]
    step = status["steps"][0]
    assert (step["kind"], step["child"], step["state"], step["result"]) == (
        "child",
        "child-1",
        "SUCCESS",
        7,
    )
    assert step["duration"] == pytest.approx(1.0)
    status = await _status(client, "child-1")
    assert (status["parent"], status["parent_step"], status["steps"]) == (
        "parent-1",
        "1:order",
        [],
    )
    # a pattern flow's task can run a child flow too (and a child can be a pattern flow)
    created = {"name": "double", "inputs": {"a": 1}, "tasks": ["double"]}
    pattern = [
        entry("pat-1", 0, EventKind.FLOW_CREATED, None, {**created, "parent": "parent-1"}),
        entry("pat-1", 1, EventKind.TASK_STARTED, "double", {"attempt": 1, "child": "kid-1"}),
        entry("pat-1", 2, EventKind.TASK_FAILED, "double", {"failure": {}, "attempt": 1}),
        entry("pat-1", 3, EventKind.TASK_STARTED, "double", {"attempt": 2, "child": "kid-2"}),
    ]
    assert await journal.create_flow(FlowRecord("pat-1", "double", "RUNNING"), pattern)
    status = await _status(client, "pat-1")
    assert (status["kind"], status["steps"], status["parent"]) == ("pattern", None, "parent-1")
    assert status["children"] == [
        {"flow_id": "kid-1", "step": "double", "position": None, "attempt": 1},
        {"flow_id": "kid-2", "step": "double", "position": None, "attempt": 2},
    ]


async def test_an_unknown_flow_is_404(client: Client) -> None:
    body = await _json(await client.get("/api/flows/nope-1"), 404)
    assert "no flow 'nope-1'" in body["error"]
