"""The aiohttp JSON API, through a real server on loopback (aiohttp's TestServer/TestClient)."""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import flowcoord as fc
import flowcoord.aiohttp as fcweb
from flowcoord.aiohttp._layout import layout
from flowcoord.coordination import Conductor, MemoryCoordinator, open_board
from flowcoord.errors import ConfigurationError
from tests.conductor_world import World

pytestmark = pytest.mark.anyio

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Client = TestClient[web.Request, web.Application]


class Gate:
    """Per-test events the gated flow's tasks wait on, and a log of reverts."""

    def __init__(self) -> None:
        self.release = anyio.Event()
        self.reverted: list[str] = []


def make_registry(gate: Gate) -> fc.FlowRegistry:
    registry = fc.FlowRegistry()

    @fc.task(provides="a")
    async def add(size: int) -> int:
        return size + 1

    @fc.task(provides="b")
    async def double(a: int) -> int:
        return a * 2

    registry.register("quick", lambda: fc.Linear("quick", add, double))

    async def undo_one(result: Any) -> None:
        gate.reverted.append("one")

    @fc.task(provides="x", revert=undo_one)
    async def one(size: int) -> int:
        return size

    @fc.task(provides="y")
    async def wait(x: int) -> int:
        await gate.release.wait()
        return x + 1

    @fc.task
    async def done(y: int) -> None:
        return None

    registry.register("gated", lambda: fc.Linear("gated", one, wait, done))

    @fc.task
    async def boom(size: int) -> None:
        raise ValueError("no capacity left")

    registry.register("failing", lambda: fc.Linear("failing", add, boom))
    return registry


def make_app(
    registry: fc.FlowRegistry, journal: fc.journal.JournalBackend, **kwargs: Any
) -> web.Application:
    app = web.Application()

    async def run_quick(request: web.Request) -> web.Response:
        # A handler of the application's own, using the engine to run and await a flow.
        engine = fcweb.get_engine(request)
        flow = fcweb.get_registry(request).build("quick")
        outcome = await engine.run(flow, {"size": int(request.query["size"])})
        return web.json_response({"b": outcome["b"], "state": outcome.state.value})

    app.router.add_get("/custom/quick", run_quick)
    kwargs.setdefault("token", TOKEN)
    fcweb.setup(app, engine_factory=lambda: fc.Engine(journal), registry=registry, **kwargs)
    return app


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def journal() -> fc.MemoryJournal:
    return fc.MemoryJournal()


@pytest.fixture
async def client(gate: Gate, journal: fc.MemoryJournal) -> AsyncIterator[Client]:
    app = make_app(make_registry(gate), journal, shutdown_timeout=0.5)
    async with TestClient(TestServer(app)) as c:
        yield c
    gate.release.set()


async def _json(resp: Any, status: int) -> Any:
    body = await resp.json()
    assert resp.status == status, body
    return body


async def _until(client: Client, flow_id: str, pred: Callable[[Any], bool]) -> Any:
    with anyio.fail_after(10):
        while True:
            resp = await client.get(f"/api/flows/{flow_id}")
            if resp.status == 200:
                body = await resp.json()
                if pred(body):
                    return body
            await anyio.sleep(0.01)


async def _until_true(pred: Callable[[], bool]) -> None:
    with anyio.fail_after(10):
        while not pred():  # noqa: ASYNC110 - polling a plain predicate, bounded
            await anyio.sleep(0.01)


def _task(status: Any, name: str) -> Any:
    return next(t for t in status["tasks"] if t["name"] == name)


async def _start_gated(client: Client, flow_id: str = "gated-1") -> Any:
    resp = await client.post(
        "/api/flows",
        json={"flow": "gated", "inputs": {"size": 3}, "flow_id": flow_id},
        headers=AUTH,
    )
    await _json(resp, 202)
    return await _until(client, flow_id, lambda s: _task(s, "wait")["state"] == "RUNNING")


# -- submit and await --------------------------------------------------------------------------


async def test_submit_and_wait_returns_the_finished_status(client: Client) -> None:
    resp = await client.post(
        "/api/flows?wait=10", json={"flow": "quick", "inputs": {"size": 2}}, headers=AUTH
    )
    body = await _json(resp, 200)
    assert body["state"] == "SUCCESS"
    assert body["finished"] is True
    assert body["progress"] == {"done": 2, "total": 2}
    assert [t["name"] for t in body["tasks"]] == ["add", "double"]
    add = _task(body, "add")
    assert add["state"] == "SUCCESS"
    assert add["attempt"] == 1
    assert add["result"] == 3
    assert add["started_at"] <= add["finished_at"]
    assert add["duration"] >= 0
    assert _task(body, "double")["result"] == 6
    assert body["url"] == f"/api/flows/{body['flow_id']}"


