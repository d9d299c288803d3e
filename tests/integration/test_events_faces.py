"""Events sent from the faces: ``flowcoord flows send-event`` (a subprocess, another process
than the engine whose workflow waits: it finds the event in the shared SQLite journal) and
``POST /api/flows/{id}/events/{topic}`` (the token, JSON errors, idempotent under a key)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp.test_utils import TestClient, TestServer

import flowcoord as fc
import flowcoord.aiohttp as fcweb

pytestmark = pytest.mark.anyio

TOKEN = "ev-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def approval() -> fc.Workflow:
    async def ask(who: str) -> str:
        return who

    @fc.workflow(name="approval")
    async def wf(ctx: fc.Context, who: str) -> list[Any]:
        await ctx.step(ask, who)
        return [await ctx.wait_event("vote"), await ctx.wait_event("vote")]

    return wf


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWCOORD_")}
    return subprocess.run(
        [sys.executable, "-m", "flowcoord", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


async def test_send_event_from_the_cli_reaches_a_workflow_in_another_process(
    tmp_path: Path,
) -> None:
    journal = str(tmp_path / "j.sqlite")
    async with fc.Engine(fc.SQLiteJournal(journal)) as engine:
        handle = await engine.start(approval(), {"who": "ann"}, flow_id="ap-1")
        sent = await anyio.to_thread.run_sync(
            lambda: _cli(
                "flows",
                "send-event",
                "ap-1",
                "vote",
                "--value",
                '{"yes": true}',
                "--key",
                "k1",
                "--journal",
                journal,
                "--json",
            )
        )
        assert sent.returncode == 0, sent.stderr
        assert json.loads(sent.stdout) | {"sent_at": 0} == {
            "flow_id": "ap-1", "topic": "vote", "seq": 1, "key": "k1", "sent_at": 0,
        }  # fmt: skip
        again = await anyio.to_thread.run_sync(
            lambda: _cli("flows", "send-event", "ap-1", "vote", "--key", "k1", "--journal", journal)
        )
        assert again.returncode == 0, again.stderr
        assert "#1" in again.stdout  # the same event: the key sent it once
        plain = await anyio.to_thread.run_sync(
            lambda: _cli(
                "flows", "send-event", "ap-1", "vote", "--value", '"no"', "--journal", journal
            )
        )
        assert plain.returncode == 0, plain.stderr
        with anyio.fail_after(20):
            out = await handle.wait()
    assert out.result == [{"yes": True}, "no"]
    bad = _cli("flows", "send-event", "ap-1", "vote", "--value", "yes", "--journal", journal)
    assert bad.returncode != 0
    assert "--value is not JSON" in bad.stderr
    missing = _cli("flows", "send-event", "nobody", "vote", "--journal", journal, "--json")
    assert missing.returncode == 2
    error = json.loads(missing.stderr)
    assert (error["type"], error["hint"]) == (
        "FlowNotFound",
        "list flows with: flowcoord flows list --journal URL",
    )
    typo = _cli("flows", "send-event", "ap-1", "vote", "--journal", str(tmp_path / "typo.sqlite"))
    assert typo.returncode != 0
    assert not (tmp_path / "typo.sqlite").exists()  # never created


async def test_the_http_route_sends_with_the_token() -> None:
    registry = fc.FlowRegistry()
    registry.register("approval", approval())
    app = fcweb.create_app(
        registry=registry, engine_factory=lambda: fc.Engine(), token=TOKEN, shutdown_timeout=0.5
    )
    async with TestClient(TestServer(app)) as c:
        resp = await c.post(
            "/api/flows", json={"flow": "approval", "inputs": {"who": "ann"}, "flow_id": "ap-2"},
            headers=AUTH,
        )  # fmt: skip
        assert resp.status == 202, await resp.text()
        url = "/api/flows/ap-2/events/vote"
        assert (await c.post(url, json={"value": 1})).status == 401
        resp = await c.post(url, json={"value": {"yes": True}, "key": "k"}, headers=AUTH)
        assert resp.status == 201, await resp.text()
        body = await resp.json()
        assert (body["flow_id"], body["topic"], body["seq"], body["key"]) == (
            "ap-2",
            "vote",
            1,
            "k",
        )
        resp = await c.post(url, json={"value": "ignored", "key": "k"}, headers=AUTH)
        assert (await resp.json())["seq"] == 1  # the key sent it once
        resp = await c.post(url, json={"value": "no"}, headers=AUTH)
        assert (await resp.json())["seq"] == 2
        with anyio.fail_after(10):
            while (await (await c.get("/api/flows/ap-2")).json())["state"] != "SUCCESS":  # noqa: ASYNC110 - bounded
                await anyio.sleep(0.02)
        view = await (await c.get("/api/flows/ap-2")).json()
        assert view["result"] == [{"yes": True}, "no"]
        bad = await c.post("/api/flows/ap-2/events/bad topic", json={}, headers=AUTH)
        assert bad.status == 400
        assert set(await bad.json()) >= {"error", "hint"}
        missing = await c.post("/api/flows/nobody/events/vote", json={}, headers=AUTH)
        assert missing.status == 404
        spec = await (await c.get("/api/openapi.json")).json()
        assert "post" in spec["paths"]["/api/flows/{flow_id}/events/{topic}"]
