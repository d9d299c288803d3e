"""A workflow's step timeline in the dashboard, in real headless Chromium (the fixtures of
test_dashboard_browser.py: Debian's /usr/bin/chromium driven by Playwright; fails when it is
missing, ``FLOWCOORD_SKIP_BROWSER=1`` skips). Screenshots go to ``$FLOWCOORD_SHOTS``
(default /tmp/shots) as ``workflow_*.png``."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from aiohttp import web

import flowcoord as fc
import flowcoord.aiohttp as fcweb
from flowcoord.journal import Entry, EventKind, FlowRecord
from tests.integration.test_dashboard_browser import _open, browser, browser_ready

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

SHOTS = Path(os.environ.get("FLOWCOORD_SHOTS", "/tmp/shots"))
TOKEN = "wf-browser-token"
# Chromium started as test_dashboard_browser.py starts it: its fixtures, found here by name.
SHARED_FIXTURES = (browser_ready, browser)


class World:
    def __init__(self) -> None:
        self.release = anyio.Event()
        self.calls: dict[str, int] = {}

    def call(self, name: str) -> int:
        self.calls[name] = self.calls.get(name, 0) + 1
        return self.calls[name]


def make_registry(w: World) -> fc.FlowRegistry:
    async def nap(seconds: float) -> None:
        await anyio.sleep(seconds)

    async def reserve(size: int) -> str:
        await nap(0.03)
        return f"r{size}"

    async def unreserve(size: int, result: str | None) -> None:
        return None

    async def publish(r: str) -> str:
        await nap(0.06)
        return r + "-ip"

    async def copy(r: str) -> str:
        await nap(0.04)
        return r + "-copy"

    async def uncopy(r: str, result: str | None) -> None:
        raise OSError("the copy is locked")

    async def attach(r: str) -> str:
        await nap(0.02)
        return r + "-disk"

    async def detach(r: str, result: str | None) -> None:
        return None

    async def audit(r: str) -> None:
        await nap(0.01)

    async def flaky(r: str) -> str:
        await nap(0.015)
        if w.call("flaky") < 3:
            raise ValueError(f"flake {w.calls['flaky']}")
        return r

    async def unflaky(r: str, result: str | None) -> None:
        return None

    async def boom(r: str) -> None:
        await nap(0.02)
        raise RuntimeError("the disk is full")

    @fc.workflow(name="teardown")
    async def teardown(ctx: fc.Context, size: int) -> None:
        ctx.now()  # 1
        r = await ctx.step(reserve, size, revert=unreserve)  # 2
        await ctx.gather(  # 3, 4, 5
            ctx.step(publish, r),
            ctx.step(copy, r, revert=uncopy),
            ctx.step(attach, r, revert=detach),
        )
        if ctx.patched("audit-log"):  # 6
            await ctx.step(audit, r)  # 7
        await ctx.step(flaky, r, revert=unflaky, retry=fc.Times(3))  # 8
        await ctx.step(boom, r)  # 9

    async def hold(r: str) -> str:
        await w.release.wait()
        return r + "-held"

    async def unhold(r: str, result: str | None) -> None:
        return None

    @fc.workflow(name="provision")
    async def provision(ctx: fc.Context, size: int) -> str:
        r = await ctx.step(reserve, size, revert=unreserve)  # 1
        await ctx.gather(ctx.step(publish, r), ctx.step(attach, r, revert=detach))  # 2, 3
        ctx.uuid()  # 4
        return await ctx.step(hold, r, revert=unhold)  # 5

    registry = fc.FlowRegistry()
    registry.register("teardown", teardown)
    registry.register("provision", provision)
    return registry


class Server:
    def __init__(self, app: web.Application, url: str, world: World) -> None:
        self.app, self.url, self.world = app, url, world

    @property
    def engine(self) -> fc.Engine:
        return fcweb.get_engine(self.app)

    def build(self, name: str) -> Any:
        return fcweb.get_registry(self.app).build(name)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    world = World()
    app = web.Application()
    fcweb.setup(
        app,
        engine_factory=lambda: fc.Engine(fc.MemoryJournal()),
        registry=make_registry(world),
        token=TOKEN,
        shutdown_timeout=0.5,
    )
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield Server(app, f"http://{host}:{port}/", world)
    finally:
        world.release.set()
        await runner.cleanup()


async def _rows(page: Page) -> list[dict[str, Any]]:
    """Every step row, in the page's order: its data attributes and what it shows."""
    rows: list[dict[str, Any]] = await page.evaluate(
        """() => [...document.querySelectorAll('#steps .step:not(.head)')].map((r) => ({
              key: r.dataset.key,
              position: Number(r.dataset.position),
              kind: r.dataset.kind,
              state: r.dataset.state,
              revert: r.dataset.revertState,
              group: r.closest('.gather') ? Number(r.closest('.gather').dataset.group) : null,
              failed: r.dataset.failed === 'true',
              marks: r.querySelectorAll('.failed-mark').length,
              compact: r.classList.contains('compact'),
              bars: [...r.querySelectorAll('.bar.attempt')].map((b) => [
                b.dataset.state, b.classList.contains('reverted'),
                b.classList.contains('revert-failed'), parseFloat(b.style.left)]),
              markers: r.querySelectorAll('.marker').length,
              text: r.innerText,
              background: getComputedStyle(r).backgroundColor,
            }))"""
    )
    return rows