async def test_submit_returns_202_with_location_then_finishes(client: Client) -> None:
    resp = await client.post(
        "/api/flows", json={"flow": "quick", "inputs": {"size": 5}}, headers=AUTH
    )
    body = await _json(resp, 202)
    flow_id = body["flow_id"]
    assert resp.headers["Location"] == f"/api/flows/{flow_id}"
    assert body["name"] == "quick"
    assert body["action"] == "started"
    status = await _until(client, flow_id, lambda s: s["finished"])
    assert status["state"] == "SUCCESS"
    assert status["inputs"] == {"size": 5}


async def test_a_handler_of_the_app_runs_flows_with_get_engine(client: Client) -> None:
    resp = await client.get("/custom/quick?size=4")
    assert await _json(resp, 200) == {"b": 10, "state": "SUCCESS"}


async def test_failed_flow_reports_its_failure(client: Client) -> None:
    resp = await client.post(
        "/api/flows?wait=10", json={"flow": "failing", "inputs": {"size": 1}}, headers=AUTH
    )
    body = await _json(resp, 200)
    assert body["state"] == "REVERTED"
    boom = _task(body, "boom")
    assert boom["state"] == "REVERTED"  # a failed task is reverted too; its failure stays
    assert boom["failure"]["type"] == "ValueError"
    assert boom["failure"]["message"] == "no capacity left"
    assert body["failures"]["boom"]["message"] == "no capacity left"


async def test_submit_with_a_flow_id_is_idempotent(client: Client) -> None:
    req = {"flow": "quick", "inputs": {"size": 1}, "flow_id": "order-17"}
    await _json(await client.post("/api/flows?wait=10", json=req, headers=AUTH), 200)
    again = await _json(await client.post("/api/flows", json=req, headers=AUTH), 200)
    assert again["flow_id"] == "order-17"
    assert again["state"] == "SUCCESS"
    other = {"flow": "failing", "inputs": {"size": 1}, "flow_id": "order-17"}
    body = await _json(await client.post("/api/flows", json=other, headers=AUTH), 409)
    assert "taken" in body["error"]
    assert body["hint"]


async def test_submitting_a_running_flow_id_again_is_a_conflict(client: Client) -> None:
    await _start_gated(client, "busy-1")
    req = {"flow": "gated", "inputs": {"size": 3}, "flow_id": "busy-1"}
    body = await _json(await client.post("/api/flows", json=req, headers=AUTH), 409)
    assert "already running" in body["error"]


# -- auth --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/flows"),
        ("POST", "/api/flows/x1/cancel"),
        ("POST", "/api/flows/x1/resume"),
        ("POST", "/api/flows/x1/retry"),
        ("POST", "/api/flows/x1/suspend"),
        ("POST", "/api/flows/x1/stop"),
    ],
)
async def test_mutations_need_the_bearer_token(client: Client, method: str, path: str) -> None:
    resp = await client.request(method, path, json={"flow": "quick"})
    body = await _json(resp, 401)
    assert body["error"] == "authentication required"
    assert "Bearer" in body["hint"]
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    for header in ("Bearer wrong", "Bearer " + TOKEN + "x", "Basic " + TOKEN):
        resp = await client.request(method, path, json={}, headers={"Authorization": header})
        assert resp.status in (401, 403)
    resp = await client.request(method, path, json={}, headers={"Authorization": "Bearer nope"})
    body = await _json(resp, 403)
    assert body["error"] == "invalid token"


async def test_reads_need_no_token(client: Client) -> None:
    await _json(await client.get("/api/flows"), 200)
    assert (await _json(await client.get("/api/health"), 200))["status"] == "ok"
    assert (await _json(await client.get("/api/registry"), 200))["flows"] == [
        "failing",
        "gated",
        "quick",
    ]


async def test_token_none_turns_auth_off(gate: Gate, journal: fc.MemoryJournal) -> None:
    app = make_app(make_registry(gate), journal, token=None)
    async with TestClient(TestServer(app)) as c:
        resp = await c.post("/api/flows?wait=5", json={"flow": "quick", "inputs": {"size": 1}})
        assert (await _json(resp, 200))["state"] == "SUCCESS"


# -- listing -----------------------------------------------------------------------------------


