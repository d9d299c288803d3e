"""Events sent to workflows: ``ctx.wait_event`` takes them in the order sent, each once,
journaled so that a resume (at every journal cut) takes the same ones; sends are durable and
idempotent by key; a timeout is journaled as None; a sleeping wait obeys suspend and cancel;
another engine's send reaches a waiting run; bad input is refused before anything is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

import flowcoord as fc
from flowcoord.errors import ConfigurationError, FlowNotFound, WorkflowContextError
from flowcoord.journal import Entry, EventKind, FlowRecord, JournalBackend

pytestmark = pytest.mark.anyio


def make(calls: list[str], *, timeout: float | None = None) -> fc.Workflow:
    async def do(what: str) -> str:
        calls.append(what)
        return what

    async def undo(what: str) -> None:
        calls.append(f"undo {what}")

    @fc.workflow(name="approval")
    async def approval(ctx: fc.Context) -> list[Any]:
        await ctx.step(do, "ask", revert=undo)
        first = await ctx.wait_event("vote", timeout=timeout)
        second = await ctx.wait_event("vote", timeout=timeout)
        await ctx.step(do, f"tally {first} {second}")
        return [first, second]

    return approval


async def _waiting(engine: fc.Engine, flow_id: str, n: int = 1) -> list[Entry]:
    """The flow's entries once its ``n``-th wait has begun (the step before it journaled)."""
    with anyio.fail_after(10):
        while True:
            entries = await engine.journal.read(flow_id)
            done = [e for e in entries if e.kind is EventKind.TASK_SUCCEEDED and e.task]
            if len(done) >= n:
                return entries
            await anyio.sleep(0.01)


async def test_waits_take_the_events_in_the_order_sent_each_once() -> None:
    calls: list[str] = []
    async with fc.Engine() as engine:
        handle = await engine.start(make(calls), flow_id="a1")
        await _waiting(engine, "a1")
        first = await engine.send_event("a1", "vote", {"by": "ann", "yes": True})
        await engine.send_event("a1", "vote", "bob: no")
        await engine.send_event("a1", "vote", "late")  # a third: nobody takes it
        out = await handle.wait()
        assert out.result == [{"by": "ann", "yes": True}, "bob: no"]
        assert (first.seq, first.topic) == (1, "vote")
        again = await engine.resume(make(calls), "a1")  # finished: the journaled result
        assert again.result == out.result
        rep = await engine.status("a1")
    assert list(rep.tasks) == ["1:do", "2:event:vote", "3:event:vote", "4:do"]
    assert calls == ["ask", "tally {'by': 'ann', 'yes': True} bob: no"]


async def test_a_send_under_a_key_sends_once() -> None:
    async with fc.Engine() as engine:
        handle = await engine.start(make([]), flow_id="a2")
        await _waiting(engine, "a2")
        one = await engine.send_event("a2", "vote", "yes", key="ann")
        two = await engine.send_event("a2", "vote", "yes again", key="ann")  # a retry
        assert one == two
        await engine.send_event("a2", "vote", "no", key="bob")
        assert (await handle.wait()).result == ["yes", "no"]


