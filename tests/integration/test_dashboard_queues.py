"""The dashboard's job board pages in real headless Chromium (the fixtures of
test_dashboard_browser.py: Debian's /usr/bin/chromium driven by Playwright; fails when it is
missing, ``FLOWCOORD_SKIP_BROWSER=1`` skips), on an in-memory board given to the app: the
Queues page (limits, waiting, delayed, running and by whom, who serves each queue, the trash
with reasons) and its trash, requeue and purge actions behind a confirmation; the Members
page (each live worker, its info, what it holds); and the page of an app without a board.
Screenshots go to ``$FLOWCOORD_SHOTS`` (default /tmp/shots) as ``queues_*.png``."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest
from aiohttp import web

import flowcoord as fc
import flowcoord.aiohttp as fcweb
from flowcoord.coordination import JobBoard, MemoryCoordinator
from tests.integration.test_dashboard_browser import browser, browser_ready

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

SHOTS = Path(os.environ.get("FLOWCOORD_SHOTS", "/tmp/shots"))
TOKEN = "queues-token"
SHARED_FIXTURES = (browser_ready, browser)


class Board:
    """The board the app shows, and a worker's board beside it (its own session)."""

    def __init__(self, app: web.Application, url: str, coord: MemoryCoordinator) -> None:
        self.app, self.url, self.coord = app, url, coord
        self.ops: JobBoard = coord.board()
        self.worker: JobBoard = coord.board()


def make_registry() -> fc.FlowRegistry:
    @fc.task(provides="vm")
    async def allocate(size: int) -> str:
        return f"vm-{size}"

    registry = fc.FlowRegistry()
    registry.register("provision", lambda: fc.Linear("provision", allocate))
    registry.register("resize", lambda: fc.Linear("resize", allocate))
    return registry


async def _serve(board: JobBoard | None) -> tuple[web.AppRunner, str, web.Application]:
    app = fcweb.create_app(
        registry=make_registry(),
        engine_factory=lambda: fc.Engine(fc.MemoryJournal()),
        token=TOKEN,
        shutdown_timeout=0.5,
        board=board,
    )
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}/", app


@pytest.fixture
async def board() -> AsyncIterator[Board]:
    coord = MemoryCoordinator()
    runner, url, app = await _serve(coord.board())
    try:
        yield Board(app, url, coord)
    finally:
        await runner.cleanup()


async def _open(browser: Browser, url: str, errors: list[str]) -> Page:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(10_000)
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on(
        "response",
        lambda r: errors.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None,
    )
    await page.goto(url)
    return page


async def _shot(page: Page, name: str) -> None:
    await anyio.Path(SHOTS).mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"queues_{name}.png"), full_page=True)


async def _a_busy_board(b: Board) -> dict[str, str]:
    """Two queues (bulk: 2 at once across the board and 1 on the worker, 3 per partition,
    10 starts a minute), jobs waiting, one delayed, one running on the worker, one trashed:
    their job ids by flow id."""
    ops, worker = b.ops, b.worker
    await ops.declare_queue("bulk", concurrency=2, partition_limit=3, rate_limit=(10, 60.0))
    info = {
        "host": "node-7",
        "pid": 4242,
        "started_at": time.time() - 300,
        "capacity": 4,
        "queues": ["default", "bulk"],
        "worker_limits": {"bulk": 1},
        "zone": "eu-west",
    }
    await worker.register("worker-7", info)
    ids = {}
    later = time.time() + 3600
    for flow_id, queue, priority, due in [
        ("bulk-run", "bulk", 0, None),
        ("bulk-wait", "bulk", 5, None),
        ("bulk-next", "bulk", 0, None),
        ("def-wait", "default", 0, None),
        ("def-later", "default", 0, later),
        ("def-bad", "default", 0, None),
    ]:
        job = await ops.post(
            "provision",
            {"size": 2},
            flow_id=flow_id,
            queue=queue,
            priority=priority,
            not_before=due,
            partition="tenant-a" if flow_id == "bulk-wait" else None,
        )
        ids[flow_id] = job.job_id
    await worker.claim(await worker.get(ids["bulk-run"]), "worker-7")
    await ops.trash_job(ids["def-bad"], "inputs name a region we do not serve")
    return ids


async def _confirm(page: Page, expect_action: str) -> None:
    dialog = page.locator("#board-confirm")
    await dialog.wait_for(state="visible")
    assert await dialog.get_attribute("data-action") == expect_action
    await page.locator("#board-confirm-ok").click()