async def test_list_pages_through_every_flow(client: Client) -> None:
    ids = [f"f-{i}" for i in range(7)][::-1]  # started in the opposite order of their ids
    for flow_id in ids:
        req = {"flow": "quick", "inputs": {"size": 1}, "flow_id": flow_id}
        await _json(await client.post("/api/flows?wait=10", json=req, headers=AUTH), 200)
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        url = "/api/flows?limit=3" + (f"&after={after}" if after else "")
        page = await _json(await client.get(url), 200)
        pages += 1
        assert len(page["flows"]) <= 3
        seen += [f["flow_id"] for f in page["flows"]]
        after = page["next"]
        if after is None:
            break
    assert seen == ids[::-1]  # newest first
    assert pages == 3
    first = (await _json(await client.get("/api/flows?limit=1"), 200))["flows"][0]
    assert first["name"] == "quick"
    assert first["state"] == "SUCCESS"
    assert first["finished"]
    assert first["created_at"] <= first["updated_at"]


async def test_list_filters_by_state(client: Client) -> None:
    await _start_gated(client, "g-1")
    await _json(
        await client.post(
            "/api/flows?wait=10", json={"flow": "quick", "inputs": {"size": 1}}, headers=AUTH
        ),
        200,
    )
    running = await _json(await client.get("/api/flows?state=running"), 200)
    assert [f["flow_id"] for f in running["flows"]] == ["g-1"]
    assert running["flows"][0]["running_here"] is True
    done = await _json(await client.get("/api/flows?state=SUCCESS"), 200)
    assert [f["name"] for f in done["flows"]] == ["quick"]


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("state=bogus", "unknown state"),
        ("limit=0", "out of range"),
        ("limit=100000", "out of range"),
        ("limit=ten", "not an integer"),
    ],
)
async def test_bad_list_queries_are_400(client: Client, query: str, fragment: str) -> None:
    body = await _json(await client.get(f"/api/flows?{query}"), 400)
    assert fragment in body["error"]
    assert body["hint"]


# -- bad input maps to 4xx with {error, hint} ------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"flow": "nope", "inputs": {}}, 422, "no flow registered as 'nope'"),
        ({"flow": "quick", "inputs": {}}, 422, "size"),
        ({"flow": "quick", "inputs": []}, 400, "'inputs' must be a JSON object"),
        ({"inputs": {}}, 400, "'flow' must be the name"),
        ({"flow": 3}, 400, "'flow' must be the name"),
        ({"flow": "quick", "input": {}}, 400, "unknown field"),
        ({"flow": "quick", "inputs": {"size": 1}, "flow_id": "no spaces"}, 400, "flow_id"),
        ({"flow": "quick", "inputs": {"size": 1}, "flow_id": 12}, 400, "flow_id"),
    ],
)
async def test_bad_submissions_are_4xx(
    client: Client, body: dict[str, Any], status: int, fragment: str
) -> None:
    out = await _json(await client.post("/api/flows", json=body, headers=AUTH), status)
    assert fragment in out["error"]
    assert out["hint"]


async def test_unknown_flow_is_mapped_from_the_registry_error(client: Client) -> None:
    out = await _json(await client.post("/api/flows", json={"flow": "nope"}, headers=AUTH), 422)
    assert out["type"] == "UnknownFlow"


async def test_malformed_bodies_are_400(client: Client) -> None:
    for data in ("{not json", "[1, 2]", '"text"'):
        resp = await client.post(
            "/api/flows", data=data, headers={**AUTH, "Content-Type": "application/json"}
        )
        body = await _json(resp, 400)
        assert body["error"]
        assert body["hint"]


async def test_unknown_things_are_json_404s(client: Client) -> None:
    body = await _json(await client.get("/api/flows/missing-flow"), 404)
    assert "missing-flow" in body["error"]
    assert body["hint"]
    for path in ("journal", "graph.svg", "graph.dot"):
        await _json(await client.get(f"/api/flows/missing-flow/{path}"), 404)
    await _json(await client.post("/api/flows/missing-flow/cancel", headers=AUTH), 404)
    await _json(await client.post("/api/flows/missing-flow/resume", headers=AUTH), 404)
    body = await _json(await client.get("/api/nothing-here"), 404)
    assert body["error"] == "Not Found"
    resp = await client.put("/api/flows", json={})
    body = await _json(resp, 405)
    assert "POST" in body["hint"]
    assert "POST" in resp.headers["Allow"]


async def test_invalid_flow_ids_are_400(client: Client) -> None:
    body = await _json(await client.get("/api/flows/bad%20id"), 400)
    assert "invalid flow id" in body["error"]


# -- cancel, suspend, stop, resume, retry ----------------------------------------------------


