from typing import Any
from urllib.parse import urlsplit

import pytest

import flowcoord as fc
from flowcoord.coordination import ZooKeeperJobBoard, ZooKeeperSession
from flowcoord.testing import Action, CrashExplorer

pytestmark = pytest.mark.anyio


def make_provision_flow() -> fc.Flow:
    """A fresh flow per simulated process, as a restarted process would build it."""

    @fc.task(provides="vm_id")
    async def allocate(size: int) -> str:
        return f"vm-{size}"

    @allocate.on_revert
    async def release(result: Any) -> None:
        pass  # idempotent, and fine when the VM is not there

    @fc.task(provides="ip")
    async def start(vm_id: str) -> str:
        return "10.0.0.7"

    @start.on_revert
    async def stop(vm_id: str) -> None:
        pass

    return fc.Linear("provision", allocate, start)


async def test_provision_is_crash_exact(crash_explorer: Any) -> None:
    report = await crash_explorer(make_provision_flow, {"size": 2}, journal="sqlite", depth=2)
    assert report.reference is fc.FlowState.SUCCESS


async def test_cancel_while_starting(crash_explorer: Any) -> None:
    await crash_explorer(
        make_provision_flow, {"size": 2}, actions=[Action("cancel", "RUNNING", task="start")]
    )


async def test_on_postgres_with_cut_connections(
    crash_explorer: Any, flowcoord_postgres: str, flowcoord_fault_proxy: Any
) -> None:
    db = urlsplit(flowcoord_postgres)
    proxy = await flowcoord_fault_proxy(db.hostname, db.port)
    dsn = db._replace(netloc=f"{db.username}@127.0.0.1:{proxy.port}").geturl()
    journal = fc.PostgresJournal(dsn, schema="explore_cut")
    await crash_explorer(make_provision_flow, {"size": 2}, journal=journal, cut=proxy.cut)


async def test_without_the_fixture() -> None:
    report = await CrashExplorer(make_provision_flow, {"size": 2}).explore()
    print(report)
    report.check()  # raises CrashExactnessError listing every violation


async def test_a_board_on_a_real_ensemble(flowcoord_zookeeper: Any) -> None:
    async with ZooKeeperSession(flowcoord_zookeeper.hosts, namespace="/test") as zk:
        board = ZooKeeperJobBoard(zk)
        job = await board.post("provision", {"size": 2})
        assert [j.job_id for j in await board.jobs()] == [job.job_id]