async def test_the_queues_page_shows_each_queue_and_acts_behind_a_confirmation(
    browser: Browser, board: Board
) -> None:
    ids = await _a_busy_board(board)
    errors: list[str] = []
    page = await _open(browser, board.url, errors)
    await page.locator('header .nav a[data-page="queues"]').click()
    bulk = page.locator('#queues .queue[data-queue="bulk"]')
    await bulk.wait_for()
    assert await page.locator('header .nav a[aria-current="page"]').inner_text() == "Queues"
    assert await page.locator("#list-view").is_hidden()
    assert await page.locator("#queues .queue").evaluate_all(
        "(els) => els.map((e) => e.dataset.queue)"
    ) == ["bulk", "default"]

    # bulk: its global limit, who serves it (with the worker's own limit), the counts, who
    # runs what, and what waits (in claim order: priority first).
    assert await bulk.locator(".limit").all_inner_texts() == [
        "at most 2 at once",
        "at most 3 per partition",
        "10 starts / 60 s",
    ]
    assert await bulk.locator('[data-count="waiting"] b').inner_text() == "2"
    assert await bulk.locator('[data-count="running"] b').inner_text() == "1 / 2"
    served = bulk.locator('.served .member[data-member="worker-7"]')
    assert "at most 1 here" in await served.inner_text()
    running = bulk.locator(f'table.running tr[data-job-id="{ids["bulk-run"]}"]')
    assert await running.get_attribute("data-owner") == "worker-7"
    assert "bulk-run" in await running.inner_text()
    waiting = bulk.locator("table.waiting tbody tr")
    assert await waiting.evaluate_all("(els) => els.map((e) => e.dataset.jobId)") == [
        ids["bulk-wait"],
        ids["bulk-next"],
    ]
    assert (await waiting.first.locator(".partition").inner_text()).strip() == "\u00b7 tenant-a"
    assert await waiting.nth(1).locator(".partition").count() == 0
    # default: no global limit, one waiting and one delayed (with when it is due).
    default = page.locator('#queues .queue[data-queue="default"]')
    assert await default.locator('.limit[data-limit="none"]').inner_text() == "no global limit"
    assert await default.locator('[data-count="delayed"] b').inner_text() == "1"
    later = default.locator(f'tr[data-job-id="{ids["def-later"]}"]')
    assert await later.get_attribute("data-status") == "delayed"
    assert "due " in await later.inner_text()
    assert await default.locator("table.running").count() == 0
    # The trash, with its reason.
    trashed = page.locator(f'#trash tr[data-job-id="{ids["def-bad"]}"]')
    assert "inputs name a region we do not serve" in await trashed.locator(".reason").inner_text()
    await _shot(page, "overview")

    # Trash a waiting job: asked first; a reason is needed; then the token.
    await bulk.locator(f'button.trash-job[data-job-id="{ids["bulk-next"]}"]').click()
    await page.locator("#board-confirm[open]").wait_for()
    assert "bulk-next" in await page.locator("#board-confirm-job").inner_text()
    await page.locator("#board-confirm-ok").click()
    await page.wait_for_selector("#board-confirm-error:has-text('say why')")
    await page.fill("#board-reason", "duplicate of bulk-wait")
    await _shot(page, "trash_dialog")
    await page.locator("#board-confirm-ok").click()
    await page.wait_for_selector("#board-result:has-text('authentication required')")
    assert await page.locator("#board-confirm").is_hidden()  # closed: type the token above
    assert len(await board.ops.jobs(queue="bulk")) == 3  # nothing was trashed
    await page.fill("#token", TOKEN)
    await bulk.locator(f'button.trash-job[data-job-id="{ids["bulk-next"]}"]').click()
    await page.fill("#board-reason", "duplicate of bulk-wait")
    await _confirm(page, "trash")
    entry = page.locator(f'#trash tr[data-job-id="{ids["bulk-next"]}"]')
    await entry.wait_for()
    assert await entry.locator(".reason").inner_text() == "duplicate of bulk-wait"
    await bulk.locator(f'table.waiting tr[data-job-id="{ids["bulk-next"]}"]').wait_for(
        state="detached"
    )
    assert {t.reason for t in await board.ops.trashed()} == {
        "duplicate of bulk-wait",
        "inputs name a region we do not serve",
    }

    # A job claimed after the page listed it: the board refuses, the dialog says why.
    await default.locator(f'button.trash-job[data-job-id="{ids["def-wait"]}"]').click()
    await page.fill("#board-reason", "too late")
    await board.worker.claim(await board.worker.get(ids["def-wait"]), "worker-7")
    await _confirm(page, "trash")
    await page.wait_for_selector("#board-confirm-error:has-text('cancel or stop its flow first')")
    await page.locator("#board-confirm-back").click()
    await default.locator(f'table.running tr[data-job-id="{ids["def-wait"]}"]').wait_for()

    # Requeue: back on its queue, out of the trash.
    await page.locator(f'#trash button.requeue[data-trash-id^="{ids["def-bad"]}-"]').click()
    assert "inputs name a region" in await page.locator("#board-confirm-job").inner_text()
    await _confirm(page, "requeue")
    await default.locator(f'table.waiting tr[data-job-id="{ids["def-bad"]}"]').wait_for()
    await page.locator(f'#trash tr[data-job-id="{ids["def-bad"]}"]').wait_for(state="detached")
    requeued = await board.ops.get(ids["def-bad"])
    assert (requeued.flow_id, requeued.claims, requeued.queue) == ("def-bad", 0, "default")
    await _shot(page, "after_actions")

    # Purge: the trash empties.
    await page.locator("#purge-trash").click()
    await _confirm(page, "purge")
    await page.locator("#trash-empty").wait_for(state="visible")
    assert await page.locator("#purge-trash").is_disabled()
    assert await board.ops.trashed() == []
    assert errors == [
        f"HTTP 401 {board.url}api/jobs/{ids['bulk-next']}/trash",
        "console: Failed to load resource: the server responded with a status of 401 "
        "(Unauthorized)",
        f"HTTP 409 {board.url}api/jobs/{ids['def-wait']}/trash",
        "console: Failed to load resource: the server responded with a status of 409 (Conflict)",
    ]
    await page.close()