async def test_cancel_a_running_flow_reverts_it(client: Client, gate: Gate) -> None:
    await _start_gated(client, "c-1")
    resp = await client.post("/api/flows/c-1/cancel", headers=AUTH)
    body = await _json(resp, 202)
    assert body["action"] == "cancelling"
    status = await _until(client, "c-1", lambda s: s["finished"])
    assert status["state"] == "CANCELLED"
    assert _task(status, "one")["state"] == "REVERTED"
    assert gate.reverted == ["one"]
    body = await _json(await client.post("/api/flows/c-1/cancel", headers=AUTH), 409)
    assert "finished" in body["error"]


async def test_stop_then_resume(client: Client, gate: Gate) -> None:
    await _start_gated(client, "s-1")
    await _json(await client.post("/api/flows/s-1/stop", headers=AUTH), 202)
    gate.release.set()  # the running task finishes, nothing new starts
    status = await _until(
        client, "s-1", lambda s: s["state"] == "SUSPENDED" and not s["running_here"]
    )
    assert _task(status, "done")["state"] == "PENDING"
    body = await _json(await client.post("/api/flows/s-1/resume", headers=AUTH), 202)
    assert body["action"] == "resumed"
    status = await _until(client, "s-1", lambda s: s["finished"])
    assert status["state"] == "SUCCESS"
    assert status["token"] == 1  # the resume fenced the journal


async def test_suspend_then_resume_on_the_same_engine(client: Client, gate: Gate) -> None:
    await _start_gated(client, "p-1")
    await _json(await client.post("/api/flows/p-1/suspend", headers=AUTH), 202)
    gate.release.set()
    await _until(client, "p-1", lambda s: s["state"] == "SUSPENDED")
    await _json(await client.post("/api/flows/p-1/resume", headers=AUTH), 202)
    status = await _until(client, "p-1", lambda s: s["finished"])
    assert status["state"] == "SUCCESS"


async def test_suspend_needs_a_flow_running_here(client: Client) -> None:
    await _json(
        await client.post(
            "/api/flows?wait=10",
            json={"flow": "quick", "inputs": {"size": 1}, "flow_id": "q-1"},
            headers=AUTH,
        ),
        200,
    )
    body = await _json(await client.post("/api/flows/q-1/suspend", headers=AUTH), 409)
    assert "not running" in body["error"]


async def test_resume_a_crashed_flow_from_the_journal(gate: Gate) -> None:
    journal = fc.MemoryJournal()
    registry = make_registry(gate)
    with anyio.CancelScope() as crash:  # an engine that dies mid-flow
        running = anyio.Event()

        def on_change(change: fc.StateChange) -> None:
            if change.task == "wait" and change.new == "RUNNING":
                running.set()

        async with fc.Engine(journal, listeners=[on_change]) as engine:
            handle = await engine.start(registry.build("gated"), {"size": 3}, flow_id="k-1")
            with anyio.fail_after(5):
                await running.wait()
            assert handle.state is fc.FlowState.RUNNING
            crash.cancel()
    rec = await journal.get_flow("k-1")
    assert rec is not None
    assert rec.state == "RUNNING"
    gate.release.set()
    async with TestClient(TestServer(make_app(registry, journal))) as c:
        status = await _json(await c.get("/api/flows/k-1"), 200)
        assert status["state"] == "RUNNING"
        assert status["running_here"] is False
        await _json(await c.post("/api/flows/k-1/resume", headers=AUTH), 202)
        status = await _until(c, "k-1", lambda s: s["finished"])
        assert status["state"] == "SUCCESS"
        assert _task(status, "one")["attempt"] == 1  # done before the crash: not run again
        assert _task(status, "wait")["attempt"] == 2  # interrupted: run again


async def test_cancel_a_flow_no_engine_runs_takes_it_over(gate: Gate) -> None:
    journal = fc.MemoryJournal()
    registry = make_registry(gate)
    async with TestClient(TestServer(make_app(registry, journal))) as c:
        await _start_gated(c, "t-1")
        await _json(await c.post("/api/flows/t-1/stop", headers=AUTH), 202)
        gate.release.set()
        await _until(c, "t-1", lambda s: s["state"] == "SUSPENDED" and not s["running_here"])
        await _json(await c.post("/api/flows/t-1/cancel", headers=AUTH), 202)
        status = await _until(c, "t-1", lambda s: s["finished"])
    assert status["state"] == "CANCELLED"
    assert {_task(status, n)["state"] for n in ("one", "wait")} == {"REVERTED"}
    assert gate.reverted == ["one"]


