"""A queue's global concurrency limit across worker processes, with a kill -9.

Eight worker processes (``tests.faults._zk_queue_worker``, two jobs at once each) serve one
queue whose limit is 3. Each job's task appends ``start``/``end`` lines with timestamps to a
side channel; the journal has the same runs with its own timestamps. One worker running a
job is killed with SIGKILL: its slot is held until ZooKeeper expires its session (2 s), and
comes back then. Checked: never 4 running at once (by the side channel and by the journal),
fewer than 3 while the dead worker's slot is still held, 3 again once it came back, and
every job finished.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import flowcoord as fc
from flowcoord._cli._worker import queue_settings, worker_options
from flowcoord._journal._events import EventKind
from flowcoord.coordination import JobSpec, post_jobs, run_worker
from flowcoord.testing import ZooKeeperServer

from ._zk_cluster import ROOT, Cluster, Worker

pytestmark = pytest.mark.anyio

T = 2.0  # session timeout (s)
LIMIT, WORKERS, JOBS, PAUSE = 3, 8, 24, 0.4


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
    err = c.workdir / f"{name}.stderr"
    cmd = [sys.executable, "-m", "tests.faults._zk_queue_worker", "--zk", c.hosts]
    cmd += ["--namespace", c.namespace, "--journal", str(c.journal), "--effects", str(c.effects)]
    cmd += ["--name", name, "--session-timeout", str(T), "--capacity", "2"]
    cmd += ["--queue", "api", "--queue-limit", f"api={LIMIT}"]
    with err.open("wb") as stderr:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr
        )
    worker = c.workers[name] = Worker(name, proc, err)
    return worker


def peak(intervals: list[tuple[float, float]], within: tuple[float, float] | None = None) -> int:
    """The most intervals open at one instant (an end before a start at the same time)."""
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    top = now = 0
    for at, step in events:
        now += step
        if within is None or within[0] <= at <= within[1]:
            top = max(top, now)
    return top


def events_before(events: list[list[str]], when: float) -> list[list[str]]:
    """The start and end lines stamped before ``when``."""
    return [e for e in events if e[0] in ("start", "end") and float(e[3]) <= when]


def runs(events: list[list[str]], killed: int, killed_at: float) -> list[tuple[float, float]]:
    """(start, end) of every task run in the side channel; the killed worker's unfinished
    run ends when it was killed."""
    starts: dict[tuple[str, str], float] = {}
    out = []
    for e in events:
        if e[0] == "start":
            starts[e[1], e[2]] = float(e[3])
        elif e[0] == "end":
            out.append((starts.pop((e[1], e[2])), float(e[3])))
    for (_, pid), at in starts.items():
        assert pid == str(killed), f"worker {pid} left a run unfinished"
        out.append((at, killed_at))
    return out


@pytest.mark.zookeeper
async def test_a_global_limit_of_3_holds_over_8_workers_and_a_kill_9(cluster: Cluster) -> None:
    c = cluster
    flows = [f"call-{i:02d}" for i in range(JOBS)]
    with c.dump_on_failure():
        for i in range(WORKERS):
            spawn(c, f"w{i}")
        await c.wait_for(lambda ev: sum(e[0] == "ready" for e in ev) == WORKERS, "all ready")
        specs = [JobSpec("call", {"fid": f, "pause": PAUSE}, flow_id=f, queue="api") for f in flows]
        await post_jobs(specs, zk_hosts=c.hosts, namespace=c.namespace, session_timeout=T)

        def running(ev: list[list[str]]) -> dict[str, str]:
            open_runs: dict[str, str] = {}
            for e in ev:
                if e[0] == "start":
                    open_runs[e[1]] = e[2]
                elif e[0] == "end":
                    open_runs.pop(e[1], None)
            return open_runs

        await c.wait_for(lambda ev: sum(e[0] == "end" for e in ev) >= 3, "a few jobs done")
        events = await c.wait_for(lambda ev: len(running(ev)) >= 2, "jobs in flight")
        fid, pid = next(iter(running(events).items()))
        victim = next(w for w in c.workers.values() if str(w.pid) == pid)
        c.signal(victim.name, signal.SIGKILL)
        assert await c.wait_exit(victim.name) == -signal.SIGKILL
        killed_at = time.time()  # dead by now (a little later than it died: stricter)
        await c.wait_finished(flows, within=30)
        events = c.events()
        intervals = runs(events, victim.pid, killed_at)
        dead = sum(1 for p in running(events_before(events, killed_at)).values() if p == pid)
        assert 1 <= dead <= 2  # it had one or two jobs (its capacity) when it died
        assert peak(intervals) == LIMIT  # the limit was reached, and never exceeded
        # the dead worker's slots are held until its session expires (T, at least 1.5 s)...
        assert peak(intervals, (killed_at + 0.05, killed_at + 1.5)) <= LIMIT - dead
        # ...then it comes back: the killed job runs again, elsewhere, after that
        rerun = [float(e[3]) for e in events if e[:2] == ["start", fid] and e[2] != pid]
        assert rerun
        assert min(rerun) > killed_at + 1.5
        assert peak(intervals, (min(rerun), max(b for _, b in intervals))) == LIMIT
        # the journal's own timestamps agree: never more than LIMIT tasks running
        entries = await c.entries(flows)
        journaled = []
        for es in entries.values():
            assert fc.journal.replay(es[0].flow_id, es).state is fc.FlowState.SUCCESS
            started = {e.token: e.at for e in es if e.kind is EventKind.TASK_STARTED}
            for e in es:
                if e.kind is EventKind.TASK_SUCCEEDED:
                    journaled.append((started.pop(e.token), e.at))
            journaled += [(at, killed_at) for at in started.values()]  # the killed runs
        # a killed run is journaled unless it died before its task.started was durable
        assert JOBS <= len(journaled) <= JOBS + dead
        assert peak(journaled) <= LIMIT


_REQUIRED = ["--zk", "h:1", "--journal", "memory:", "--registry", "m:r"]


def test_the_worker_takes_queues_and_limits(capsys: pytest.CaptureFixture[str]) -> None:
    queues = ["--queue", "a", "--queue", "b", "--queue", "a"]
    opts = worker_options([*_REQUIRED, *queues, "--queue-limit", "a=3", "--worker-limit", "b=1"])
    assert queue_settings(opts) == {
        "queues": ["a", "b"],
        "queue_limits": {"a": 3},
        "worker_limits": {"b": 1},
    }
    assert queue_settings(worker_options(_REQUIRED)) == {
        "queues": ["default"],
        "queue_limits": {},
        "worker_limits": {},
    }
    bad = [
        (["--queue-limit", "a=0"], "is not NAME=N with N a positive integer"),
        (["--worker-limit", "a"], "is not NAME=N"),
        (["--queue", "a/b"], "is not a queue name"),
        (["--queue", "a", "--queue-limit", "b=2"], "this worker does not serve queue 'b'"),
    ]
    for argv, message in bad:
        with pytest.raises(SystemExit) as info:
            worker_options([*_REQUIRED, *argv])
        assert info.value.code == 2
        assert message in capsys.readouterr().err


async def test_run_worker_refuses_a_limit_below_one_or_for_a_queue_it_does_not_serve() -> None:
    cases = [
        ({"queue_limits": {"default": 0}}, "at least 1"),
        ({"worker_limits": {"default": -1}}, "at least 1"),
        ({"queue_limits": {"other": 2}}, "does not serve"),
        ({"queues": ["bad/name"]}, "invalid queue name"),
    ]
    for kwargs, message in cases:
        with pytest.raises(fc.ConfigurationError, match=message):
            await run_worker(
                zk_hosts="127.0.0.1:1",
                namespace="/x",
                journal=fc.MemoryJournal(),
                registry=fc.FlowRegistry(),
                **kwargs,  # type: ignore[arg-type]
            )