async def test_the_members_page_shows_each_worker_and_what_it_holds(
    browser: Browser, board: Board
) -> None:
    ids = await _a_busy_board(board)
    other = board.coord.board()
    await other.register("worker-9", {"host": "node-9", "queues": ["default"], "capacity": 2})
    errors: list[str] = []
    page = await _open(browser, board.url + "#/queues", errors)
    await page.locator("#queues .queue").first.wait_for()
    await page.locator('header .nav a[data-page="members"]').click()
    card = page.locator('#members .member-card[data-member="worker-7"]')
    await card.wait_for()
    assert await page.locator("#queues-view").is_hidden()
    assert await page.locator("#members .member-card").evaluate_all(
        "(els) => els.map((e) => e.dataset.member)"
    ) == ["worker-7", "worker-9"]
    assert await card.locator('[data-count="holds"] b').inner_text() == "1 / 4"
    assert await card.locator('dd[data-info="host"]').inner_text() == "node-7 \u00b7 pid 4242"
    serves = await card.locator('dd[data-info="queues"]').inner_text()
    assert serves == "default, bulk (at most 1)"
    assert await card.locator('dd[data-info="zone"]').inner_text() == "eu-west"  # any info
    held = card.locator(f'table.held tr[data-job-id="{ids["bulk-run"]}"]')
    assert await held.get_attribute("data-queue") == "bulk"
    assert await held.locator('a[href="#/flows/bulk-run"]').count() == 1
    idle = page.locator('#members .member-card[data-member="worker-9"]')
    assert "Holds no job." in await idle.inner_text()

    # The page follows the board: a new claim shows up, a worker that leaves goes.
    await other.claim(await other.get(ids["def-wait"]), "worker-9")
    await idle.locator(f'table.held tr[data-job-id="{ids["def-wait"]}"]').wait_for()
    other.session.close()
    await idle.wait_for(state="detached")
    await _shot(page, "members")

    # The flow link leads to the flows pages, whose navigation is current again.
    await page.locator('header .nav a[data-page="flows"]').click()
    await page.locator("#list-view").wait_for(state="visible")
    assert await page.locator('header .nav a[aria-current="page"]').inner_text() == "Flows"
    assert await page.locator("#members-view").is_hidden()
    assert errors == []
    await page.close()


async def test_without_a_board_the_pages_say_how_to_get_one(browser: Browser) -> None:
    runner, url, _ = await _serve(None)
    try:
        errors: list[str] = []
        page = await _open(browser, url + "#/queues", errors)
        notice = page.locator("#board-notice")
        await notice.wait_for(state="visible")
        assert "no job board: start serve with --zk" in await notice.inner_text()
        assert await page.locator("#trash-box").is_hidden()
        await _shot(page, "no_board")
        await page.locator('header .nav a[data-page="members"]').click()
        await page.locator("#members-notice").wait_for(state="visible")
        assert "start serve with --zk" in await page.locator("#members-notice").inner_text()
        assert errors, "the 501 answers"
        assert all("501" in e for e in errors), errors
        await page.close()
    finally:
        await runner.cleanup()