async def test_retry_from_a_task_forks_the_finished_flow(client: Client) -> None:
    req = {"flow": "quick", "inputs": {"size": 2}, "flow_id": "r-0"}
    await _json(await client.post("/api/flows?wait=10", json=req, headers=AUTH), 200)
    resp = await client.post(
        "/api/flows/r-0/retry", json={"from_task": "double", "flow_id": "r-0b"}, headers=AUTH
    )
    body = await _json(resp, 202)
    assert body["flow_id"] == "r-0b"
    status = await _until(client, "r-0b", lambda s: s["finished"])
    assert status["state"] == "SUCCESS"
    journal = await _json(await client.get("/api/flows/r-0b/journal"), 200)
    started = [e["task"] for e in journal["entries"] if e["kind"] == "task.started"]
    assert started == ["double"]  # 'add' kept its journaled result


async def test_retry_refuses_unfinished_flows_and_bad_input(client: Client) -> None:
    await _start_gated(client, "r-1")
    resp = await client.post("/api/flows/r-1/retry", json={"from_task": "wait"}, headers=AUTH)
    body = await _json(resp, 409)
    assert "has not finished" in body["error"]
    assert body["hint"]
    body = await _json(
        await client.post("/api/flows/r-1/retry", json={"from_task": "nope"}, headers=AUTH), 422
    )
    assert "no task 'nope'" in body["error"]
    await _json(await client.post("/api/flows/r-1/retry", json={}, headers=AUTH), 400)


@pytest.mark.parametrize("bad", ["../../x", "a b", "x" * 5000, "abc\n"])
async def test_retry_refuses_a_bad_new_flow_id(client: Client, bad: str) -> None:
    """One flow-id rule everywhere: retry used to create flows nobody could open."""
    req = {"flow": "quick", "inputs": {"size": 2}, "flow_id": "r-2"}
    await _json(await client.post("/api/flows?wait=10", json=req, headers=AUTH), 200)
    body = await _json(
        await client.post(
            "/api/flows/r-2/retry", json={"from_task": "double", "flow_id": bad}, headers=AUTH
        ),
        400,
    )
    assert "invalid new flow id" in body["error"]
    listed = await _json(await client.get("/api/flows"), 200)
    assert [f["flow_id"] for f in listed["flows"]] == ["r-2"]


# -- take-over with a job board: live claims are respected -----------------------------------


async def test_with_a_board_resume_and_cancel_refuse_a_live_owner_unless_forced() -> None:
    w, coord, journal = World(), MemoryCoordinator(), fc.MemoryJournal()
    w.hold = "b"
    owner = coord.board()
    job = await owner.post("three", flow_id="o-1")
    app = make_app(w.registry, journal, board=coord.board())
    async with (
        fc.Engine(journal) as e1,
        Conductor(owner, e1, w.registry, name="worker-7") as conductor,
        TestClient(TestServer(app)) as c,
    ):
        await w.reached.wait()  # the live owner runs task b
        token = (await journal.get_flow("o-1")).token  # type: ignore[union-attr]
        for action in ("resume", "cancel"):
            body = await _json(await c.post(f"/api/flows/o-1/{action}", headers=AUTH), 409)
            assert body["type"] == "FlowOwned"
            assert (body["owner"], body["job_id"], body["flow_id"]) == (
                "worker-7",
                job.job_id,
                "o-1",
            )
            assert "worker-7" in body["error"]
            assert "force" in body["hint"]
        # submitting the id again is a take-over too
        req = {"flow": "three", "flow_id": "o-1"}
        body = await _json(await c.post("/api/flows", json=req, headers=AUTH), 409)
        assert body["type"] == "FlowOwned"
        for bad in ("/api/flows/o-1/resume?force=maybe", "/api/flows/o-1/cancel?force=2"):
            await _json(await c.post(bad, headers=AUTH), 400)
        await _json(await c.post("/api/flows/o-1/resume", json={"force": "yes"}, headers=AUTH), 400)
        assert (await journal.get_flow("o-1")).token == token  # type: ignore[union-attr]

        w.hold = None  # the take-over passes b; the owner's b still waits at the gate
        body = await _json(await c.post("/api/flows/o-1/resume?force=true", headers=AUTH), 202)
        assert body["action"] == "resumed"
        status = await _until(c, "o-1", lambda s: s["finished"])
        assert status["state"] == "SUCCESS"
        assert status["token"] == token + 1  # the live owner is fenced out
        w.gate.set()
        await _until_true(lambda: conductor.stats.lost == 1)  # its next write was refused