async def test_a_timeout_is_journaled_as_none() -> None:
    calls: list[str] = []
    async with fc.Engine() as engine:
        out = await engine.run(make(calls, timeout=0.05), flow_id="a3")
        assert out.result == [None, None]
        await engine.send_event("a3", "vote", "too late")
        again = await engine.resume(make(calls, timeout=0.05), "a3")
        assert again.result == [None, None]


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_every_journal_cut_resumes_to_the_same_end(backend: str, tmp_path: Path) -> None:
    calls: list[str] = []
    async with fc.Engine() as engine:
        handle = await engine.start(make(calls), flow_id="ref")
        await _waiting(engine, "ref")
        await engine.send_event("ref", "vote", "yes", key="e1")
        await engine.send_event("ref", "vote", "no", key="e2")
        await engine.send_event("ref", "vote", "spare", key="e3")
        expected = (await handle.wait()).result
        entries = await engine.journal.read("ref")
    assert len(entries) > 4
    for cut in range(1, len(entries) + 1):
        journal: JournalBackend = (
            fc.MemoryJournal() if backend == "memory" else fc.SQLiteJournal(tmp_path / f"{cut}.db")
        )
        async with fc.Engine(journal) as engine:
            assert await journal.create_flow(
                FlowRecord("ref", "approval", "RUNNING"), entries[:cut]
            )
            for value, key in (("yes", "e1"), ("no", "e2"), ("spare", "e3")):
                await engine.send_event("ref", "vote", value, key=key)  # the mailbox survived
            with anyio.fail_after(10):
                out = await engine.resume(make([]), "ref")
            assert out.result == expected, cut
            final = await journal.read("ref")
        assert final[:cut] == entries[:cut], cut
        taken = [e for e in final if e.task is not None and e.task.endswith(":event:vote")]
        assert len(taken) == 2, cut  # each wait took one event, the spare is left


async def test_suspend_and_cancel_reach_a_waiting_run() -> None:
    calls: list[str] = []
    async with fc.Engine() as engine:
        handle = await engine.start(make(calls), flow_id="a4")
        await _waiting(engine, "a4")
        handle.suspend()
        with anyio.fail_after(10):
            while (await engine.status("a4")).state is not fc.FlowState.SUSPENDED:  # noqa: ASYNC110 - bounded
                await anyio.sleep(0.01)
        await engine.send_event("a4", "vote", "yes")  # kept until the run resumes
        handle.resume()
        await _waiting(engine, "a4", 2)  # took it
        handle.cancel()
        with anyio.fail_after(10), pytest.raises(fc.FlowCancelled):
            await handle.wait()
    assert calls == ["ask", "undo ask"]


async def test_another_engines_send_reaches_a_waiting_run(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    async with fc.Engine(fc.SQLiteJournal(path)) as engine:
        handle = await engine.start(make([]), flow_id="a5")
        await _waiting(engine, "a5")
        async with fc.Engine(fc.SQLiteJournal(path)) as other:  # another process, say
            await other.send_event("a5", "vote", "yes")
            await other.send_event("a5", "vote", "no")
        with anyio.fail_after(10):  # found on a later look at the mailbox
            assert (await handle.wait()).result == ["yes", "no"]
        assert not engine.mailbox._sent  # nothing kept for runs that wait no more


async def test_bad_sends_and_waits_are_refused_before_anything_is_written() -> None:
    @fc.workflow(name="bad_wait")
    async def bad_wait(ctx: fc.Context, topic: Any, within: Any) -> Any:
        return await ctx.wait_event(topic, timeout=within)

    async with fc.Engine() as engine:
        with pytest.raises(FlowNotFound):
            await engine.send_event("nobody", "vote", 1)
        await engine.journal.backend.create_flow(FlowRecord("f", "x", "RUNNING"), [])
        with pytest.raises(ConfigurationError, match="invalid event topic"):
            await engine.send_event("f", "bad topic!", 1)
        with pytest.raises(ConfigurationError, match="event key"):
            await engine.send_event("f", "vote", 1, key="")
        with pytest.raises(fc.errors.FlowcoordError):
            await engine.send_event("f", "vote", object())  # the codec refuses it
        with pytest.raises(ConfigurationError, match="at most"):
            await engine.send_event("f", "vote", "x" * 300_000)
        assert await engine.journal.backend.sent_events("f", "vote") == []
        cases = [("bad topic!", None), ("vote", -1), ("vote", "soon"), (7, None)]
        for i, (topic, timeout) in enumerate(cases):
            with pytest.raises(WorkflowContextError):
                await engine.run(bad_wait, {"topic": topic, "within": timeout}, flow_id=f"b{i}")
            kinds = [e.kind for e in await engine.journal.read(f"b{i}")]
            assert EventKind.TASK_SUCCEEDED not in kinds
            assert (await engine.status(f"b{i}")).state is fc.FlowState.RUNNING  # for the fix
