"""The JSON API on a journal edited behind flowcoord's back: every route that replays the
flow answers 500 with a JSON error naming the entry (type JournalCorrupt, seq, kind, task),
writes nothing, and the raw journal stays readable for inspecting it."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import flowcoord as fc
import flowcoord.aiohttp as fcweb

pytestmark = pytest.mark.anyio

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Client = TestClient[web.Request, web.Application]


@fc.task(provides="a")
async def add(size: int) -> int:
    return size + 1


@fc.task(provides="b")
async def double(a: int) -> int:
    return a * 2


@fc.task
async def check(b: int) -> None:
    return None


def _build() -> fc.Flow:
    return fc.Linear("demo", add, double, check)


def _sql(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn, conn:
        return conn.execute(sql, params).fetchall()


def _entries(db: Path) -> list[tuple[Any, ...]]:
    return _sql(db, "SELECT * FROM entries ORDER BY flow_id, seq")


@pytest.fixture
async def db(tmp_path: Path) -> Path:
    """Flow f1 as a crash leaves it: add and double done (seq 0-5), check not started."""
    path = tmp_path / "j.sqlite"
    async with fc.Engine(fc.SQLiteJournal(path)) as engine:
        await engine.run(_build(), {"size": 2}, flow_id="f1")
    _sql(path, "DELETE FROM entries WHERE seq >= 6")
    _sql(path, "UPDATE flows SET state = 'RUNNING'")
    return path


@pytest.fixture
async def client(db: Path) -> AsyncIterator[Client]:
    registry = fc.FlowRegistry()
    registry.register("demo", _build)
    app = web.Application()
    fcweb.setup(
        app,
        engine_factory=lambda: fc.Engine(fc.SQLiteJournal(db)),
        registry=registry,
        token=TOKEN,
        shutdown_timeout=0.5,
    )
    async with TestClient(TestServer(app)) as c:
        yield c


def _corrupt_error(body: Any, seq: int, kind: str, task: str | None, what: str) -> None:
    where = f"seq {seq}, {kind}" + (f", task {task!r}" if task else "")
    assert body["error"] == f"flow 'f1': journal entry ({where}) is corrupt: {what}", body
    assert body["type"] == "JournalCorrupt"
    assert (body["flow_id"], body["seq"], body["kind"], body["task"]) == ("f1", seq, kind, task)
    assert "repair or delete that entry" in body["hint"]


_ROW = "INSERT INTO entries VALUES ('f1', 6, ?, ?, ?, NULL, 0, 1.0)"


@pytest.mark.parametrize(
    ("sql", "params", "seq", "kind", "task", "what"),
    [
        pytest.param(
            'UPDATE entries SET data = \'{"result":3,"attempt"\' WHERE seq = 3',
            (),
            3,
            "task.succeeded",
            "add",
            "its data is not valid JSON (Expecting ':' delimiter: line 1 column 22 (char 21))",
            id="succeeded data not JSON",
        ),
        pytest.param(
            "UPDATE entries SET state = 'DONE' WHERE seq = 1",
            (),
            1,
            "flow.state",
            None,
            "its state 'DONE' is not a flow state (one of PENDING, RUNNING, SUSPENDED, "
            "REVERTING, SUCCESS, REVERTED, FAILED, CANCELLED)",
            id="state unknown",
        ),
        pytest.param(
            _ROW,
            ("task.failed", "check", '[{"failure":{}}]'),
            6,
            "task.failed",
            "check",
            "its data is a list, not a JSON object",
            id="failed data of the wrong shape",
        ),
        pytest.param(
            _ROW,
            ("task.succeeded", "zzz", '{"result":null,"attempt":1}'),
            6,
            "task.succeeded",
            "zzz",
            "it names task 'zzz', which the flow does not have",
            id="succeeded for a task not in the flow",
        ),
    ],
)
async def test_status_of_a_corrupt_flow_is_a_500_naming_the_entry(
    client: Client,
    db: Path,
    sql: str,
    params: tuple[object, ...],
    seq: int,
    kind: str,
    task: str | None,
    what: str,
) -> None:
    _sql(db, sql, *params)
    resp = await client.get("/api/flows/f1")
    assert resp.status == 500
    _corrupt_error(await resp.json(), seq, kind, task, what)


async def test_every_route_that_replays_refuses_a_corrupt_flow_writing_nothing(
    client: Client, db: Path
) -> None:
    _sql(db, _ROW, "task.succeeded", "zzz", '{"result":null,"attempt":1}')
    before = _entries(db)
    requests: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "/api/flows/f1", None),
        ("GET", "/api/flows/f1/graph.svg", None),
        ("GET", "/api/flows/f1/graph.dot", None),
        ("POST", "/api/flows/f1/resume", None),
        ("POST", "/api/flows/f1/cancel", None),
        ("POST", "/api/flows/f1/retry", {"from_task": "double", "flow_id": "f2"}),
        ("POST", "/api/flows?wait=5", {"flow": "demo", "inputs": {"size": 2}, "flow_id": "f1"}),
    ]
    for method, path, body in requests:
        resp = await client.request(method, path, json=body, headers=AUTH)
        assert resp.status == 500, (method, path)
        assert resp.content_type == "application/json"
        what = "it names task 'zzz', which the flow does not have"
        _corrupt_error(await resp.json(), 6, "task.succeeded", "zzz", what)
        assert _entries(db) == before, (method, path)  # no entry added, no flow f2
    health = await (await client.get("/api/health")).json()
    assert health["running"] == 0
    # what one inspects a corrupt flow with does not replay it
    resp = await client.get("/api/flows/f1/journal")
    assert resp.status == 200
    raw = (await resp.json())["entries"]
    assert (raw[6]["seq"], raw[6]["kind"], raw[6]["task"]) == (6, "task.succeeded", "zzz")
    listed = await (await client.get("/api/flows")).json()
    assert [f["flow_id"] for f in listed["flows"]] == ["f1"]
