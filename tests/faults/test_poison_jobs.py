"""Poison jobs on a ZooKeeper job board, with real worker processes that really die.

A backlog of five jobs; one of them SIGKILLs the worker running it. A supervisor (the test)
restarts the worker each time it dies. The worker claimed all five in one scan, so the first
death takes the four innocent jobs down with the poison job; from then on each of them is a
suspect and runs alone, so the poison job's next deaths are charged to it only: the innocent
jobs succeed and only the poison job lands in the trash, after ``max_claims``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

import flowcoord as fc
from flowcoord._cli._worker import worker_options
from flowcoord.coordination import JobSpec, open_board, post_jobs, run_worker
from flowcoord.testing import ZooKeeperServer

from ._zk_cluster import ROOT, Cluster, Worker

pytestmark = pytest.mark.anyio

T = 2.0  # session timeout (s): a dead worker's claims vanish this long after its death
MAX_CLAIMS = 2


@pytest.fixture
async def cluster(
    tmp_path: Path, zk_server: ZooKeeperServer, zk_namespace: str
) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path, zk_server.hosts, zk_namespace, T)
    try:
        yield c
    finally:
        c.stop_all()


def spawn(c: Cluster, name: str) -> Worker:
    """A worker (``tests.faults._zk_worker``) with ``--max-claims MAX_CLAIMS``."""
    err = c.workdir / f"{name}.stderr"
    cmd = [sys.executable, "-m", "tests.faults._zk_worker", "--zk", c.hosts]
    cmd += ["--namespace", c.namespace, "--journal", str(c.journal), "--effects", str(c.effects)]
    cmd += ["--name", name, "--session-timeout", str(T), "--max-claims", str(MAX_CLAIMS)]
    with err.open("wb") as stderr:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr
        )
    worker = c.workers[name] = Worker(name, proc, err)
    return worker


@pytest.mark.zookeeper
async def test_a_poison_job_kills_its_worker_but_only_it_is_trashed(cluster: Cluster) -> None:
    c = cluster
    flows = ["good-0", "good-1", "bad", "good-2", "good-3"]
    good = [f for f in flows if f != "bad"]
    specs = [
        JobSpec("poison", {"fid": f}, flow_id=f)
        if f == "bad"
        else JobSpec("patient", {"fid": f, "pause": 0.5}, flow_id=f)
        for f in flows
    ]
    await post_jobs(specs, zk_hosts=c.hosts, namespace=c.namespace, session_timeout=T)
    deaths: list[int] = []
    with c.dump_on_failure():
        async with open_board(zk_hosts=c.hosts, namespace=c.namespace, session_timeout=T) as b:
            worker = spawn(c, "w0")  # the backlog is there before it starts
            with anyio.fail_after(60):  # a hang guard: two deaths cost about 2 T + 2 starts
                while await b.jobs():
                    code = worker.proc.poll()
                    if code is not None:  # the supervisor: restart a dead worker
                        assert code == -signal.SIGKILL, worker.stderr()[-3000:]
                        deaths.append(worker.pid)
                        worker = spawn(c, f"w{len(deaths)}")
                    with anyio.move_on_after(0.1):
                        await b.wait_changed()
            trashed = await b.trashed()
        assert [t.job.flow_id for t in trashed] == ["bad"], [t.reason for t in trashed]
        assert f"claimed {MAX_CLAIMS} times without finishing" in trashed[0].reason
        await c.wait_finished(good, within=10)
        entries = await c.entries(good)
        assert all(
            fc.journal.replay(f, es).state is fc.FlowState.SUCCESS for f, es in entries.items()
        )
        # The poison job killed a worker on each of its claims but the last (which trashed
        # it); after the first death it ran alone: whatever else that worker had started
        # had finished by then.
        assert len(deaths) == MAX_CLAIMS
        assert [e[3] for e in c.task_lines("bad")] == [str(pid) for pid in deaths]
        events = c.events()
        for pid in map(str, deaths[1:]):
            before = events[: events.index(["task", "bad", "poison", pid])]
            started = {e[1] for e in before if e[0] == "task" and e[3] == pid}
            finished = {e[1] for e in before if e[0] == "done" and e[3] == pid}
            assert started == finished, (pid, started - finished)
        assert {e[1] for e in events if e[0] == "done"} == set(good)


_REQUIRED = ["--zk", "h:1", "--journal", "memory:", "--registry", "m:r"]


def test_the_worker_takes_max_claims_and_max_failures(capsys: pytest.CaptureFixture[str]) -> None:
    opts = worker_options([*_REQUIRED, "--max-claims", "4", "--max-failures", "1"])
    assert (opts.max_claims, opts.max_failures) == (4, 1)
    defaults = worker_options(_REQUIRED)
    assert (defaults.max_claims, defaults.max_failures) == (5, 3)
    for option in ("--max-claims", "--max-failures"):
        for bad in ("0", "-1", "x"):
            with pytest.raises(SystemExit) as info:
                worker_options([*_REQUIRED, option, bad])
            assert info.value.code == 2
            assert f"{option}: {bad!r} is not a positive integer" in capsys.readouterr().err


async def test_run_worker_refuses_a_max_claims_or_max_failures_below_one() -> None:
    for max_claims, max_failures, what in ((0, 3, "max_claims"), (5, 0, "max_failures")):
        with pytest.raises(fc.ConfigurationError, match=f"{what} must be at least 1"):
            await run_worker(
                zk_hosts="127.0.0.1:1",
                namespace="/x",
                journal=fc.MemoryJournal(),
                registry=fc.FlowRegistry(),
                max_claims=max_claims,
                max_failures=max_failures,
            )
