"""The dashboard in an incident, in real headless Chromium (the fixtures of
test_dashboard_browser.py: Debian's /usr/bin/chromium driven by Playwright; fails when it is
missing, ``FLOWCOORD_SKIP_BROWSER=1`` skips): the failed task stands out in the graph, the
timeline and the table under a failure summary; inputs and results (redacted, cut); the
journal as a history; newest first with stable pages, search and filters; actions that ask
first. The browser runs in a zone of its own (UTC+05:30): every time shown must say so.
Screenshots go to ``$FLOWCOORD_SHOTS`` (default /tmp/shots) as ``incident_*.png``."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from aiohttp import web

import flowcoord as fc
import flowcoord.aiohttp as fcweb
from flowcoord.aiohttp._layout import FAILED_COLOURS, STATE_COLOURS
from flowcoord.journal import Entry, EventKind, FlowRecord
from tests.integration.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, browser_ready

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

SHOTS = Path(os.environ.get("FLOWCOORD_SHOTS", "/tmp/shots"))
TOKEN = "incident-token"
ZONE, OFFSET = "Asia/Kolkata", "+05:30"
# Two names that share their first 40 characters: cut at their end they would read alike.
LONG_A = "allocate_network_interface_for_primary_database_replica"
LONG_B = "allocate_network_interface_for_secondary_database_replica"
SHARED_FIXTURES = (browser_ready,)


class World:
    def __init__(self) -> None:
        self.flaky_calls = 0
        self.gates: dict[str, anyio.Event] = {}

    def gate(self, key: str) -> anyio.Event:
        return self.gates.setdefault(key, anyio.Event())


def make_registry(w: World) -> fc.FlowRegistry:
    async def slow_undo(**_: Any) -> None:
        await anyio.sleep(0.02)  # reverts take time: the revert phase shows on the axis

    @fc.task(provides="net", revert=slow_undo)
    async def prepare(size: int, password: str) -> dict[str, str]:
        await anyio.sleep(0.03)
        return {"blob": "x" * 2000}  # longer than the app shows (max_value_size=256)

    @fc.task(provides="eth0", name=LONG_A, revert=slow_undo)
    async def nic_a(net: dict[str, str]) -> str:
        await anyio.sleep(0.04)
        return "eth0"

    @fc.task(provides="eth1", name=LONG_B, revert=slow_undo)
    async def nic_b(net: dict[str, str]) -> str:
        await anyio.sleep(0.05)
        return "eth1"

    @fc.task(provides="dns", retry=fc.Times(3), revert=slow_undo)
    async def flaky(eth0: str, eth1: str) -> str:
        w.flaky_calls += 1
        await anyio.sleep(0.02)
        if w.flaky_calls < 3:
            raise TimeoutError(f"the DNS API timed out ({w.flaky_calls})")
        return "ok"

    @fc.task
    async def attach_volume(dns: str, size: int) -> None:
        await anyio.sleep(0.02)
        raise ValueError("no capacity left in zone eu-west-3")

    @fc.task(provides="a")
    async def first(key: str) -> str:
        return key

    @fc.task(provides="b")
    async def hold(a: str) -> str:
        await w.gate(a).wait()
        return a + "-held"

    @fc.task
    async def last(b: str) -> None:
        return None

    @fc.task(provides="q")
    async def quick(n: int) -> int:
        return n

    registry = fc.FlowRegistry()
    registry.register(
        "provision", lambda: fc.Graph("provision", prepare, nic_a, nic_b, flaky, attach_volume)
    )
    registry.register("hold", lambda: fc.Linear("hold", first, hold, last))
    registry.register("quick", lambda: fc.Linear("quick", quick))
    return registry


def redact(field: str, value: Any) -> Any:
    return "[redacted]" if field == "inputs.password" else value


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
        redact=redact,
        max_value_size=256,
    )
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield Server(app, f"http://{host}:{port}/", world)
    finally:
        for gate in world.gates.values():
            gate.set()
        await runner.cleanup()


@pytest.fixture
async def browser(browser_ready: None) -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


async def _open(
    browser: Browser, url: str, errors: list[str], posts: list[str] | None = None
) -> Page:
    """A page in the browser's own zone (UTC+05:30), 1280 wide; page errors, console errors
    and HTTP errors go to ``errors``, the paths of POST requests to ``posts``."""
    context = await browser.new_context(timezone_id=ZONE, viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(10_000)
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on(
        "response",
        lambda r: errors.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None,
    )
    if posts is not None:
        page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    await page.goto(url)
    return page


async def _shot(page: Page, name: str, selector: str | None = None) -> None:
    await anyio.Path(SHOTS).mkdir(parents=True, exist_ok=True)
    path = str(SHOTS / f"incident_{name}.png")
    if selector is None:
        await page.screenshot(path=path, full_page=True)
    else:
        await page.locator(selector).screenshot(path=path)


async def _failed_provision(server: Server, flow_id: str = "prov-1") -> None:
    with pytest.raises(ValueError, match="no capacity left"):
        await server.engine.run(
            server.build("provision"), {"size": 2, "password": "hunter2"}, flow_id=flow_id
        )


# -- a failed flow ------------------------------------------------------------------------------


async def test_the_failed_task_stands_out_under_a_failure_summary(
    browser: Browser, server: Server
) -> None:
    await _failed_provision(server)
    errors: list[str] = []
    page = await _open(browser, server.url + "#/flows/prov-1", errors)
    await page.wait_for_selector('#graph svg g.node[data-failed="true"]')
    await page.wait_for_selector("#history tbody tr")
    assert await page.locator("#flow-state").get_attribute("data-state") == "REVERTED"

    # the summary at the top: which task failed, why, when, and what was undone
    summary = page.locator("#flow-failure")
    assert await summary.is_visible()
    assert await summary.get_attribute("data-cause") == "failure"
    text = await summary.inner_text()
    assert "Task attach_volume failed: ValueError: no capacity left in zone eu-west-3" in text
    assert "attempt 1" in text
    assert f"4 other tasks reverted (prepare, {LONG_A}, {LONG_B}, flaky)" in text
    assert "the failed task reverted too" in text
    assert OFFSET in text  # its times with their zone
    assert await summary.locator(".failed-task").get_attribute("data-task") == "attach_volume"
    assert await summary.locator("button.retry-here").get_attribute("data-task") == "attach_volume"
    # not "0 / 5 tasks done"
    progress = await page.locator("#flow-progress").inner_text()
    assert progress.startswith("5 tasks · ✖ 1 failed · 4 reverted"), progress
    assert "0 / 5" not in progress

    # the graph: the failed task has its own fill, border and mark; the others are REVERTED
    nodes: list[dict[str, Any]] = await page.evaluate(
        """() => [...document.querySelectorAll('#graph svg g.node')].map((g) => ({
              task: g.dataset.task, state: g.dataset.state, failed: g.dataset.failed === 'true',
              fill: g.querySelector('rect').getAttribute('fill'),
              stroke: g.querySelector('rect').getAttribute('stroke'),
              label: g.querySelector('text').textContent,
              title: g.querySelector('title').textContent }))"""
    )
    by = {n["task"]: n for n in nodes}
    assert [n["task"] for n in nodes if n["failed"]] == ["attach_volume"]
    failed = by["attach_volume"]
    assert (failed["fill"], failed["stroke"]) == (FAILED_COLOURS[0], FAILED_COLOURS[2])
    assert failed["label"].startswith("✖ ")
    assert "failed the flow" in failed["title"]
    for name in ("prepare", LONG_A, LONG_B, "flaky"):
        assert (by[name]["state"], by[name]["fill"]) == ("REVERTED", STATE_COLOURS["REVERTED"][0])
    # long names: cut in the middle, both readable, not alike; whole in the tooltip
    a, b = by[LONG_A]["label"], by[LONG_B]["label"]
    assert a != b
    assert "…" in a
    assert "…" in b
    assert a.endswith("primary_database_replica")
    assert b.endswith("secondary_database_replica")
    assert by[LONG_A]["title"].startswith(LONG_A)
    assert len({n["label"] for n in nodes}) == len(nodes)
    assert "failed the flow" in (await page.locator("#graph svg .legend").text_content() or "")

    # the timeline: one row per task, the failed one marked; attempts and reverts as bars
    rows: list[dict[str, Any]] = await page.evaluate(
        """() => [...document.querySelectorAll('#timeline .trow:not(.head)')].map((r) => ({
              task: r.dataset.task, failed: r.dataset.failed === 'true',
              marks: r.querySelectorAll('.failed-mark').length,
              label: r.querySelector('.task-label').textContent,
              title: r.querySelector('.label').title,
              background: getComputedStyle(r).backgroundColor,
              bars: [...r.querySelectorAll('.bar')].map((b) => [b.dataset.kind, b.dataset.state,
                Number(b.dataset.attempt), parseFloat(b.style.left), parseFloat(b.style.width),
                b.classList.contains('failing')]) }))"""
    )
    tl = {r["task"]: r for r in rows}
    assert [r["task"] for r in rows] == ["prepare", LONG_A, LONG_B, "flaky", "attach_volume"]
    assert [r["task"] for r in rows if r["failed"]] == ["attach_volume"]
    assert [r["task"] for r in rows if r["marks"]] == ["attach_volume"]
    assert tl["attach_volume"]["background"] == "rgb(253, 236, 234)"
    assert tl["prepare"]["background"] == "rgba(0, 0, 0, 0)"
    assert [b[:3] for b in tl["attach_volume"]["bars"]] == [
        ["run", "FAILURE", 1],
        ["revert", "REVERTED", 1],  # a failed task is reverted too
    ]
    assert tl["attach_volume"]["bars"][0][5]  # its failing attempt drawn apart
    # retries: three attempts, each failed one reverted before the next; reverted at the end
    assert [b[:3] for b in tl["flaky"]["bars"]] == [
        ["run", "FAILURE", 1],
        ["revert", "REVERTED", 1],
        ["run", "FAILURE", 2],
        ["revert", "REVERTED", 2],
        ["run", "SUCCESS", 3],
        ["revert", "REVERTED", 3],
    ]
    lefts = [b[3] for b in tl["flaky"]["bars"]]
    assert lefts == sorted(lefts)
    for name in ("prepare", LONG_A, LONG_B):
        assert [b[:2] for b in tl[name]["bars"]] == [["run", "SUCCESS"], ["revert", "REVERTED"]]
        assert tl[name]["bars"][0][3] < tl[name]["bars"][1][3]  # ran, then reverted later
    assert tl[LONG_A]["label"] != tl[LONG_B]["label"]
    assert tl[LONG_B]["title"] == LONG_B
    # the time axis: ticks, two retry decisions, the revert phase as a band of some width
    head = page.locator("#timeline .trow.head")
    assert await head.locator(".tick").count() >= 3
    assert await head.locator(".retry-mark").count() == 2
    band = head.locator(".band-label.band-REVERTING")
    assert await band.count() == 1
    assert float((await band.get_attribute("style") or "").split("width:")[1].split("%")[0]) > 5
    assert OFFSET in await head.inner_text()  # "0 = <its time, with the zone>"

    # the table: the failed task's row marked, with its failure; values redacted and cut
    table: list[dict[str, Any]] = await page.evaluate(
        """() => [...document.querySelectorAll('#tasks tbody tr')].map((r) => ({
              task: r.dataset.task, failed: r.dataset.failed === 'true', text: r.innerText,
              background: getComputedStyle(r).backgroundColor,
              cut: r.querySelectorAll('.value.cut').length }))"""
    )
    tb = {r["task"]: r for r in table}
    assert [r["task"] for r in table if r["failed"]] == ["attach_volume"]
    assert "failed" in tb["attach_volume"]["text"]
    assert "ValueError: no capacity left" in tb["attach_volume"]["text"]
    assert tb["attach_volume"]["background"] == "rgb(253, 236, 234)"
    assert tb["prepare"]["cut"] == 1  # its result is longer than the app shows
    assert "characters, cut" in tb["prepare"]["text"]
    assert '"eth0"' in tb[LONG_A]["text"]
    assert LONG_A in tb[LONG_A]["text"]  # the table has the whole name
    inputs = dict(
        await page.evaluate(
            """() => [...document.querySelectorAll('#inputs tbody tr')].map((r) =>
                [r.dataset.input, r.cells[1].innerText])"""
        )
    )
    assert inputs == {"size": "2", "password": '"[redacted]"'}

    # the journal as a history: every entry, readable, its times with their zone
    entries = await server.engine.backend.read("prov-1")
    history = page.locator("#history tbody tr")
    assert await history.count() == len(entries)
    events = await history.evaluate_all(
        "(rows) => rows.map((r) => [r.dataset.kind, r.cells[3].innerText, r.cells[4].innerText,"
        " r.cells[6].innerText, r.cells[1].innerText])"
    )
    assert events[0][:2] == ["flow.created", "flow created"]
    assert '"password":"[redacted]"' in events[0][3]  # redacted in the journal too
    assert "hunter2" not in await page.locator("body").inner_text()
    failures = [(e[2], e[3]) for e in events if e[0] == "task.failed"]
    assert failures == [
        ("flaky", "TimeoutError: the DNS API timed out (1)"),
        ("flaky", "TimeoutError: the DNS API timed out (2)"),
        ("attach_volume", "ValueError: no capacity left in zone eu-west-3"),
    ]
    assert [e[1] for e in events if e[0] == "flow.state"] == [
        "flow → RUNNING",
        "flow → REVERTING",
        "flow → REVERTED",
    ]
    assert all(e[4].endswith(OFFSET) for e in events)
    assert OFFSET in await page.locator("#flow-created").inner_text()
    assert (await page.locator("#zone").inner_text()).startswith(f"times in UTC{OFFSET} (Asia/")

    await page.locator("#flow-failure details summary").click()
    assert "Traceback" in await page.locator("#flow-failure details pre").inner_text()
    await _shot(page, "failed")
    await _shot(page, "failed_summary", "#flow-failure")
    await _shot(page, "failed_graph", "#graph")
    await _shot(page, "failed_timeline", "#timeline")
    assert errors == []


async def test_a_workflow_page_keeps_its_step_timeline_and_gets_the_summary(
    browser: Browser, server: Server
) -> None:
    async def reserve(size: int) -> str:
        return f"r{size}"

    async def unreserve(size: int, result: str | None) -> None:
        return None

    async def boom(r: str) -> None:
        raise RuntimeError("the disk is full")

    @fc.workflow(name="teardown")
    async def teardown(ctx: fc.Context, size: int) -> None:
        r = await ctx.step(reserve, size, revert=unreserve)
        await ctx.step(boom, r)

    with pytest.raises(fc.errors.StepFailed):
        await server.engine.run(teardown, {"size": 1}, flow_id="wf-1")
    errors: list[str] = []
    page = await _open(browser, server.url + "#/flows/wf-1", errors)
    await page.wait_for_selector('#steps .step[data-key="2:boom"][data-failed="true"]')
    text = await page.locator("#flow-failure").inner_text()
    assert "Step 2:boom failed: RuntimeError: the disk is full" in text
    assert "1 other step compensated (1:reserve)" in text
    assert await page.locator("#pattern-view").is_hidden()
    assert await page.locator("#history tbody tr").count() == len(
        await server.engine.backend.read("wf-1")
    )
    await _shot(page, "workflow")
    assert errors == []


# -- the list -----------------------------------------------------------------------------------


async def _ids(page: Page) -> list[str]:
    ids: list[str] = await page.locator("#flows tbody tr").evaluate_all(
        "(rows) => rows.map((r) => r.dataset.flowId)"
    )
    return ids


async def _until_ids(page: Page, want: list[str]) -> None:
    with anyio.fail_after(10):
        while await _ids(page) != want:  # noqa: ASYNC110 - polling the page, bounded
            await anyio.sleep(0.05)


async def test_the_list_is_newest_first_with_stable_pages_search_and_filters(
    browser: Browser, server: Server
) -> None:
    # 45 flows, their ids in no order: newest first is neither by id nor by id reversed
    ids = [f"q-{(k * 37) % 100:02}" for k in range(45)]
    for flow_id in ids:
        await server.engine.run(server.build("quick"), {"n": 1}, flow_id=flow_id)
    newest = ids[::-1]
    assert newest not in (sorted(ids), sorted(ids, reverse=True))
    errors: list[str] = []
    page = await _open(browser, server.url + "#/?limit=20", errors)
    await _until_ids(page, newest[:20])
    assert await page.locator("#page-size").input_value() == "20"
    assert OFFSET in await page.locator("#flows tbody tr >> nth=0").inner_text()

    # page 2; flows added meanwhile go on top of page 1, not onto page 2
    await page.locator("#next-page").click()
    await _until_ids(page, newest[20:40])
    added = [f"new-{k}" for k in range(5)]
    for flow_id in added:
        await server.engine.run(server.build("quick"), {"n": 2}, flow_id=flow_id)
    await page.wait_for_timeout(1300)  # a refresh or so
    assert await _ids(page) == newest[20:40]
    await page.locator("#next-page").click()
    await _until_ids(page, newest[40:])
    assert await page.locator("#next-page").is_disabled()
    await page.locator("#first-page").click()
    await _until_ids(page, (added[::-1] + newest)[:20])

    # a failed flow, and one created two days ago (written to the journal as an older
    # flowcoord would have left it)
    await _failed_provision(server, "prov-9")
    old = time.time() - 2 * 86400
    created = Entry("old-1", 0, EventKind.FLOW_CREATED, None, json.dumps({"name": "quick"}), at=old)
    assert await server.engine.backend.create_flow(
        FlowRecord("old-1", "quick", "SUCCESS", created_at=old), [created]
    )
    await page.select_option("#state-filter", label="failed or cancelled")
    await _until_ids(page, ["prov-9"])
    assert "state=REVERTED%2CFAILED%2CCANCELLED" in page.url  # the filters are in the address
    await page.select_option("#state-filter", "")
    await page.fill("#name-filter", "prov*")
    await _until_ids(page, ["prov-9"])
    await page.fill("#name-filter", "")
    await page.select_option("#page-size", "200")
    await page.select_option("#since-filter", "24h")
    await _until_ids(page, ["prov-9", *added[::-1], *newest])
    await page.select_option("#since-filter", "range")
    day = time.strftime("%Y-%m-%d", time.gmtime(old + 5.5 * 3600))  # the day there, at +05:30
    await page.fill("#from-filter", f"{day}T00:00:00")
    await page.fill("#to-filter", f"{day}T23:59:59")
    await page.locator("#to-filter").dispatch_event("change")
    await _until_ids(page, ["old-1"])
    await _shot(page, "list_range")
    await page.locator("#clear-filters").click()
    await _until_ids(page, ["prov-9", *added[::-1], *newest, "old-1"])
    bad_rows = await page.locator("#flows tbody tr.bad").evaluate_all(
        "(rows) => rows.map((r) => r.dataset.flowId)"
    )
    assert bad_rows == ["prov-9"]

    # search: a flow id opens the flow; anything else searches the names
    await page.fill("#search", "quic")
    await page.locator("#search-form button").click()
    await page.wait_for_selector("#search-result:has-text('no flow has the id')")
    assert await page.locator("#name-filter").input_value() == "*quic*"
    await _until_ids(page, [*added[::-1], *newest, "old-1"])
    await page.select_option("#page-size", "20")
    await _until_ids(page, [*added[::-1], *newest][:20])
    await _shot(page, "list")
    await page.fill("#search", "q-37")
    await page.locator("#search-form button").click()
    await page.wait_for_selector('#flow-state[data-state="SUCCESS"]')
    assert page.url.endswith("#/flows/q-37")
    # a 404 while searching is expected (the id that was not a flow's), and Chromium's note
    assert errors == [
        f"HTTP 404 {server.url}api/flows/quic",
        "console: Failed to load resource: the server responded with a status of 404 (Not Found)",
    ]


# -- actions ------------------------------------------------------------------------------------


async def _act(page: Page, button: str, title: str) -> None:
    await page.locator(button).click()
    dialog = page.locator("#confirm")
    await dialog.wait_for(state="visible")
    assert await page.locator("#confirm-title").inner_text() == title
    await page.locator("#confirm-ok").click()
    await dialog.wait_for(state="hidden")


async def test_actions_ask_first_then_act(browser: Browser, server: Server) -> None:
    w = server.world
    await server.engine.start(server.build("hold"), {"key": "h1"}, flow_id="hold-1")
    errors: list[str] = []
    posts: list[str] = []
    page = await _open(browser, server.url + "#/flows/hold-1", errors, posts)
    await page.wait_for_selector('#tasks tbody tr[data-task="hold"][data-state="RUNNING"]')
    await page.fill("#token", TOKEN)
    assert await page.locator("#retry-flow").is_disabled()  # not finished
    assert await page.locator("#resume-flow").is_disabled()  # running here, not suspended

    # asked, then taken back: nothing is sent
    await page.locator("#cancel-flow").click()
    await page.locator("#confirm").wait_for(state="visible")
    assert "reverted" in await page.locator("#confirm-text").inner_text()
    assert await page.locator("#force-field").is_visible()
    await _shot(page, "confirm")
    await page.locator("#confirm-back").click()
    await page.locator("#confirm").wait_for(state="hidden")
    await page.wait_for_timeout(300)
    assert posts == []
    assert await page.locator("#flow-state").get_attribute("data-state") == "RUNNING"

    # suspend (SUSPENDED once the running task is done), resume, and it ends
    await _act(page, "#suspend-flow", "Suspend this flow?")
    await page.wait_for_selector("#action-result:has-text('suspend: suspending')")
    w.gate("h1").set()
    await page.wait_for_selector('#flow-state[data-state="SUSPENDED"]')
    await _act(page, "#resume-flow", "Resume this flow?")
    await page.wait_for_selector('#flow-state[data-state="SUCCESS"]')
    assert posts == [
        f"{server.url}api/flows/hold-1/suspend",
        f"{server.url}api/flows/hold-1/resume",
    ]

    # retry from a task: a new flow, opened; it says what it re-runs
    await page.locator("#retry-flow").click()
    await page.locator("#confirm").wait_for(state="visible")
    assert await page.locator("#retry-fields").is_visible()
    await page.select_option("#retry-task", "last")
    await page.fill("#retry-id", "hold-1-again")
    await page.locator("#confirm-ok").click()
    await page.wait_for_url("**#/flows/hold-1-again")
    # the new flow's page (the old one said SUCCESS too): its link says what it re-runs
    await page.wait_for_selector("#flow-links:has-text('re-run of hold-1')")
    await page.wait_for_selector('#flow-state[data-state="SUCCESS"]')

    # stop: it stays resumable in the journal, no longer run here; resume takes it over
    await server.engine.start(server.build("hold"), {"key": "h2"}, flow_id="hold-2")
    await page.evaluate("() => { location.hash = '#/flows/hold-2'; }")
    await page.wait_for_selector('#tasks tbody tr[data-task="hold"][data-state="RUNNING"]')
    await _act(page, "#stop-flow", "Stop this flow?")
    w.gate("h2").set()
    await page.wait_for_selector('#flow-state[data-state="SUSPENDED"]')
    with anyio.fail_after(10):
        while server.engine.handle("hold-2") is not None:  # noqa: ASYNC110 - bounded
            await anyio.sleep(0.02)
    await page.wait_for_selector("#flow-progress:not(:has-text('running here'))")
    assert await page.locator("#suspend-flow").is_disabled()
    await _act(page, "#resume-flow", "Resume this flow?")
    await page.wait_for_selector('#flow-state[data-state="SUCCESS"]')

    # cancel: reverted, and the summary says it was cancelled
    await server.engine.start(server.build("hold"), {"key": "h3"}, flow_id="hold-3")
    await page.evaluate("() => { location.hash = '#/flows/hold-3'; }")
    await page.wait_for_selector('#tasks tbody tr[data-task="hold"][data-state="RUNNING"]')
    await _act(page, "#cancel-flow", "Cancel this flow?")
    await page.wait_for_selector('#flow-state[data-state="CANCELLED"]')
    summary = page.locator("#flow-failure")
    await summary.wait_for(state="visible")
    assert await summary.get_attribute("data-cause") == "cancelled"
    assert "Cancelled at" in await summary.inner_text()
    assert "2 tasks reverted (first, hold)" in await summary.inner_text()
    # the task the cancel cut short did not fail the flow: not marked
    assert await page.locator('#tasks tbody tr[data-failed="true"]').count() == 0
    assert "cut short" in await page.locator('#tasks tbody tr[data-task="hold"]').inner_text()
    await _shot(page, "cancelled")
    assert errors == []
