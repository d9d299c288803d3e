"""Prometheus metrics, scraped over HTTP from ``Metrics.serve`` (loopback): flows by state,
task durations, reverts, journal flushes, a conductor's job counts and its session state."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import anyio
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import flowcoord as fc
from flowcoord.prometheus import Metrics

pytestmark = pytest.mark.anyio


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_of_an_engine_and_a_conductor_are_scraped(tmp_path: Path) -> None:
    async def undo() -> None:
        pass

    @fc.task(provides="a", revert=undo)
    async def first() -> int:
        return 1

    @fc.task
    async def second(a: int, fail: bool) -> None:
        if fail:
            raise ValueError("no")

    flow = fc.Linear("metered", first, second)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    server = metrics.serve(0)
    port = server.port
    try:
        registry_ = fc.FlowRegistry()
        registry_.register("metered", flow)
        coord = fc.coordination.MemoryCoordinator()
        board = coord.board()
        async with (
            fc.Engine(fc.SQLiteJournal(tmp_path / "j.sqlite")) as engine,
            fc.coordination.Conductor(board, engine, registry_) as conductor,
        ):
            metrics.watch_conductor(conductor)
            metrics.watch_session(board.session)
            await board.post("metered", {"fail": False}, flow_id="ok-1")
            await board.post("metered", {"fail": True}, flow_id="bad-1")
            with anyio.fail_after(10):
                await conductor.wait_idle()
            got = await anyio.to_thread.run_sync(_scrape, port)
    finally:
        server.close()
    flows = {k[1]: v for k, v in got.items() if k[0] == "flowcoord_flows_total"}
    assert flows[(("flow", "metered"), ("state", "SUCCESS"))] == 1
    assert flows[(("flow", "metered"), ("state", "REVERTED"))] == 1
    assert flows[(("flow", "metered"), ("state", "RUNNING"))] == 2
    count = "flowcoord_task_duration_seconds_count"
    assert got[(count, (("flow", "metered"), ("outcome", "success")))] == 3
    assert got[(count, (("flow", "metered"), ("outcome", "failure")))] == 1
    # both tasks were reverted (second has no revert: it is reverted by nothing to undo)
    assert got[("flowcoord_reverts_total", (("flow", "metered"), ("outcome", "success")))] == 2
    assert got[("flowcoord_journal_flush_entries_count", ())] >= 2
    assert got[("flowcoord_journal_flush_entries_sum", ())] >= 12  # every entry, once
    assert got[("flowcoord_journal_flush_seconds_count", ())] >= 2
    assert got[("flowcoord_jobs_total", (("event", "claimed"),))] == 2
    assert got[("flowcoord_jobs_total", (("event", "consumed"),))] == 2
    assert got[("flowcoord_jobs_total", (("event", "failed"),))] == 1
    assert got[("flowcoord_flows_running", ())] == 0
    assert got[("flowcoord_session_state", (("state", "CONNECTED"),))] == 1