async def test_with_a_board_a_flow_nobody_holds_is_taken_over_and_force_is_in_the_body() -> None:
    w, coord, journal = World(), MemoryCoordinator(), fc.MemoryJournal()
    w.hold = "b"
    async with fc.Engine(journal) as e1:  # ran without a board, then stopped
        handle = await e1.start(w.three(), flow_id="n-1")
        await w.reached.wait()
        handle.stop()
        w.gate.set()
        with pytest.raises(fc.FlowCancelled):
            await handle.wait()
    async with TestClient(TestServer(make_app(w.registry, journal, board=coord.board()))) as c:
        await _json(await c.post("/api/flows/n-1/cancel", json={"force": False}, headers=AUTH), 202)
        status = await _until(c, "n-1", lambda s: s["finished"])
    assert status["state"] == "CANCELLED"


async def test_concurrent_take_overs_of_one_flow_fence_it_once(gate: Gate, tmp_path: Path) -> None:
    """The engine refuses a flow id it is starting already (FlowRunning, 409), so of
    concurrent take-overs one fences and runs the flow; the others find it being started
    (409), running here (resumed, 202) or finished (409). No guard of the API's own."""
    journal = fc.SQLiteJournal(tmp_path / "j.sqlite")  # a thread per call: real interleaving
    registry = make_registry(gate)
    async with TestClient(TestServer(make_app(registry, journal))) as c:
        await _start_gated(c, "cc-1")
        await _json(await c.post("/api/flows/cc-1/stop", headers=AUTH), 202)
        gate.release.set()
        await _until(c, "cc-1", lambda s: s["state"] == "SUSPENDED" and not s["running_here"])
        answers: list[tuple[int, str | None]] = []

        async def resume() -> None:
            resp = await c.post("/api/flows/cc-1/resume", headers=AUTH)
            answers.append((resp.status, (await resp.json()).get("type")))

        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(resume)
        assert (202, None) in answers
        assert set(answers) <= {(202, None), (409, "FlowRunning"), (409, "FlowFinished")}
        status = await _until(c, "cc-1", lambda s: s["finished"])
        assert status["state"] == "SUCCESS"
        assert status["token"] == 1  # fenced by one take-over, not one per request


@pytest.mark.zookeeper
async def test_a_zookeeper_board_opened_with_the_app_guards_take_overs(
    zk_hosts: str, zk_namespace: str
) -> None:
    w, journal = World(), fc.MemoryJournal()
    w.hold = "b"
    app = make_app(
        w.registry,
        journal,
        board_factory=lambda: open_board(zk_hosts=zk_hosts, namespace=zk_namespace),
    )
    async with (
        open_board(zk_hosts=zk_hosts, namespace=zk_namespace) as owner,
        fc.Engine(journal) as e1,
        Conductor(owner, e1, w.registry, name="zk-worker") as conductor,
    ):
        await owner.post("three", flow_id="z-1")
        await w.reached.wait()
        async with TestClient(TestServer(app)) as c:
            body = await _json(await c.post("/api/flows/z-1/cancel", headers=AUTH), 409)
            assert (body["type"], body["owner"]) == ("FlowOwned", "zk-worker")
            w.hold = None
            resp = await c.post("/api/flows/z-1/cancel", json={"force": True}, headers=AUTH)
            assert (await _json(resp, 202))["action"] == "cancelling"
            status = await _until(c, "z-1", lambda s: s["finished"])
            assert status["state"] == "CANCELLED"
            w.gate.set()
            await _until_true(lambda: conductor.stats.lost == 1)  # fenced at its next write
            # a flow no live member holds: taken over at once
            async with fc.Engine(journal) as e2:
                h = await e2.start(w.three(), flow_id="z-2")
                h.stop()
                with pytest.raises(fc.FlowCancelled):
                    await h.wait()
            await _json(await c.post("/api/flows/z-2/resume", headers=AUTH), 202)
            status = await _until(c, "z-2", lambda s: s["finished"])
            assert status["state"] == "SUCCESS"


def test_setup_takes_one_board_at_most(gate: Gate) -> None:
    coord = MemoryCoordinator()
    with pytest.raises(ConfigurationError, match="at most one"):
        fcweb.setup(
            web.Application(),
            registry=make_registry(gate),
            token=None,
            engine=fc.Engine(),
            board=coord.board(),
            board_factory=lambda: contextlib.nullcontext(coord.board()),
        )
    with pytest.raises(ConfigurationError, match="JobBoard"):
        fcweb.setup(
            web.Application(),
            registry=make_registry(gate),
            token=None,
            engine=fc.Engine(),
            board="zk1:2181",  # type: ignore[arg-type]
        )


# -- journal and graphs ------------------------------------------------------------------------


