"""The dashboard in real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

Fails — does not skip — when Chromium or Playwright is missing (``scripts/test.sh`` installs
Chromium); ``FLOWCOORD_SKIP_BROWSER=1`` skips these tests explicitly.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from aiohttp import web

import flowcoord as fc
import flowcoord.aiohttp as fcweb

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

CHROMIUM = os.environ.get("FLOWCOORD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
TOKEN = "browser-token"
# Colours of the SVG nodes by task state (flowcoord.aiohttp._layout.STATE_COLOURS).
FILL = {"SUCCESS": "#98fb98", "RUNNING": "#add8e6", "PENDING": "#ffffff"}


class Gate:
    def __init__(self) -> None:
        self.release = anyio.Event()


def make_registry(gate: Gate) -> fc.FlowRegistry:
    @fc.task(provides="a")
    async def prepare(size: int) -> int:
        return size

    @fc.task(provides="b")
    async def left(a: int) -> int:
        return a + 1

    @fc.task(provides="c")
    async def right(a: int) -> int:
        await gate.release.wait()
        return a + 2

    @fc.task
    async def join(b: int, c: int) -> None:
        return None

    @fc.task(provides="q")
    async def quick(size: int) -> int:
        return size

    registry = fc.FlowRegistry()
    registry.register("diamond", lambda: fc.Graph("diamond", prepare, left, right, join))
    registry.register("quick", lambda: fc.Linear("quick", quick))
    return registry


@pytest.fixture
def browser_ready() -> None:
    if os.environ.get("FLOWCOORD_SKIP_BROWSER") == "1":
        pytest.skip("FLOWCOORD_SKIP_BROWSER=1: browser tests turned off on purpose")
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: run 'apt-get install -y chromium' "
            "(scripts/test.sh does), or set FLOWCOORD_CHROMIUM to its path",
            pytrace=False,
        )
    try:
        import playwright.async_api  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"Playwright is not installed ({exc}): pip install -e '.[dev]'", pytrace=False)


@pytest.fixture
async def browser(browser_ready: None) -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


class Server:
    def __init__(self, app: web.Application, url: str, gate: Gate) -> None:
        self.app, self.url, self.gate = app, url, gate

    @property
    def engine(self) -> fc.Engine:
        return fcweb.get_engine(self.app)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    gate = Gate()
    app = web.Application()
    fcweb.setup(
        app,
        engine_factory=lambda: fc.Engine(fc.MemoryJournal()),
        registry=make_registry(gate),
        token=TOKEN,
        shutdown_timeout=0.5,
    )
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield Server(app, f"http://{host}:{port}/", gate)
    finally:
        gate.release.set()
        await runner.cleanup()


async def _open(browser: Browser, url: str, errors: list[str]) -> Page:
    page = await browser.new_page()
    page.set_default_timeout(10_000)
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))

    def on_console(msg: Any) -> None:
        if msg.type == "error":
            errors.append(f"console error: {msg.text}")

    def on_response(resp: Any) -> None:
        if resp.status >= 400:
            errors.append(f"HTTP {resp.status} {resp.url}")

    page.on("console", on_console)
    page.on("response", on_response)
    await page.goto(url)
    return page


async def _node_fills(page: Page) -> dict[str, tuple[str, str]]:
    result: dict[str, list[str]] = await page.evaluate(
        """() => Object.fromEntries(
            [...document.querySelectorAll('#graph svg g.node')].map((g) => [
              g.dataset.task,
              [g.dataset.state, g.querySelector('rect').getAttribute('fill')],
            ]))"""
    )
    return {task: (state, fill) for task, (state, fill) in result.items()}


async def test_dashboard_shows_flows_and_refreshes_itself(
    browser: Browser, server: Server, tmp_path: Path
) -> None:
    errors: list[str] = []
    page = await _open(browser, server.url, errors)

    # An empty table at first; flows started behind the page's back appear on their own.
    await page.wait_for_selector("#flows-empty", state="visible")
    outcome = await server.engine.run(
        server.app[fcweb.STATE_KEY].registry.build("quick"), {"size": 1}, flow_id="quick-1"
    )
    assert outcome.state is fc.FlowState.SUCCESS
    handle = await server.engine.start(
        fcweb.get_registry(server.app).build("diamond"), {"size": 2}, flow_id="diamond-1"
    )
    await page.wait_for_selector('#flows tbody tr[data-flow-id="quick-1"][data-state="SUCCESS"]')
    row = page.locator('#flows tbody tr[data-flow-id="diamond-1"]')
    await row.wait_for()
    assert await row.get_attribute("data-state") == "RUNNING"
    assert "diamond" in await row.inner_text()
    assert await page.locator("#flows tbody tr").count() == 2
    assert await page.locator("#flows-empty").is_hidden()

    # The flow page: an inline SVG with one node per task, filled by state.
    await row.locator("a").click()
    await page.wait_for_selector('#graph svg g.node[data-task="right"][data-state="RUNNING"]')
    await page.wait_for_selector('#graph svg g.node[data-task="left"][data-state="SUCCESS"]')
    assert await page.locator("#flow-name").inner_text() == "diamond"
    assert await page.locator("#flow-state").get_attribute("data-state") == "RUNNING"
    fills = await _node_fills(page)
    assert fills == {
        "prepare": ("SUCCESS", FILL["SUCCESS"]),
        "left": ("SUCCESS", FILL["SUCCESS"]),
        "right": ("RUNNING", FILL["RUNNING"]),
        "join": ("PENDING", FILL["PENDING"]),
    }
    assert await page.locator("#graph svg path.edge").count() == 4
    # Layers: prepare | left, right | join, left to right.
    xs: dict[str, float] = await page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#graph svg g.node')]
            .map((g) => [g.dataset.task, Number(g.querySelector('rect').getAttribute('x'))]))"""
    )
    assert xs["prepare"] < xs["left"] == xs["right"] < xs["join"]
    # The timeline has a bar for every task that started.
    bars = page.locator("#timeline .bar")
    assert sorted(await bars.evaluate_all("(els) => els.map((e) => e.dataset.task)")) == [
        "left",
        "prepare",
        "right",
    ]
    await page.screenshot(path=str(tmp_path / "flow-running.png"), full_page=True)

    # Release the running task: the page follows without being reloaded.
    await page.evaluate("() => { window.__notReloaded = true; }")
    refreshes = int(await page.evaluate("() => document.body.dataset.refreshes"))
    server.gate.release.set()
    with anyio.fail_after(10):
        await handle.wait()
    await page.wait_for_selector('#flow-state[data-state="SUCCESS"]')
    await page.wait_for_selector('#graph svg g.node[data-task="join"][data-state="SUCCESS"]')
    fills = await _node_fills(page)
    assert set(fills.values()) == {("SUCCESS", FILL["SUCCESS"])}
    assert await page.evaluate("() => window.__notReloaded === true")
    assert int(await page.evaluate("() => document.body.dataset.refreshes")) > refreshes
    assert await page.locator("#timeline .bar").count() == 4
    assert await page.locator("#flow-progress").inner_text() == "4 / 4 tasks done"
    await page.screenshot(path=str(tmp_path / "flow-done.png"), full_page=True)

    # Back to the table, which shows the new state too.
    await page.locator("a.brand").click()
    await page.wait_for_selector('#flows tbody tr[data-flow-id="diamond-1"][data-state="SUCCESS"]')
    assert errors == []
    await page.close()


