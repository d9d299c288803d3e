"""The job board's JSON API (GET/POST /api/jobs, /queues, /members, /trash, trash, requeue,
purge) through a real server on loopback: on the in-memory twin, and on a ZooKeeper board
opened with the app; the token for changes, 404/409/422 JSON errors, and 501 without a board."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import flowcoord as fc
import flowcoord.aiohttp as fcweb
from flowcoord.coordination import MemoryCoordinator, open_board

pytestmark = pytest.mark.anyio

TOKEN = "jobs-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Client = TestClient[web.Request, web.Application]


def make_registry() -> fc.FlowRegistry:
    @fc.task(provides="vm")
    async def allocate(size: int, zone: str = "eu") -> str:
        return f"vm-{size}-{zone}"

    registry = fc.FlowRegistry()
    registry.register("provision", lambda: fc.Linear("provision", allocate))
    return registry


def make_app(**kwargs: Any) -> web.Application:
    kwargs.setdefault("token", TOKEN)
    return fcweb.create_app(
        registry=make_registry(),
        engine_factory=lambda: fc.Engine(fc.MemoryJournal()),
        shutdown_timeout=0.5,
        **kwargs,
    )


def redact(field: str, value: Any) -> Any:
    return "***" if field == "inputs.zone" else value


async def _ok(resp: Any, status: int = 200) -> Any:
    body = await resp.json()
    assert resp.status == status, body
    return body


async def _error(resp: Any, status: int) -> dict[str, Any]:
    body: dict[str, Any] = await resp.json()
    assert resp.status == status, body
    assert set(body) >= {"error", "hint"}
    return body


async def test_post_list_show_and_the_key_makes_a_post_idempotent() -> None:
    coord = MemoryCoordinator()
    board = coord.board()
    await board.declare_queue("bulk")
    async with TestClient(TestServer(make_app(board=board, redact=redact))) as c:
        body: dict[str, Any] = {"flow": "provision", "inputs": {"size": "2", "zone": "us"}}
        body |= {"key": "order-9", "priority": 5, "queue": "bulk", "flow_id": "p-1"}
        resp = await c.post("/api/jobs", json=body)
        assert resp.status == 401  # changes need the token
        resp = await c.post("/api/jobs", json=body, headers=AUTH)
        job = await _ok(resp, 201)
        assert resp.headers["Location"] == job["url"] == f"/api/jobs/{job['job_id']}"
        assert (job["flow"], job["flow_id"], job["key"], job["queue"], job["priority"]) == (
            "provision",
            "p-1",
            "order-9",
            "bulk",
            5,
        )
        assert job["inputs"] == {"size": 2, "zone": "***"}  # converted, then shown redacted
        assert (job["status"], job["deduplicated"]) == ("waiting", False)
        assert dict((await board.get(job["job_id"])).inputs) == {"size": 2, "zone": "us"}

        again = await _ok(await c.post("/api/jobs", json=body, headers=AUTH), 200)
        assert (again["job_id"], again["deduplicated"]) == (job["job_id"], True)
        other = {**body, "inputs": {"size": 3}}
        conflict = await _error(await c.post("/api/jobs", json=other, headers=AUTH), 409)
        assert conflict["type"] == "JobKeyConflict"
        assert (conflict["key"], conflict["job_id"]) == ("order-9", job["job_id"])
        assert "order-9" in conflict["error"]

        later = time.time() + 3600
        posted = await c.post(
            "/api/jobs",
            json={"flow": "provision", "inputs": {"size": 1}, "not_before": later},
            headers=AUTH,
        )
        delayed = await _ok(posted, 201)
        assert delayed["status"] == "delayed"
        assert delayed["not_before"] == pytest.approx(later)
        iso = await c.post(
            "/api/jobs",
            json={"flow": "provision", "inputs": {"size": 1}, "not_before": "2020-01-01T00:00Z"},
            headers=AUTH,
        )
        assert (await _ok(iso, 201))["status"] == "waiting"  # a time past is now

        listed = await _ok(await c.get("/api/jobs"))
        assert listed["jobs"][0]["job_id"] == job["job_id"]  # priority 5 first
        assert len(listed["jobs"]) == 3
        only = await _ok(await c.get("/api/jobs?queue=bulk&limit=5"))
        assert [j["flow_id"] for j in only["jobs"]] == ["p-1"]
        assert (only["queue"], only["limit"], only["more"]) == ("bulk", 5, False)
        shown = await _ok(await c.get(job["url"]))
        assert (shown["job_id"], shown["inputs"]["zone"]) == (job["job_id"], "***")
        missing = await _error(await c.get("/api/jobs/" + "0" * 24), 404)
        assert missing["type"] == "JobNotFound"
        await _error(await c.get("/api/jobs?queue=nope"), 404)


async def test_a_post_carries_a_partition_and_headers() -> None:
    board = MemoryCoordinator().board()
    await board.declare_queue("tenants", partition_limit=2, rate_limit=(10, 1.0))
    async with TestClient(TestServer(make_app(board=board))) as c:
        body = {"flow": "provision", "inputs": {"size": 1}, "queue": "tenants"}
        body |= {"partition": "acme", "headers": {"traceparent": "00-abc-01"}}
        job = await _ok(await c.post("/api/jobs", json=body, headers=AUTH), 201)
        assert (job["partition"], job["headers"]) == ("acme", {"traceparent": "00-abc-01"})
        (queue,) = [
            q for q in (await _ok(await c.get("/api/queues")))["queues"] if q["name"] == "tenants"
        ]
        assert (queue["config"]["partition_limit"], queue["config"]["rate_limit"]) == (2, [10, 1.0])
        bad = {**body, "headers": ["not", "an", "object"]}
        await _error(await c.post("/api/jobs", json=bad, headers=AUTH), 400)

        # the caller's trace context (W3C headers of the request) travels with the job
        parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        traced = {"flow": "provision", "inputs": {"size": 1}, "key": "traced"}
        resp = await c.post(
            "/api/jobs", json=traced, headers={**AUTH, "traceparent": parent, "tracestate": "a=1"}
        )
        job = await _ok(resp, 201)
        assert job["headers"] == {"traceparent": parent, "tracestate": "a=1"}
        assert (await board.get(job["job_id"])).headers == job["headers"]


async def test_bad_posts_are_refused_before_anything_is_posted() -> None:
    board = MemoryCoordinator().board()
    async with TestClient(TestServer(make_app(board=board))) as c:
        cases: list[tuple[dict[str, Any], int, str]] = [
            ({"flow": "provision", "inputs": {"size": 1}, "colour": 1}, 400, "unknown field"),
            ({"inputs": {"size": 1}}, 400, "'flow'"),
            ({"flow": "nope"}, 422, "nope"),
            ({"flow": "provision", "inputs": {"size": "big"}}, 422, "size"),
            ({"flow": "provision", "inputs": {"size": 1}, "queue": "nope"}, 422, "nope"),
            ({"flow": "provision", "inputs": {"size": 1}, "priority": "high"}, 400, "priority"),
            ({"flow": "provision", "inputs": {"size": 1}, "priority": 5000}, 400, "priority"),
            ({"flow": "provision", "inputs": {"size": 1}, "key": 7}, 400, "key"),
            ({"flow": "provision", "inputs": {"size": 1}, "not_before": "soon"}, 400, "time"),
            ({"flow": "provision", "inputs": {"size": 1}, "flow_id": "a b"}, 400, "flow_id"),
        ]
        for body, status, fragment in cases:
            err = await _error(await c.post("/api/jobs", json=body, headers=AUTH), status)
            assert fragment in err["error"], (body, err)
        assert await board.jobs() == []


async def test_trash_requeue_and_purge_with_the_token() -> None:
    coord = MemoryCoordinator()
    board, worker = coord.board(), coord.board()
    await worker.register("worker-1", {"host": "h1", "queues": ["default"], "capacity": 4})
    free = await board.post("provision", {"size": 1}, flow_id="free")
    held = await board.post("provision", {"size": 2}, flow_id="held")
    await worker.claim(held, "worker-1")
    async with TestClient(TestServer(make_app(board=board))) as c:
        url = f"/api/jobs/{free.job_id}/trash"
        assert (await c.post(url, json={"reason": "x"})).status == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (await c.post(url, json={"reason": "x"}, headers=wrong)).status == 403
        await _error(await c.post(url, json={}, headers=AUTH), 400)  # a reason is needed
        entry = await _ok(await c.post(url, json={"reason": "bad region"}, headers=AUTH))
        assert (entry["reason"], entry["job"]["flow_id"]) == ("bad region", "free")
        assert entry["trash_id"].startswith(free.job_id + "-")
        await _error(await c.post(url, json={"reason": "again"}, headers=AUTH), 404)
        refused = await _error(
            await c.post(f"/api/jobs/{held.job_id}/trash", json={"reason": "x"}, headers=AUTH),
            409,
        )
        assert refused["type"] == "JobAlreadyClaimed"
        assert "cancel or stop" in refused["error"]

        trash = await _ok(await c.get("/api/trash"))
        assert [t["trash_id"] for t in trash["trash"]] == [entry["trash_id"]]
        requeue = f"/api/trash/{entry['trash_id']}/requeue"
        assert (await c.post(requeue)).status == 401
        resp = await c.post(requeue, headers=AUTH)
        back = await _ok(resp, 201)
        assert (back["job_id"], back["flow_id"], back["claims"]) == (free.job_id, "free", 0)
        assert resp.headers["Location"] == back["url"]
        await _error(await c.post(requeue, headers=AUTH), 404)
        await _error(await c.post("/api/trash/not-an-id/requeue", headers=AUTH), 404)

        await board.trash_job(free.job_id, "one")
        assert (await c.post("/api/trash/purge", json={})).status == 401
        kept = await _ok(await c.post("/api/trash/purge", json={"before": 0}, headers=AUTH))
        assert kept == {"purged": 0, "before": 0.0}
        gone = await _ok(await c.post("/api/trash/purge", headers=AUTH))
        assert gone == {"purged": 1, "before": None}
        await _error(await c.post("/api/trash/purge", json={"all": True}, headers=AUTH), 400)


async def test_queues_and_members_say_who_runs_what() -> None:
    coord = MemoryCoordinator()
    board, worker = coord.board(), coord.board()
    await board.declare_queue("bulk", concurrency=2)
    info = {"host": "h1", "pid": 7, "queues": ["default", "bulk"], "worker_limits": {"bulk": 1}}
    await worker.register("worker-1", info)
    running = await board.post("provision", {"size": 1}, flow_id="r-1", queue="bulk")
    await board.post("provision", {"size": 2}, flow_id="w-1", queue="bulk")
    await board.post("provision", {"size": 3}, flow_id="d-1", not_before=time.time() + 600)
    await worker.claim(running, "worker-1")
    await board.trash_job((await board.post("provision", flow_id="t-1")).job_id, "why not")
    async with TestClient(TestServer(make_app(board=board, protect_reads=True))) as c:
        assert (await c.get("/api/queues")).status == 401  # reads need it too, here
        overview = await _ok(await c.get("/api/queues", headers=AUTH))
        queues = {q["name"]: q for q in overview["queues"]}
        assert set(queues) == {"default", "bulk"}
        bulk = queues["bulk"]
        assert (bulk["config"]["name"], bulk["config"]["concurrency"]) == ("bulk", 2)
        assert (bulk["queued"], bulk["waiting"], bulk["delayed"]) == (1, 1, 0)
        assert [(j["flow_id"], j["owner"]) for j in bulk["running"]] == [("r-1", "worker-1")]
        assert bulk["served_by"] == [{"member": "worker-1", "worker_limit": 1}]
        default = queues["default"]
        assert (default["waiting"], default["delayed"], default["running"]) == (0, 1, [])
        assert [t["reason"] for t in overview["trash"]] == ["why not"]
        assert overview["complete"] is True
        members = (await _ok(await c.get("/api/members", headers=AUTH)))["members"]
        assert [(m["name"], m["info"]["host"], m["claims"]) for m in members] == [
            ("worker-1", "h1", [running.job_id])
        ]
        assert [j["flow_id"] for j in members[0]["jobs"]] == ["r-1"]


async def test_without_a_board_the_routes_say_how_to_get_one() -> None:
    async with TestClient(TestServer(make_app())) as c:
        for method, path in [
            ("GET", "/api/jobs"),
            ("GET", "/api/jobs/" + "0" * 24),
            ("GET", "/api/queues"),
            ("GET", "/api/members"),
            ("GET", "/api/trash"),
            ("POST", "/api/jobs"),
            ("POST", f"/api/jobs/{'0' * 24}/trash"),
            ("POST", f"/api/trash/{'0' * 24}-0000000001/requeue"),
            ("POST", "/api/trash/purge"),
        ]:
            resp = await c.request(method, path, headers=AUTH, json={})
            err = await _error(resp, 501)
            assert "start serve with --zk" in err["error"], (method, path)


@pytest.mark.zookeeper
async def test_on_a_zookeeper_board_opened_with_the_app(zk_hosts: str, zk_namespace: str) -> None:
    app = make_app(board_factory=lambda: open_board(zk_hosts=zk_hosts, namespace=zk_namespace))
    async with (
        TestClient(TestServer(app)) as c,
        open_board(zk_hosts=zk_hosts, namespace=zk_namespace) as worker,
    ):

        async def post(path: str, body: dict[str, Any], status: int = 200) -> Any:
            return await _ok(await c.post(path, json=body, headers=AUTH), status)

        await worker.register("zk-worker", {"queues": ["default"], "capacity": 2})
        body = {"flow": "provision", "inputs": {"size": "4"}, "key": "zk-order-1"}
        job = await post("/api/jobs", body, 201)
        assert job["inputs"] == {"size": 4}
        assert (await post("/api/jobs", body))["deduplicated"] is True
        conflict = await c.post("/api/jobs", json={**body, "inputs": {"size": 5}}, headers=AUTH)
        assert (await _error(conflict, 409))["key"] == "zk-order-1"
        other = await post("/api/jobs", {"flow": "provision", "inputs": {"size": 1}}, 201)
        claim = await worker.claim(await worker.get(other["job_id"]), "zk-worker")
        trash_other = f"/api/jobs/{other['job_id']}/trash"
        refused = await c.post(trash_other, json={"reason": "x"}, headers=AUTH)
        assert (await _error(refused, 409))["type"] == "JobAlreadyClaimed"
        members = (await _ok(await c.get("/api/members")))["members"]
        assert [(m["name"], [j["job_id"] for j in m["jobs"]]) for m in members] == [
            ("zk-worker", [other["job_id"]])
        ]
        (default,) = (await _ok(await c.get("/api/queues")))["queues"]
        assert default["waiting"] == 1
        assert [j["owner"] for j in default["running"]] == ["zk-worker"]

        entry = await post(f"/api/jobs/{job['job_id']}/trash", {"reason": "zk says no"})
        trash = (await _ok(await c.get("/api/trash")))["trash"]
        assert [(t["trash_id"], t["reason"]) for t in trash] == [(entry["trash_id"], "zk says no")]
        back = await post(f"/api/trash/{entry['trash_id']}/requeue", {}, 201)
        assert (back["job_id"], back["key"], back["inputs"]) == (
            job["job_id"],
            "zk-order-1",
            {"size": 4},
        )
        await worker.abandon(claim)
        assert (await post(trash_other, {"reason": "released"}))["reason"] == "released"
        assert (await post("/api/trash/purge", {}))["purged"] == 1
        listed = await _ok(await c.get("/api/jobs"))
        assert [j["job_id"] for j in listed["jobs"]] == [job["job_id"]]