async def _shot(page: Page, name: str) -> None:
    await anyio.Path(SHOTS).mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"workflow_{name}.png"), full_page=True)


async def test_a_failed_workflow_as_a_step_timeline(browser: Browser, server: Server) -> None:
    with pytest.raises(fc.errors.RevertFailed):
        await server.engine.run(server.build("teardown"), {"size": 1}, flow_id="wf-failed")
    errors: list[str] = []
    page = await _open(browser, server.url + "#/flows/wf-failed", errors)
    await page.set_viewport_size({"width": 1280, "height": 900})
    await page.wait_for_selector('#steps .step[data-key="9:boom"][data-state="FAILURE"]')
    assert await page.locator("#flow-kind").inner_text() == "workflow"
    assert await page.locator("#pattern-view").is_hidden()
    assert await page.locator("#graph svg").count() == 0  # no graph asked for
    assert await page.locator("#flow-state").get_attribute("data-state") == "FAILED"
    rows = await _rows(page)
    brief = [(r["key"], r["kind"], r["state"], r["revert"], r["group"]) for r in rows]
    assert brief == [
        ("1:now", "value", "SUCCESS", "", None),
        ("2:reserve", "step", "SUCCESS", "REVERTED", None),
        ("3:publish", "step", "SUCCESS", "", 3),
        ("4:copy", "step", "SUCCESS", "REVERT_FAILURE", 3),
        ("5:attach", "step", "SUCCESS", "REVERTED", 3),
        ("6:patch:audit-log", "patch", "SUCCESS", "", None),
        ("7:audit", "step", "SUCCESS", "", None),
        ("8:flaky", "step", "SUCCESS", "REVERTED", None),
        ("9:boom", "step", "FAILURE", "", None),
    ]
    by = {r["key"]: r for r in rows}
    # the failed step stands out: its mark, its colour; no other row has them
    assert [r["key"] for r in rows if r["failed"]] == ["9:boom"]
    assert [r["key"] for r in rows if r["marks"]] == ["9:boom"]
    assert by["9:boom"]["background"] == "rgb(253, 236, 234)"
    assert by["7:audit"]["background"] == "rgba(0, 0, 0, 0)"
    assert "RuntimeError: the disk is full" in by["9:boom"]["text"]
    # compensations are shown, the failed one with its failure
    assert "compensated" in by["2:reserve"]["text"]
    assert "compensation failed" in by["4:copy"]["text"]
    assert "OSError: the copy is locked" in by["4:copy"]["text"]
    assert by["4:copy"]["bars"][0][2]  # its bar marked revert-failed
    # one gather, its three steps together, labelled
    assert await page.locator("#steps .gather").count() == 1
    label = await page.locator("#steps .gather .gather-label").inner_text()
    assert "steps 3\u20135 ran at once" in label
    # values and patches: compact rows with a marker, no bar
    for key in ("1:now", "6:patch:audit-log"):
        assert by[key]["compact"]
        assert (by[key]["markers"], by[key]["bars"]) == (1, [])
    assert "taken" in by["6:patch:audit-log"]["text"]
    # retries: one bar per attempt, the failed ones compensated
    flaky = by["8:flaky"]
    assert [(b[0], b[1]) for b in flaky["bars"]] == [
        ("FAILURE", True),
        ("FAILURE", True),
        ("SUCCESS", True),  # compensated in the rollback
    ]
    assert "\u00d73" in flaky["text"]  # three attempts
    # bars on one time axis: later steps further right, a gather's steps side by side
    lefts = {k: r["bars"][0][3] for k, r in by.items() if r["bars"]}
    assert lefts["2:reserve"] < lefts["3:publish"] < lefts["7:audit"] < lefts["9:boom"]
    assert abs(lefts["3:publish"] - lefts["5:attach"]) < 2
    assert [b[3] for b in flaky["bars"]] == sorted(b[3] for b in flaky["bars"])
    assert await page.locator("#steps .step.head .tick").count() >= 3
    # the workflow's own failure, above the steps
    assert "the disk is full" in await page.locator("#flow-failure").inner_text()
    assert "7 steps" in await page.locator("#flow-progress").inner_text()
    await page.locator('#steps .step[data-key="9:boom"] details summary').click()
    await page.wait_for_timeout(1200)  # a refresh or so: an open traceback stays open
    assert await page.locator('#steps .step[data-key="9:boom"] details[open]').count() == 1
    await _shot(page, "failed")
    assert errors == []
    await page.close()