async def test_journal_lists_entries_and_pages(client: Client) -> None:
    req = {"flow": "quick", "inputs": {"size": 2}, "flow_id": "j-1"}
    await _json(await client.post("/api/flows?wait=10", json=req, headers=AUTH), 200)
    body = await _json(await client.get("/api/flows/j-1/journal"), 200)
    entries = body["entries"]
    assert body["next_seq"] is None
    assert [e["seq"] for e in entries] == list(range(len(entries)))
    kinds = [e["kind"] for e in entries]
    assert kinds[0] == "flow.created"
    assert kinds[-1] == "flow.state"
    assert entries[0]["data"]["inputs"] == {"size": 2}
    assert entries[-1]["state"] == "SUCCESS"
    assert {e["task"] for e in entries if e["kind"] == "task.succeeded"} == {"add", "double"}
    page = await _json(await client.get("/api/flows/j-1/journal?after_seq=0&limit=2"), 200)
    assert [e["seq"] for e in page["entries"]] == [1, 2]
    assert page["next_seq"] == 2
    await _json(await client.get("/api/flows/j-1/journal?after_seq=x"), 400)


async def test_graph_svg_colours_nodes_by_state(client: Client) -> None:
    await _start_gated(client, "v-1")
    resp = await client.get("/api/flows/v-1/graph.svg")
    assert resp.status == 200
    assert resp.content_type == "image/svg+xml"
    root = ET.fromstring(await resp.text())
    ns = {"s": "http://www.w3.org/2000/svg"}
    nodes = {g.get("data-task"): g for g in root.iterfind(".//s:g", ns) if g.get("data-task")}
    assert set(nodes) == {"one", "wait", "done"}
    states = {name: g.get("data-state") for name, g in nodes.items()}
    assert states == {"one": "SUCCESS", "wait": "RUNNING", "done": "PENDING"}
    fills = {name: g.find("s:rect", ns).get("fill") for name, g in nodes.items()}  # type: ignore[union-attr]
    assert fills == {"one": "#98fb98", "wait": "#add8e6", "done": "#ffffff"}
    edges = {
        (p.get("data-from"), p.get("data-to"))
        for p in root.iterfind(".//s:path[@class='edge']", ns)
    }
    assert edges == {("one", "wait"), ("wait", "done")}
    xs = {name: float(g.find("s:rect", ns).get("x")) for name, g in nodes.items()}  # type: ignore[union-attr,arg-type]
    assert xs["one"] < xs["wait"] < xs["done"]  # one layer per step, left to right


async def test_graph_dot(client: Client) -> None:
    await _start_gated(client, "d-1")
    resp = await client.get("/api/flows/d-1/graph.dot")
    assert resp.status == 200
    text = await resp.text()
    assert text.startswith('digraph "gated"')
    assert '"one" -> "wait"' in text
    assert "fillcolor=lightblue" in text


# -- lifetime ----------------------------------------------------------------------------------


async def test_shutdown_leaves_running_flows_resumable(gate: Gate) -> None:
    journal = fc.MemoryJournal()
    registry = make_registry(gate)
    app = make_app(registry, journal, shutdown_timeout=0.2)
    async with TestClient(TestServer(app)) as c:
        await _start_gated(c, "z-1")
    rec = await journal.get_flow("z-1")
    assert rec is not None
    assert rec.state in ("RUNNING", "SUSPENDED")
    with pytest.raises(fc.errors.JournalUnavailable):
        fcweb.get_engine(app)
    gate.release.set()
    async with TestClient(TestServer(make_app(registry, journal))) as c:
        await _json(await c.post("/api/flows/z-1/resume", headers=AUTH), 202)
        status = await _until(c, "z-1", lambda s: s["finished"])
        assert status["state"] == "SUCCESS"


async def test_dashboard_is_served(client: Client) -> None:
    resp = await client.get("/")
    assert resp.status == 200
    html = await resp.text()
    assert '<meta name="flowcoord-api" content="/api">' in html
    assert "/_flowcoord/app.js" in html
    resp = await client.get("/_flowcoord/app.js")
    assert resp.status == 200
    assert "graph.svg" in await resp.text()
    assert (await client.get("/_flowcoord/style.css")).status == 200


async def test_setup_rejects_bad_options(gate: Gate) -> None:
    registry = make_registry(gate)
    engine = fc.Engine()
    with pytest.raises(ConfigurationError, match="exactly one"):
        fcweb.setup(web.Application(), registry=registry, token=None)
    with pytest.raises(ConfigurationError, match="exactly one"):
        fcweb.setup(
            web.Application(),
            registry=registry,
            token=None,
            engine=engine,
            engine_factory=lambda: engine,
        )
    with pytest.raises(ConfigurationError, match="prefix"):
        fcweb.setup(web.Application(), registry=registry, token=None, engine=engine, prefix="/")
    with pytest.raises(ConfigurationError, match="token"):
        fcweb.setup(web.Application(), registry=registry, token="", engine=engine)
    app = web.Application()
    fcweb.setup(app, registry=registry, token="t", engine=engine, prefix="/flowcoord/")
    with pytest.raises(ConfigurationError, match="already"):
        fcweb.setup(app, registry=registry, token="t", engine=engine)
    with pytest.raises(ConfigurationError, match="setup"):
        fcweb.get_engine(web.Application())


