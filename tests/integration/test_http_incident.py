"""The JSON API for operators in an incident: newest-first pages that stay put while flows
are added, filters, inputs checked against the tasks' annotations, values redacted and cut,
and what failed said in the status (through a real server on loopback)."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import flowcoord as fc
import flowcoord.aiohttp as fcweb
from flowcoord.aiohttp._layout import FAILED_COLOURS
from flowcoord.errors import ConfigurationError
from flowcoord.journal import Entry, EventKind, FlowRecord

pytestmark = pytest.mark.anyio

TOKEN = "incident-api-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Client = TestClient[web.Request, web.Application]


def make_registry() -> fc.FlowRegistry:
    @fc.task(provides="total")
    async def order(qty: int, sku: str, gift: bool = False) -> dict[str, Any]:
        return {"total": qty * 2, "gift": gift, "sku": sku}

    @fc.task(provides="token")
    async def login(password: str) -> str:
        return "t-" + "x" * 500

    @fc.task
    async def boom(total: dict[str, Any]) -> None:
        raise ValueError("no capacity left")

    async def step(n: int) -> int:
        return n + 1

    @fc.workflow(name="counter")
    async def counter(ctx: fc.Context, n: int, label: str = "x") -> int:
        return int(await ctx.step(step, n))

    registry = fc.FlowRegistry()
    registry.register("order", lambda: fc.Linear("order", order))
    registry.register("login", lambda: fc.Linear("login", login))
    registry.register("failing", lambda: fc.Linear("failing", order, boom))
    registry.register("counter", counter)
    return registry


def redact(field: str, value: Any) -> Any:
    if field == "inputs.password":
        return "[redacted]"
    if field == "tasks.login.result":
        raise RuntimeError("a bug in the app's hook")  # fails closed: the value is hidden
    return value


def make_app(journal: fc.journal.JournalBackend, **kwargs: Any) -> web.Application:
    app = web.Application()
    kwargs.setdefault("token", TOKEN)
    fcweb.setup(app, engine_factory=lambda: fc.Engine(journal), registry=make_registry(), **kwargs)
    return app


@pytest.fixture
def journal() -> fc.MemoryJournal:
    return fc.MemoryJournal()


@pytest.fixture
async def client(journal: fc.MemoryJournal) -> AsyncIterator[Client]:
    app = make_app(journal, redact=redact, max_value_size=100)
    async with TestClient(TestServer(app)) as c:
        yield c


async def _json(resp: Any, status: int) -> Any:
    body = await resp.json()
    assert resp.status == status, body
    return body


async def _submit(client: Client, flow: str, inputs: dict[str, Any], **kw: Any) -> Any:
    body = {"flow": flow, "inputs": inputs, **kw}
    return await _json(await client.post("/api/flows?wait=10", json=body, headers=AUTH), 200)


async def _ids(client: Client, query: str = "") -> list[str]:
    page = await _json(await client.get(f"/api/flows?{query}"), 200)
    return [f["flow_id"] for f in page["flows"]]


# -- newest first ---------------------------------------------------------------------------


async def test_pages_are_newest_first_and_stay_put_while_flows_are_added(client: Client) -> None:
    ids = ["m", "c", "x", "a", "q", "b", "z"]  # started in this order: neither by id
    for flow_id in ids:
        await _submit(client, "order", {"qty": 1, "sku": "s"}, flow_id=flow_id)
    page1 = await _json(await client.get("/api/flows?limit=3"), 200)
    assert [f["flow_id"] for f in page1["flows"]] == ["z", "b", "q"]
    assert page1["next"]
    for flow_id in ["n1", "n2"]:  # newer: they go before page 1, not onto page 2
        await _submit(client, "order", {"qty": 1, "sku": "s"}, flow_id=flow_id)
    page2 = await _json(await client.get(f"/api/flows?limit=3&after={page1['next']}"), 200)
    assert [f["flow_id"] for f in page2["flows"]] == ["a", "x", "c"]
    page3 = await _json(await client.get(f"/api/flows?limit=3&after={page2['next']}"), 200)
    assert ([f["flow_id"] for f in page3["flows"]], page3["next"]) == (["m"], None)
    assert await _ids(client, "limit=2") == ["n2", "n1"]
    assert page1["limit"] == 3
    assert (page1["state"], page1["name"], page1["since"], page1["until"]) == (None,) * 4
    # a cursor is the server's own: anything else is a 400 saying what to send
    for bad in ["z", "c1.bm9wZQ", "x" * 513]:
        body = await _json(await client.get(f"/api/flows?after={bad}"), 400)
        assert body["error"].startswith(("'", "after= is too long")), body
        assert "next" in body["hint"]


async def test_filters_by_states_name_and_time(client: Client, journal: fc.MemoryJournal) -> None:
    await _submit(client, "order", {"qty": 1, "sku": "a"}, flow_id="o-1")
    await _submit(client, "failing", {"qty": 1, "sku": "a"}, flow_id="f-1")
    await _submit(client, "login", {"password": "p"}, flow_id="l-1")
    old = time.time() - 3 * 86400  # a flow from three days ago
    created = Entry("old-1", 0, EventKind.FLOW_CREATED, None, '{"name":"order"}', at=old)
    assert await journal.create_flow(
        FlowRecord("old-1", "order", "SUCCESS", created_at=old), [created]
    )

    assert await _ids(client) == ["l-1", "f-1", "o-1", "old-1"]
    assert await _ids(client, "state=reverted") == ["f-1"]
    assert await _ids(client, "state=SUCCESS,reverted") == ["l-1", "f-1", "o-1", "old-1"]
    page = await _json(await client.get("/api/flows?state=success, Reverted"), 200)
    assert page["state"] == "SUCCESS,REVERTED"
    assert await _ids(client, "name=order") == ["o-1", "old-1"]
    assert await _ids(client, "name=*in*") == ["l-1", "f-1"]
    assert await _ids(client, "name=l?gin") == ["l-1"]
    assert await _ids(client, "since=1d") == ["l-1", "f-1", "o-1"]
    assert await _ids(client, "until=1d") == ["old-1"]
    assert await _ids(client, f"since={old}&until={old + 1}") == ["old-1"]
    iso = datetime.fromtimestamp(old - 60, UTC).isoformat().replace("+00:00", "Z")
    assert await _ids(client, f"since={iso}&until=2d&name=order") == ["old-1"]
    assert await _ids(client, "since=2999-01-01T00:00%2B02:00") == []
    page = await _json(await client.get(f"/api/flows?since={old}&name=order"), 200)
    assert (page["since"], page["name"]) == (old, "order")

    for query, fragment in [
        ("state=done", "unknown state 'done'"),
        ("state=SUCCESS,nope", "unknown state 'nope'"),
        ("since=yesterday", "since='yesterday' is not a time"),
        ("until=nan", "until='nan' is not a time"),
        ("name=" + "x" * 300, "name= is too long"),
    ]:
        body = await _json(await client.get(f"/api/flows?{query}"), 400)
        assert fragment in body["error"], body
        assert body["hint"]


# -- inputs checked against the tasks' annotations -----------------------------------------------


async def test_inputs_are_converted_by_annotation_and_refused_when_they_do_not_fit(
    client: Client, journal: fc.MemoryJournal
) -> None:
    done = await _submit(client, "order", {"qty": "2", "sku": "s-1", "gift": "false"})
    assert done["state"] == "SUCCESS"
    assert done["inputs"] == {"qty": 2, "sku": "s-1", "gift": False}
    assert done["tasks"][0]["result"] == {"total": 4, "gift": False, "sku": "s-1"}  # not "22"

    before = await _ids(client)
    bad = {"flow": "order", "inputs": {"qty": "two", "sku": "s"}, "flow_id": "bad-1"}
    body = await _json(await client.post("/api/flows", json=bad, headers=AUTH), 422)
    assert body["error"] == (
        "flow 'order': input 'qty': 'two' is not an integer (task 'order' takes qty: int)"
    )
    assert (body["input"], body["expected"], body["type"]) == ("qty", "int", "FlowDefinitionError")
    assert body["hint"] == "send 'qty' as int"
    unknown = {"flow": "order", "inputs": {"qty": 1, "sku": "s", "qyt": 3, "colour": "red"}}
    body = await _json(await client.post("/api/flows", json=unknown, headers=AUTH), 422)
    assert "unknown inputs 'colour', 'qyt'; its inputs are: gift, qty, sku" in body["error"]
    assert (body["unknown"], body["known"]) == (["colour", "qyt"], ["gift", "qty", "sku"])
    assert "gift, qty, sku" in body["hint"]
    body = await _json(
        await client.post(
            "/api/flows", json={"flow": "order", "inputs": {"qty": True}}, headers=AUTH
        ),
        422,
    )
    assert body["input"] == "qty"
    # a workflow's inputs are its parameters
    done = await _submit(client, "counter", {"n": "41"})
    assert (done["state"], done["result"]) == ("SUCCESS", 42)
    body = await _json(
        await client.post(
            "/api/flows", json={"flow": "counter", "inputs": {"n": 1, "m": 2}}, headers=AUTH
        ),
        422,
    )
    assert body["unknown"] == ["m"]
    assert body["known"] == ["label", "n"]
    # nothing was journaled for the refused submissions
    assert len(await _ids(client)) == len(before) + 1
    assert await journal.get_flow("bad-1") is None


# -- values as shown: redacted, cut ------------------------------------------------------------


async def test_values_are_redacted_and_cut_in_the_status_and_the_journal(
    client: Client, journal: fc.MemoryJournal
) -> None:
    status = await _submit(client, "login", {"password": "hunter2"}, flow_id="l-1")
    assert status["inputs"] == {"password": "[redacted]"}
    assert status["tasks"][0]["result"] == "[hidden: the redaction hook failed]"
    page = await _json(await client.get("/api/flows/l-1/journal"), 200)
    created = page["entries"][0]
    assert created["data"]["inputs"] == {"password": "[redacted]"}
    succeeded = next(e for e in page["entries"] if e["kind"] == "task.succeeded")
    assert succeeded["data"]["result"] == "[hidden: the redaction hook failed]"
    text = await (await client.get("/api/flows/l-1/journal")).text()
    assert "hunter2" not in text
    assert "xxxx" not in text
    assert "hunter2" not in await (await client.get("/api/flows/l-1")).text()
    # the journal itself keeps the values: only what is shown changes
    assert "hunter2" in (await journal.read("l-1"))[0].data

    status = await _submit(client, "order", {"qty": 1, "sku": "s" * 150})
    assert status["inputs"]["sku"] == {"$truncated": 152, "preview": '"' + "s" * 99}
    result = status["tasks"][0]["result"]
    assert result["$truncated"] > 100
    assert result["preview"].startswith('{"total": 2')


async def test_without_a_limit_values_are_whole(journal: fc.MemoryJournal) -> None:
    async with TestClient(TestServer(make_app(journal, max_value_size=None))) as c:
        status = await _submit(c, "login", {"password": "hunter2"})
        assert status["inputs"] == {"password": "hunter2"}
        assert status["tasks"][0]["result"] == "t-" + "x" * 500


def test_setup_checks_the_redaction_options(journal: fc.MemoryJournal) -> None:
    with pytest.raises(ConfigurationError, match="redact must be a function"):
        make_app(journal, redact="password")
    for bad in (0, 15, True, 2.5, "4k"):
        with pytest.raises(ConfigurationError, match="max_value_size must be"):
            make_app(journal, max_value_size=bad)


# -- what failed ---------------------------------------------------------------------------------


async def test_the_status_says_which_task_failed_the_flow(client: Client) -> None:
    status = await _submit(client, "failing", {"qty": 1, "sku": "a"}, flow_id="f-1")
    assert status["state"] == "REVERTED"
    tasks = {t["name"]: t for t in status["tasks"]}
    assert (tasks["boom"]["state"], tasks["boom"]["failed"]) == ("REVERTED", True)
    assert (tasks["order"]["state"], tasks["order"]["failed"]) == ("REVERTED", False)
    summary = status["summary"]
    assert summary["cause"] == "failure"
    assert (summary["task"], summary["attempt"], summary["failed"]) == ("boom", 1, ["boom"])
    assert summary["failure"]["message"] == "no capacity left"
    assert status["failure"] == summary["failure"]  # a pattern flow's failure: the cause
    assert sorted(summary["reverted"]) == ["boom", "order"]
    assert summary["revert_failed"] == []
    assert summary["reverting"] == []
    assert summary["at"] <= summary["revert_started_at"] <= summary["ended_at"]
    assert [p["state"] for p in status["phases"]] == ["RUNNING", "REVERTING", "REVERTED"]
    assert [s["kind"] for s in tasks["boom"]["spans"]] == ["run", "revert"]
    assert [s["state"] for s in tasks["boom"]["spans"]] == ["FAILURE", "REVERTED"]
    # the graph: the failed task drawn apart
    svg = await (await client.get("/api/flows/f-1/graph.svg")).text()
    ns = {"s": "http://www.w3.org/2000/svg"}
    nodes = {g.get("data-task"): g for g in ET.fromstring(svg).iterfind(".//s:g[@class]", ns)}
    assert nodes["boom"].get("data-failed") == "true"
    rect = nodes["boom"].find("s:rect", ns)
    assert rect is not None
    assert rect.get("fill") == FAILED_COLOURS[0]
    assert nodes["order"].get("data-failed") is None
    # a flow that succeeded has no summary
    ok = await _submit(client, "order", {"qty": 1, "sku": "a"})
    assert ok["summary"] is None
    assert ok["failure"] is None
    assert [t["failed"] for t in ok["tasks"]] == [False]