async def test_a_running_workflow_follows_its_steps(browser: Browser, server: Server) -> None:
    handle = await server.engine.start(server.build("provision"), {"size": 2}, flow_id="wf-run")
    errors: list[str] = []
    page = await _open(browser, server.url + "#/flows/wf-run", errors)
    await page.set_viewport_size({"width": 1280, "height": 600})
    await page.wait_for_selector('#steps .step[data-key="5:hold"][data-state="RUNNING"]')
    rows = await _rows(page)
    assert [(r["key"], r["state"], r["group"]) for r in rows] == [
        ("1:reserve", "SUCCESS", None),
        ("2:publish", "SUCCESS", 2),
        ("3:attach", "SUCCESS", 2),
        ("4:uuid", "SUCCESS", None),
        ("5:hold", "RUNNING", None),
    ]
    assert not any(r["failed"] for r in rows)
    assert "…" in rows[-1]["text"]  # its duration grows
    await page.wait_for_timeout(400)
    await _shot(page, "running")
    await page.evaluate("() => { window.__notReloaded = true; }")
    server.world.release.set()
    with anyio.fail_after(10):
        await handle.wait()
    await page.wait_for_selector('#flow-state[data-state="SUCCESS"]')
    await page.wait_for_selector('#steps .step[data-key="5:hold"][data-state="SUCCESS"]')
    assert await page.evaluate("() => window.__notReloaded === true")
    assert "4 steps · 4 succeeded" in await page.locator("#flow-progress").inner_text()
    await _shot(page, "done")
    assert errors == []
    await page.close()


async def test_parent_and_child_flows_link_to_each_other(browser: Browser, server: Server) -> None:
    """Child flows are not run by the engine yet: their journal format, written by hand."""
    t = 1796000000.0

    def entry(flow_id: str, seq: int, kind: EventKind, task: str | None, data: Any) -> Entry:
        return Entry(flow_id, seq, kind, task, json.dumps(data), None, 0, t + seq * 0.1)

    started = {"attempt": 1, "args": {}, "group": None, "revert": True, "child": "order-7"}
    parent = [
        entry("shop-1", 0, EventKind.FLOW_CREATED, None, {"name": "shop", "workflow": True}),
        entry("shop-1", 1, EventKind.TASK_STARTED, "1:order", started),
        entry("shop-1", 2, EventKind.TASK_SUCCEEDED, "1:order", {"result": 7, "attempt": 1}),
    ]
    created = {"name": "order", "workflow": True, "parent": "shop-1", "parent_step": "1:order"}
    child = [entry("order-7", 0, EventKind.FLOW_CREATED, None, created)]
    backend = server.engine.backend
    assert await backend.create_flow(FlowRecord("shop-1", "shop", "RUNNING"), parent)
    assert await backend.create_flow(FlowRecord("order-7", "order", "PENDING"), child)
    errors: list[str] = []
    page = await _open(browser, server.url + "#/flows/shop-1", errors)
    await page.wait_for_selector('#steps .step[data-key="1:order"][data-kind="child"]')
    await _shot(page, "parent")
    assert "child flows order-7 (step 1:order)" in await page.locator("#flow-links").inner_text()
    assert "child flow" in await page.locator('#steps .step[data-key="1:order"]').inner_text()
    await page.locator('#steps .step[data-key="1:order"] .name a').click()
    await page.wait_for_selector("#flow-links:has-text('parent flow shop-1 (step 1:order)')")
    assert await page.locator("#flow-name").inner_text() == "order"
    assert "No step has been journaled yet." in await page.locator("#steps").inner_text()
    await page.locator("#flow-links a").click()
    await page.wait_for_selector('#steps .step[data-key="1:order"]')
    assert await page.locator("#flow-name").inner_text() == "shop"
    assert errors == []
    await page.close()


async def test_a_pattern_flow_still_has_its_graph(browser: Browser, server: Server) -> None:
    """The page switches back from a workflow to a pattern flow's graph."""

    @fc.task(provides="b")
    async def double(a: int) -> int:
        return a * 2

    await server.engine.run(fc.Linear("double", double), {"a": 1}, flow_id="pat-1")
    with pytest.raises(fc.errors.RevertFailed):
        await server.engine.run(server.build("teardown"), {"size": 1}, flow_id="wf-2")
    errors: list[str] = []
    page = await _open(browser, server.url + "#/flows/wf-2", errors)
    await page.wait_for_selector('#steps .step[data-key="9:boom"]')
    await page.evaluate("() => { location.hash = '#/flows/pat-1'; }")
    await page.wait_for_selector('#graph svg g.node[data-task="double"][data-state="SUCCESS"]')
    assert await page.locator("#workflow-view").is_hidden()
    assert await page.locator("#flow-kind").is_hidden()
    assert await page.locator("#flow-progress").inner_text() == "1 / 1 tasks done"
    assert await page.locator("#flow-links").is_hidden()
    assert await page.locator("#steps .step").count() == 0
    assert errors == []
    await page.close()
