"""The crash explorer itself: it finds what it is meant to find, and the pytest plugin gives
users the same check in one test."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path
from typing import Any

import anyio.lowlevel
import pytest

import flowcoord as fc
from flowcoord._engine import _restore
from flowcoord._journal._group_commit import GroupCommit
from flowcoord._journal._writer import FlowWriter
from flowcoord.testing import Action, CrashExactnessError, CrashExplorer

from .corpus import CASES

pytestmark = pytest.mark.anyio

pytest_plugins = ["pytester"]


def _case(name: str) -> Any:
    return next(c for c in CASES if c.name == name)


async def test_a_flow_that_is_not_deterministic_is_reported() -> None:
    counter = itertools.count()

    def make() -> fc.Flow:
        @fc.task(provides="n")
        async def draw() -> int:
            return next(counter)  # differs in every process: not crash-exact

        return fc.Linear("draw", draw)

    report = await CrashExplorer(make, faults=False).explore()
    assert report.violations
    assert {v.rule for v in report.violations} == {"outputs"}
    with pytest.raises(CrashExactnessError, match="outputs differ"):
        report.check()


@pytest.mark.parametrize("case", ["fails", "foreach-retry", "times-exhausted"])
async def test_finds_failures_whose_handling_a_crash_cut_short(
    case: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 9, points 1 and 2, put back: a resume ignores failures no decision settled."""
    monkeypatch.setattr(_restore, "_find_pending", lambda plan, r, out: None)
    c = _case(case)
    report = await CrashExplorer(
        c.make, journal=fc.SQLiteJournal(tmp_path / "j"), faults=False
    ).explore()
    assert {"outcome", "re-run"} & {v.rule for v in report.violations}, report


async def test_finds_entries_written_above_a_hole(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 9, point 3, put back: a flow whose batch failed goes on writing."""

    def flushed(self: FlowWriter, items: list[Any], batch: Any) -> None:
        if batch is self._batch:
            self._batch, self._items = None, []
        if items:
            self._settle(items, batch.error)

    monkeypatch.setattr(FlowWriter, "_flushed", flushed)
    monkeypatch.setattr(GroupCommit, "_drop_after", lambda self, failed: None)

    def make() -> fc.Flow:
        async def slow() -> None:  # no revert: its start entry is flushed on its own
            await anyio.sleep(0.02)

        return fc.Linear("h", fc.FunctionTask(slow, "q1"), fc.FunctionTask(slow, "q2"))

    report = await CrashExplorer(make, journal=fc.SQLiteJournal(tmp_path / "j")).explore()
    assert any(v.rule == "hole" for v in report.violations), report


async def test_counts_and_samples_big_flows(tmp_path: Path) -> None:
    def make() -> fc.Flow:
        def t(i: int) -> fc.Task:
            async def body() -> int:
                await anyio.lowlevel.checkpoint()
                return i

            return fc.FunctionTask(body, f"t{i}", provides=f"v{i}")

        return fc.Unordered("big", *(t(i) for i in range(60)))

    report = await CrashExplorer(
        make, journal=fc.SQLiteJournal(tmp_path / "j"), sample=15, faults=False
    ).explore()
    report.check()
    assert report.entries > 120
    assert report.cuts == 15
    assert "15 cuts" in str(report)


async def test_actions_are_taken_and_asked_again_after_a_crash() -> None:
    case = _case("cancel")
    report = await CrashExplorer(case.make, actions=case.actions, faults=False).explore()
    report.check()
    assert report.reference is fc.FlowState.CANCELLED
    with pytest.raises(ValueError, match="depth"):
        CrashExplorer(case.make, depth=3)
    assert Action("stop", "RUNNING", "p2").name == "stop@p2:RUNNING"


def test_the_pytest_plugin_checks_a_users_flow(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user=textwrap.dedent(
            """
            import pytest
            import flowcoord as fc

            pytestmark = pytest.mark.anyio

            @pytest.fixture
            def anyio_backend():
                return "asyncio"

            def make():
                @fc.task(provides="vm")
                async def allocate(size: int) -> str:
                    return f"vm-{size}"

                @allocate.on_revert
                async def release(size: int, result: object) -> None:
                    pass

                @fc.task
                async def start(vm: str) -> None:
                    pass

                return fc.Linear("provision", allocate, start)

            async def test_crash_exact(crash_explorer):
                report = await crash_explorer(make, {"size": 2}, journal="sqlite", depth=2)
                assert report.cuts == report.entries

            async def test_a_broken_flow_fails(crash_explorer):
                import itertools
                n = itertools.count()

                def broken():
                    @fc.task(provides="n")
                    async def draw() -> int:
                        return next(n)
                    return fc.Linear("draw", draw)

                with pytest.raises(AssertionError, match="crash-exactness violations"):
                    await crash_explorer(broken, faults=False)
            """
        )
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


@pytest.mark.postgres
@pytest.mark.zookeeper
def test_the_plugin_fixtures_give_real_servers(
    pytester: pytest.Pytester, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWCOORD_TEST_PG_DSN", pg_dsn)  # the plugin uses this server
    pytester.makepyfile(
        test_servers=textwrap.dedent(
            """
            import asyncpg
            import pytest
            import flowcoord as fc

            pytestmark = pytest.mark.anyio

            @pytest.fixture
            def anyio_backend():
                return "asyncio"

            def make():
                @fc.task
                async def one() -> None:
                    pass

                return fc.Linear("one", one)

            async def test_postgres_and_the_proxy(crash_explorer, flowcoord_postgres,
                                                  flowcoord_fault_proxy):
                report = await crash_explorer(make, journal="postgres")
                assert report.backend == "PostgresJournal"
                host, port = "127.0.0.1", int(flowcoord_postgres.rsplit(":", 1)[1].split("/")[0])
                proxy = await flowcoord_fault_proxy(host, port)
                dsn = flowcoord_postgres.replace(f":{port}/", f":{proxy.port}/")
                conn = await asyncpg.connect(dsn)
                assert await conn.fetchval("select 1") == 1
                assert await proxy.cut() == 1
                with pytest.raises(Exception):
                    await conn.fetchval("select 1")

            async def test_zookeeper(flowcoord_zookeeper):
                async with fc.coordination.ZooKeeperSession(flowcoord_zookeeper.hosts) as session:
                    assert session.state.value == "connected"
            """
        )
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
