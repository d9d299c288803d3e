"""Workflows handed over between conductor processes on a ZooKeeper job board, with kill -9.

Two worker processes (``tests.faults._wf_worker``) share one SQLite journal and one effects
file. The owner of a workflow is SIGKILLed mid-workflow (while a step, or a compensation,
waits on a file the test removes afterwards); the other worker claims the job once the server
expired the dead one's session and resumes the workflow from the journal. Checked every time,
from the effects file and the journal: the workflow finishes with the right outcome; every step
(and compensation) journaled before the kill ran exactly once, only the one in flight ran
twice; the resumed code saw the journaled ``ctx.uuid()``; one owner at a time (the journal's
tokens never go back). Sessions are 2 s, tickTime 1000.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import flowcoord as fc
from flowcoord._codec import Codec
from flowcoord._engine._wf_journal import WorkflowJournal
from flowcoord._journal._events import Entry, EventKind
from flowcoord.coordination import JobSpec, open_board, post_jobs
from flowcoord.testing import ZooKeeperServer

from ._wf_worker import BOOKINGS
from ._zk_cluster import Cluster, Worker, assert_one_owner_at_a_time, successes

pytestmark = [pytest.mark.anyio, pytest.mark.zookeeper]

T = 2.0  # session timeout (s)


class WorkflowCluster(Cluster):
    """A :class:`Cluster` whose workers run :mod:`tests.faults._wf_worker` (workflows)."""

    worker_module = "tests.faults._wf_worker"

    async def start_many(self, *names: str) -> list[Worker]:
        """Spawn workers at once (each takes ~1 s to import) and wait until all run."""
        workers = [self.spawn(n) for n in names]
        await self.wait_for(
            lambda ev: all(["ready", str(w.pid), w.name] in ev for w in workers), "workers ready"
        )
        return workers

    def by_pid(self, pid: str) -> Worker:
        return next(w for w in self.workers.values() if str(w.pid) == pid)

    def lines(self, kind: str, fid: str) -> list[list[str]]:
        return [e for e in self.events() if e[0] == kind and e[1] == fid]


@pytest.fixture
async def cluster(
    tmp_path: Path, zk_server: ZooKeeperServer, zk_namespace: str
) -> AsyncIterator[WorkflowCluster]:
    c = WorkflowCluster(tmp_path, zk_server.hosts, zk_namespace, T)
    try:
        yield c
    finally:
        c.stop_all()


async def post(c: Cluster, flow: str, jobs: dict[str, dict[str, Any]]) -> None:
    specs = [JobSpec(flow, {"fid": fid, **inputs}, flow_id=fid) for fid, inputs in jobs.items()]
    await post_jobs(specs, zk_hosts=c.hosts, namespace=c.namespace, session_timeout=T)


async def wait_board_empty(c: Cluster) -> None:
    async with open_board(zk_hosts=c.hosts, namespace=c.namespace, session_timeout=T) as b:
        with anyio.fail_after(10):
            while await b.jobs():
                await b.wait_changed()


async def kill(c: Cluster, w: Worker) -> None:
    c.signal(w.name, signal.SIGKILL)
    assert await c.wait_exit(w.name) == -signal.SIGKILL


def fold(fid: str, entries: list[Entry]) -> WorkflowJournal:
    return WorkflowJournal.fold(fid, entries, Codec())


def tokens(entries: list[Entry]) -> list[int]:
    return sorted({e.token for e in entries})


# -- a step in flight -------------------------------------------------------------------------


async def test_kill_9_mid_step_the_other_worker_resumes_without_rerunning_steps(
    cluster: WorkflowCluster,
) -> None:
    c, fid, steps, at = cluster, "wf-held", 6, 4
    hold = c.workdir / "hold"
    hold.touch()
    with c.dump_on_failure():
        await c.start_many("a", "b")
        inputs = {"steps": steps, "pause": 0.02, "hold_at": at, "hold_file": str(hold)}
        await post(c, "pipeline", {fid: inputs})
        ev = await c.wait_for(lambda ev: ["task", fid, str(at)] in [e[:3] for e in ev], "held")
        victim = c.by_pid(next(e[3] for e in ev if e[:3] == ["task", fid, str(at)]))
        (survivor,) = (w for w in c.workers.values() if w is not victim)
        await kill(c, victim)
        hold.unlink()
        await c.wait_finished([fid], within=20)
        es = (await c.entries([fid]))[fid]
        j = fold(fid, es)
        assert j.state is fc.FlowState.SUCCESS
        ((_, _, tag, _), *others) = c.lines("tag", fid)
        assert all(o[2] == tag for o in others)  # the resumed code got the journaled uuid
        assert j.result == {"total": sum(n * n for n in range(1, steps + 1)), "tag": tag}
        assert [e[2] for e in c.lines("run", fid)] == [str(victim.pid), str(survivor.pid)]

        ran = [(e[2], e[3]) for e in c.lines("task", fid)]
        v, s = str(victim.pid), str(survivor.pid)
        expected = [(str(n), v) for n in range(1, at + 1)]
        expected += [(str(n), s) for n in range(at, steps + 1)]
        assert ran == expected  # before the kill once, the one in flight twice, then once
        assert ["done", fid, str(at), v] not in c.events()

        assert_one_owner_at_a_time(es)
        first, second = tokens(es)
        done = successes(es)
        assert done == {
            "1:uuid": first,
            **{f"{n + 1}:step{n}": first if n < at else second for n in range(1, steps + 1)},
        }
        await wait_board_empty(c)


# -- a compensation in flight -----------------------------------------------------------------


async def test_kill_9_mid_compensation_the_other_worker_finishes_the_rollback(
    cluster: WorkflowCluster,
) -> None:
    c, fid = cluster, "saga-held"
    hold = c.workdir / "hold"
    hold.touch()
    with c.dump_on_failure():
        await c.start_many("a", "b")
        await post(c, "saga", {fid: {"hold_undo": "flight", "hold_file": str(hold)}})
        ev = await c.wait_for(
            lambda ev: ["undo", fid, "flight"] in [e[:3] for e in ev], "flight's compensation"
        )
        victim = c.by_pid(next(e[3] for e in ev if e[:3] == ["undo", fid, "flight"]))
        (survivor,) = (w for w in c.workers.values() if w is not victim)
        await kill(c, victim)
        hold.unlink()
        await c.wait_finished([fid], within=20)
        es = (await c.entries([fid]))[fid]
        j = fold(fid, es)
        assert j.state is fc.FlowState.REVERTED
        assert j.failure is not None  # the workflow raised StepFailed: charge raised Declined
        assert j.failure.matches(fc.errors.StepFailed)
        assert j.failure.cause is not None
        assert j.failure.cause.matches("Declined")  # __main__.Declined, in the worker
        assert fc.journal.replay(fid, es).failures["4:charge"].matches("Declined")

        v, s = str(victim.pid), str(survivor.pid)
        # the steps ran once, all before the kill; the resumed code only replayed them
        assert [(e[2], e[3]) for e in c.lines("task", fid)] == [
            *((what, v) for what in BOOKINGS),
            ("charge", v),
        ]
        assert [e[2] for e in c.lines("run", fid)] == [v, s]
        # newest first: car's was done before the kill, flight's in flight ran again, then hotel
        assert [(e[2], e[3]) for e in c.lines("undo", fid)] == [
            ("car", v),
            ("flight", v),
            ("flight", s),
            ("hotel", s),
        ]
        assert [(e[2], e[3]) for e in c.lines("undone", fid)] == [
            ("car", v),
            ("flight", s),
            ("hotel", s),
        ]

        assert_one_owner_at_a_time(es)
        first, second = tokens(es)
        # every step entry, by owner (charge's task.started left out: a step without a
        # compensation need not journal one)
        K = EventKind
        journaled = Counter(
            (e.kind, e.task, e.token)
            for e in es
            if e.task is not None and (e.kind, e.task) != (K.TASK_STARTED, "4:charge")
        )
        expected: Counter[tuple[EventKind, str, int]] = Counter()
        for pos, what in enumerate(BOOKINGS, start=1):
            expected.update([(K.TASK_STARTED, f"{pos}:book-{what}", first)])
            expected.update([(K.TASK_SUCCEEDED, f"{pos}:book-{what}", first)])
        expected.update(
            [
                (K.TASK_FAILED, "4:charge", first),
                (K.REVERT_STARTED, "3:book-car", first),
                (K.REVERT_DONE, "3:book-car", first),
                (K.REVERT_STARTED, "2:book-flight", first),  # then killed
                (K.REVERT_STARTED, "2:book-flight", second),
                (K.REVERT_DONE, "2:book-flight", second),
                (K.REVERT_STARTED, "1:book-hotel", second),
                (K.REVERT_DONE, "1:book-hotel", second),
            ]
        )
        assert journaled == expected
        await wait_board_empty(c)


# -- several workflows, killed wherever they are ----------------------------------------------


async def test_kill_9_with_workflows_in_flight_on_both_workers(cluster: WorkflowCluster) -> None:
    c, steps = cluster, 8
    flows = [f"wf-{i}" for i in range(4)]
    with c.dump_on_failure():
        await c.start_many("a", "b")
        await post(c, "pipeline", {fid: {"steps": steps, "pause": 0.1} for fid in flows})
        await c.wait_for(lambda ev: len(c.lines("task", flows[0])) >= 3, "wf-0 at step 3")
        victim = c.by_pid(c.lines("task", flows[0])[-1][3])
        await kill(c, victim)
        await c.wait_finished(flows, within=20)
        entries = await c.entries(flows)
        for fid, es in entries.items():
            j = fold(fid, es)
            assert j.state is fc.FlowState.SUCCESS, fid
            tags = {e[2] for e in c.lines("tag", fid)}
            assert len(tags) == 1, fid
            assert j.result == {"total": sum(n * n for n in range(1, steps + 1)), "tag": tags.pop()}
            assert_one_owner_at_a_time(es)
            runs = Counter(e[2] for e in c.lines("task", fid))
            assert set(runs) == {str(n) for n in range(1, steps + 1)}, fid
            assert sorted(runs.values())[:-1] == [1] * (steps - 1), (fid, runs)  # one in flight
            assert runs.most_common(1)[0][1] <= 2, (fid, runs)
            first = min(e.token for e in es)
            for key, token in successes(es).items():
                if token == first and key != "1:uuid":
                    assert runs[key.split(":step")[1]] == 1, (fid, key)
            if str(victim.pid) not in {e[2] for e in c.lines("run", fid)}:
                assert len(tokens(es)) == 1, fid  # the survivor's own: never handed over
        assert len(tokens(entries[flows[0]])) == 2
        await wait_board_empty(c)