async def test_cancel_button_uses_the_token(browser: Browser, server: Server) -> None:
    errors: list[str] = []
    handle = await server.engine.start(
        fcweb.get_registry(server.app).build("diamond"), {"size": 2}, flow_id="diamond-2"
    )
    page = await _open(browser, server.url + "#/flows/diamond-2", errors)
    await page.wait_for_selector('#graph svg g.node[data-task="right"][data-state="RUNNING"]')
    await page.locator("#cancel-flow").click()  # asks first
    await page.locator("#confirm-ok").click()
    await page.wait_for_selector("#action-result:has-text('authentication required')")
    await page.fill("#token", TOKEN)
    await page.locator("#cancel-flow").click()
    await page.locator("#confirm-ok").click()
    await page.wait_for_selector('#flow-state[data-state="CANCELLED"]')
    with pytest.raises(fc.FlowCancelled), anyio.fail_after(10):
        await handle.wait()
    await page.wait_for_selector('#graph svg g.node[data-task="left"][data-state="REVERTED"]')
    assert await page.locator("#cancel-flow").is_disabled()
    # The first click's refused request (and Chromium's console note of it), nothing else.
    assert errors == [
        f"HTTP 401 {server.url}api/flows/diamond-2/cancel",
        "console error: Failed to load resource: the server responded with a status of 401 "
        "(Unauthorized)",
    ]
    await page.close()