async def test_custom_prefix_and_no_dashboard(gate: Gate, journal: fc.MemoryJournal) -> None:
    app = web.Application()
    fcweb.setup(
        app,
        engine=fc.Engine(journal),
        registry=make_registry(gate),
        token=TOKEN,
        prefix="/flowcoord/v1",
        dashboard=False,
    )
    async with TestClient(TestServer(app)) as c:
        resp = await c.post(
            "/flowcoord/v1/flows?wait=5",
            json={"flow": "quick", "inputs": {"size": 1}},
            headers=AUTH,
        )
        body = await _json(resp, 200)
        assert body["url"].startswith("/flowcoord/v1/flows/")
        assert (await c.get("/")).status == 404


async def test_resubmitting_an_unfinished_flow_id_resumes_it(client: Client, gate: Gate) -> None:
    await _start_gated(client, "u-1")
    await _json(await client.post("/api/flows/u-1/stop", headers=AUTH), 202)
    gate.release.set()
    await _until(client, "u-1", lambda s: s["state"] == "SUSPENDED" and not s["running_here"])
    req = {"flow": "gated", "inputs": {"size": 99}, "flow_id": "u-1"}
    body = await _json(await client.post("/api/flows", json=req, headers=AUTH), 202)
    assert body["action"] == "resumed"
    status = await _until(client, "u-1", lambda s: s["finished"])
    assert status["state"] == "SUCCESS"
    assert status["inputs"] == {"size": 3}  # the journaled inputs


# -- the layout and the package's face ---------------------------------------------------------


def test_layers_are_longest_paths_from_the_sources() -> None:
    lay = layout(["a", "b", "c", "d"], [("a", "b"), ("b", "c"), ("a", "c"), ("d", "c")])
    assert {n: b.layer for n, b in lay.boxes.items()} == {"a": 0, "d": 0, "b": 1, "c": 2}
    assert lay.boxes["a"].x < lay.boxes["b"].x < lay.boxes["c"].x
    assert lay.boxes["d"].x == lay.boxes["a"].x
    assert lay.width > lay.boxes["c"].x + lay.boxes["c"].w
    empty = layout([], [])
    assert empty.boxes == {}
    assert empty.width > 0


def test_svg_escapes_names_and_draws_unknown_states_as_pending() -> None:
    name = '<img src=x onerror="alert(1)">&'
    svg = fcweb.render_svg([name, "b"], [(name, "b")], states={name: "WEIRD"}, title="t<")
    assert "<img" not in svg
    root = ET.fromstring(svg)  # well-formed XML
    ns = {"s": "http://www.w3.org/2000/svg"}
    nodes = [g for g in root.iterfind(".//s:g", ns) if g.get("data-task")]
    assert [g.get("data-task") for g in nodes] == [name, "b"]
    rect = nodes[0].find("s:rect", ns)
    assert rect is not None
    assert rect.get("fill") == "#ffffff"


def test_exported_members() -> None:
    assert fcweb.__all__ == sorted(fcweb.__all__, key=lambda n: (not n.isupper(), n))
    for name in fcweb.__all__:
        assert getattr(fcweb, name) is not None
    # "@py_builtins" & co.: pytest rewrites the asserts of a package that ships a pytest plugin
    public = {n for n in vars(fcweb) if n[0] not in "_@" and n != "annotations"}
    assert public == set(fcweb.__all__)


async def test_protect_reads_asks_for_the_token_on_reads() -> None:
    registry = make_registry(Gate())
    app = web.Application()
    fcweb.setup(
        app,
        engine_factory=lambda: fc.Engine(fc.MemoryJournal()),
        registry=registry,
        token=TOKEN,
        protect_reads=True,
    )
    async with TestClient(TestServer(app)) as c:
        await _json(await c.get("/api/flows"), 401)
        await _json(await c.get("/api/flows", headers={"Authorization": "Bearer nope"}), 403)
        body = await _json(await c.get("/api/flows", headers=AUTH), 200)
        assert body["flows"] == []
        assert (await c.get("/api/health")).status == 200
    with pytest.raises(fc.ConfigurationError, match="needs a token"):
        fcweb.setup(
            web.Application(),
            engine_factory=fc.Engine,
            registry=registry,
            token=None,
            protect_reads=True,
        )
