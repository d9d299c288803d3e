"""Fail-over between conductor processes on a ZooKeeper job board, with real faults.

Each test runs conductors as separate processes (``tests.faults._zk_worker``) sharing one
SQLite journal and one effects file, then breaks one of them or the ensemble for real:
kill -9, SIGSTOP past the session timeout, a ZooKeeper leader crash, a black-holed connection,
and a plain SIGTERM. Invariants checked every time: every flow finishes; per flow the journal's
tokens never go back in seq order (never two owners at once); a task journaled as succeeded by
the first owner ran exactly once. Sessions are 2 s (4 s on the ensemble), tickTime 1000.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest

from flowcoord.coordination import JobSpec, open_board, post_jobs
from flowcoord.testing import FaultProxy, ZooKeeperEnsemble, ZooKeeperServer

from ._zk_cluster import ROOT, Cluster, assert_one_owner_at_a_time, successes
from ._zk_worker import STAGES, WIDTH

pytestmark = [pytest.mark.anyio, pytest.mark.zookeeper]

T = 2.0


@pytest.fixture
async def cluster(
    tmp_path: Path, zk_server: ZooKeeperServer, zk_namespace: str
) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path, zk_server.hosts, zk_namespace, T)
    try:
        yield c
    finally:
        c.stop_all()


async def post(c: Cluster, flow: str, flow_ids: list[str], pause: float) -> None:
    specs = [JobSpec(flow, {"fid": f, "pause": pause}, flow_id=f) for f in flow_ids]
    await post_jobs(specs, zk_hosts=c.hosts, namespace=c.namespace, session_timeout=T)


async def wait_board_empty(c: Cluster) -> None:
    async with open_board(zk_hosts=c.hosts, namespace=c.namespace, session_timeout=T) as b:
        with anyio.fail_after(10):
            while await b.jobs():
                await b.wait_changed()


def started(pid: int, fid: str, n: int) -> Callable[[list[list[str]]], bool]:
    """Predicate: the worker ``pid`` started at least ``n`` tasks of flow ``fid``."""
    return lambda ev: sum(1 for e in ev if e[:2] == ["task", fid] and e[3] == str(pid)) >= n


async def check_flows(c: Cluster, flow_ids: list[str]) -> None:
    """Every flow succeeded, tokens never went back, and what the first owner journaled as
    succeeded ran exactly once (only tasks in flight at a hand-over ran twice)."""
    await c.wait_finished(flow_ids)
    entries = await c.entries(flow_ids)
    runs = Counter((e[1], e[2]) for e in c.task_lines())
    for fid, es in entries.items():
        assert_one_owner_at_a_time(es)
        done = successes(es)
        assert len(done) == len({e[2] for e in c.task_lines(fid)}) > 0, fid
        first_token = min(e.token for e in es)
        for task, token in done.items():
            assert 1 <= runs[fid, task] <= 2, (fid, task)
            if token == first_token:
                assert runs[fid, task] == 1, (fid, task)
    await wait_board_empty(c)


# -- kill -9 ----------------------------------------------------------------------------------


async def test_kill_9_the_owner_and_the_other_conductor_resumes(cluster: Cluster) -> None:
    c = cluster
    flows = ["k0", "k1", "k2"]
    with c.dump_on_failure():
        a = await c.start("a")
        b = await c.start("b")
        await post(c, "stages", flows, pause=0.3)
        await c.wait_for(
            lambda ev: len([e for e in ev if e[:2] == ["task", "k0"]]) > WIDTH, "k0 in stage 1"
        )
        victim, survivor = (a, b) if c.task_lines("k0", a.pid) else (b, a)
        c.signal(victim.name, signal.SIGKILL)
        assert await c.wait_exit(victim.name) == -signal.SIGKILL
        await check_flows(c, flows)
        assert c.task_lines("k0", survivor.pid), "the survivor never ran k0"
        for fid in flows:
            assert len({e[2] for e in c.task_lines(fid)}) == STAGES * WIDTH


# -- SIGSTOP past the session timeout ---------------------------------------------------------


async def test_a_paused_owner_is_fenced_when_it_wakes(cluster: Cluster) -> None:
    c = cluster
    fid = "p0"
    with c.dump_on_failure():
        a = await c.start("a")
        pa = str(a.pid)
        # Tasks of 0.5 s: on waking, a's task finishes (its timer is due first) and sends its
        # result to the journal before a's watchdog (due 2T/3 after its last ping) aborts it.
        await post(c, "chain", [fid], pause=0.5)
        await c.wait_for(started(a.pid, fid, 2), "a inside its second task")
        with anyio.fail_after(5):  # stop it between journal writes, never holding SQLite's lock
            while (await c.entries([fid]))[fid][-1].kind.value != "task.started":  # noqa: ASYNC110
                await anyio.sleep(0.01)  # polling another process's journal file
        c.signal("a", signal.SIGSTOP)
        in_flight = c.task_lines(fid, a.pid)[-1][2]
        b = await c.start("b")
        await c.wait_for(started(b.pid, fid, 2), "b took over and progressed", within=20)
        c.signal("a", signal.SIGCONT)
        await c.wait_for(lambda ev: ["lost", fid, pa] in [e[:3] for e in ev], "a lost")
        await check_flows(c, [fid])
        es = (await c.entries([fid]))[fid]
        old, new = min(e.token for e in es), max(e.token for e in es)
        assert old < new
        first_new = next(i for i, e in enumerate(es) if e.token == new)
        assert all(e.token == new for e in es[first_new:])  # nothing of a's after b's first
        # a finished its task after waking, and the journal refused that result
        assert ["done", fid, in_flight, pa] in c.events()
        assert successes(es)[in_flight] == new
        ev = c.events()
        first_b = next(i for i, e in enumerate(ev) if e[:2] == ["task", fid] and e[3] == str(b.pid))
        assert not [e for e in ev[first_b:] if e[:2] == ["task", fid] and e[3] == pa]


# -- the ensemble's leader crashes ------------------------------------------------------------


async def test_leader_crash_every_flow_finishes_with_one_owner_at_a_time(
    tmp_path: Path, zk_ensemble: ZooKeeperEnsemble, zk_namespace: str
) -> None:
    c = Cluster(tmp_path, zk_ensemble.hosts, zk_namespace, 4.0)
    flows = [f"l{i}" for i in range(4)]
    try:
        with c.dump_on_failure():
            a = await c.start("a", capacity=2)
            b = await c.start("b", capacity=2)
            await post(c, "stages", flows, pause=0.4)
            await c.wait_for(lambda ev: len([e for e in ev if e[0] == "task"]) >= 8, "progress")
            await anyio.to_thread.run_sync(zk_ensemble.kill, zk_ensemble.leader())
            await check_flows(c, flows)
            assert {a.pid, b.pid} >= {int(e[3]) for e in c.task_lines()}
    finally:
        c.stop_all()


# -- a black-holed connection: SUSPENDED, then LOST -------------------------------------------


async def test_a_cut_off_conductor_suspends_then_aborts_and_the_other_finishes(
    cluster: Cluster, zk_server: ZooKeeperServer
) -> None:
    c = cluster
    flows = ["x0", "x1"]
    async with FaultProxy("127.0.0.1", zk_server.port()) as proxy:
        with c.dump_on_failure():
            a = await c.start("a", hosts=f"127.0.0.1:{proxy.port}")
            await post(c, "stages", flows, pause=1.0)  # 4 s: long enough to start b meanwhile
            for fid in flows:
                await c.wait_for(started(a.pid, fid, 1), f"a runs {fid}")
            b = await c.start("b")
            proxy.pause()
            pa = str(a.pid)
            await c.wait_for(lambda ev: ["session", "lost", pa] in ev, "a's session lost", 3 * T)
            await check_flows(c, flows)
            ev = c.events()
            suspended = ev.index(["session", "suspended", pa])
            lost = ev.index(["session", "lost", pa])
            assert suspended < lost
            assert not [e for e in ev[suspended:] if e[0] == "task" and e[3] == pa]
            assert {e[1] for e in ev[lost:] if e[0] == "lost" and e[2] == pa} == set(flows)
            assert all(c.task_lines(fid, b.pid) for fid in flows)
            proxy.resume()
            await c.wait_for(lambda ev: ["session", "connected", pa] in ev[lost:], "a reconnected")


# -- SIGTERM: a graceful hand-over, no session timeout to wait for ----------------------------


async def test_sigterm_releases_jobs_and_the_other_conductor_resumes_at_once(
    cluster: Cluster,
) -> None:
    c = cluster
    fid = "t0"
    with c.dump_on_failure():
        a = await c.start("a")
        b = await c.start("b")
        await post(c, "chain", [fid], pause=0.3)
        await c.wait_for(lambda ev: any(e[:2] == ["task", fid] for e in ev), "a task started")
        owner, other = (a, b) if c.task_lines(fid, a.pid) else (b, a)
        c.signal(owner.name, signal.SIGTERM)
        assert await c.wait_exit(owner.name) == 0
        assert ["stopped", str(owner.pid)] in c.events()
        # handed over, not left to a session timeout; released (stopped cleanly between two
        # tasks), not abandoned: its next claim is no suspect's
        assert "abandoned=0" in owner.stderr()
        assert "released=1" in owner.stderr()
        await c.wait_for(started(other.pid, fid, 1), "the other resumed")
        await check_flows(c, [fid])


# -- the CLI ----------------------------------------------------------------------------------


async def test_the_cli_worker_runs_jobs_and_stops_on_sigterm(cluster: Cluster) -> None:
    c = cluster
    env = {**os.environ, "ZK_WORKER_EFFECTS": str(c.effects)}
    cmd = [sys.executable, "-m", "flowcoord", "-v", "worker", "--zk", c.hosts]
    bad = await anyio.run_process(cmd, cwd=ROOT, env=env, check=False)
    assert bad.returncode == 2
    assert b"--journal" in bad.stderr
    assert b"Traceback" not in bad.stderr
    args = ["--namespace", c.namespace, "--journal", f"sqlite:///{c.journal}", "--name", "cli"]
    args += ["--registry", "tests.faults._zk_worker:cli_registry", "--session-timeout", "2"]
    args += ["--gc-threshold", "20000", "--max-claims", "3", "--max-failures", "2"]
    err = c.workdir / "cli.stderr"
    with err.open("wb") as out:
        proc = await anyio.open_process([*cmd, *args], cwd=ROOT, env=env, stdout=out, stderr=out)
    async with proc:
        try:
            await post(c, "chain", ["cli-0"], pause=0.01)
            await c.wait_finished(["cli-0"], within=20)
            await wait_board_empty(c)
            proc.send_signal(signal.SIGTERM)
            with anyio.fail_after(15):
                assert await proc.wait() == 0, err.read_text()
            assert "worker_stopped" in err.read_text()
        finally:
            if proc.returncode is None:
                proc.kill()
