"""OpenTelemetry traces, checked with the SDK's in-memory exporter: a span per flow, task
attempt and revert, with their attributes and statuses; a child flow under its parent's step;
a flow's span under the caller's; a job's flow under its producer's span (the context carried
in the job's headers), a job without headers in a trace of its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import flowcoord as fc
from flowcoord.coordination import Conductor, MemoryCoordinator
from flowcoord.otel import inject, instrument

pytestmark = pytest.mark.anyio


@pytest.fixture
def traced() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for s in spans:
        out.setdefault(s.name, []).append(s)
    return out


async def test_a_failed_pattern_flow_has_task_and_revert_spans_under_its_own(
    traced: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = traced
    tries = {"n": 0}

    async def undo() -> None:
        pass

    @fc.task(provides="a", revert=undo)
    async def first() -> int:
        return 1

    @fc.task(retry=fc.Times(2))
    async def second(a: int) -> None:
        tries["n"] += 1
        raise ValueError("no")

    flow = fc.Linear("traced", first, second)
    async with fc.Engine() as engine:
        instrument(engine, provider, min_duration=0)
        with pytest.raises(ValueError, match="no"):
            await engine.run(flow, flow_id="t1")
    spans = _by_name(exporter.get_finished_spans())
    (root,) = spans["flow traced"]
    assert root.attributes is not None
    assert root.attributes["flowcoord.flow_id"] == "t1"
    assert root.attributes["flowcoord.state"] == "REVERTED"
    assert root.status.status_code is StatusCode.ERROR
    attempts = spans["task second"]
    assert len(attempts) == tries["n"] == 2
    assert [a.attributes["flowcoord.attempt"] for a in attempts if a.attributes] == [1, 2]
    assert all(a.status.status_code is StatusCode.ERROR for a in attempts)
    (ok,) = spans["task first"]
    assert ok.status.status_code is StatusCode.UNSET
    (revert,) = spans["revert first"]
    assert revert.attributes is not None
    assert revert.attributes["flowcoord.state"] == "REVERTED"
    for s in [*attempts, ok, revert]:
        assert s.parent is not None
        assert s.parent.span_id == root.context.span_id
        assert s.context.trace_id == root.context.trace_id


async def test_a_child_flow_is_traced_under_its_parents_step_and_the_caller_span(
    traced: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = traced

    async def do(x: int) -> int:
        return x

    @fc.workflow(name="inner")
    async def inner(ctx: fc.Context) -> int:
        return await ctx.step(do, 2)

    @fc.workflow(name="outer")
    async def outer(ctx: fc.Context) -> Any:
        await ctx.step(do, 1)
        return await ctx.run(inner)

    tracer = provider.get_tracer("test")
    async with fc.Engine() as engine:
        instrument(engine, provider, min_duration=0)
        with tracer.start_as_current_span("request") as request:
            out = await engine.run(outer, flow_id="o1")
    assert out.result == 2
    spans = _by_name(exporter.get_finished_spans())
    (flow,) = spans["flow outer"]
    assert flow.parent is not None
    assert flow.parent.span_id == request.get_span_context().span_id
    (step,) = spans["task 2:inner"]
    (child,) = spans["flow inner"]
    assert child.parent is not None
    assert child.parent.span_id == step.context.span_id
    assert child.attributes is not None
    assert child.attributes["flowcoord.flow_id"] == "o1.2:inner"
    parents = sorted(s.parent.span_id for s in spans["task 1:do"] if s.parent is not None)
    assert parents == sorted([flow.context.span_id, child.context.span_id])  # one step each
    assert {s.context.trace_id for group in spans.values() for s in group} == {
        request.get_span_context().trace_id
    }


async def test_by_default_only_slow_or_failed_attempts_have_spans_from_their_bodys_start(
    traced: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """instrument()'s defaults: the engine does not tell the tracer of task starts nor of
    successes under 1 ms; a slow attempt's span starts when its body did (the end carries
    it), a fast child flow's step still has its span with the child under it, an attempt
    interrupted by a cancel has one that says so."""
    provider, exporter = traced
    started = anyio.Event()

    async def do(x: int) -> int:
        return x

    async def slow(x: int) -> int:
        await anyio.sleep(0.03)
        return x

    async def hang() -> None:
        started.set()
        await anyio.sleep_forever()

    @fc.workflow(name="inner")
    async def inner(ctx: fc.Context) -> int:
        return await ctx.step(do, 2)

    @fc.workflow(name="outer")
    async def outer(ctx: fc.Context) -> Any:
        await ctx.step(do, 1)
        await ctx.step(slow, 1)
        return await ctx.run(inner)

    async with fc.Engine() as engine:
        instrument(engine, provider)
        out = await engine.run(outer, flow_id="o2")
        handle = await engine.start(fc.Linear("hung", fc.FunctionTask(hang, "hang")))
        await started.wait()
        handle.cancel()
        with pytest.raises(fc.errors.FlowCancelled):
            await handle.wait()
    assert out.result == 2
    spans = _by_name(exporter.get_finished_spans())
    assert "task 1:do" not in spans  # fast successes: no span
    (flow,) = spans["flow outer"]
    (sleepy,) = spans["task 2:slow"]
    assert sleepy.start_time is not None
    assert sleepy.end_time is not None
    assert flow.start_time is not None
    assert sleepy.start_time >= flow.start_time
    assert sleepy.end_time - sleepy.start_time >= 30_000_000  # ns: from its body's start
    assert sleepy.parent is not None
    assert sleepy.parent.span_id == flow.context.span_id
    (step,) = spans["task 3:inner"]
    (child,) = spans["flow inner"]
    assert child.parent is not None
    assert child.parent.span_id == step.context.span_id
    assert step.attributes is not None
    assert step.attributes["flowcoord.state"] == "SUCCESS"
    assert step.end_time is not None
    assert child.end_time is not None
    assert step.end_time >= child.end_time
    (hung,) = spans["task hang"]
    assert hung.attributes is not None
    assert hung.attributes["flowcoord.state"] == "INTERRUPTED"
    assert hung.attributes["flowcoord.attempt"] == 1


# -- trace context across the job board ------------------------------------------------------


def _registry() -> fc.FlowRegistry:
    async def work() -> int:
        return 1

    registry = fc.FlowRegistry()
    registry.register("one", lambda: fc.Linear("one", fc.FunctionTask(work, "work")))
    return registry


async def test_a_jobs_flow_is_traced_under_its_producers_span(
    traced: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = traced
    coordinator = MemoryCoordinator()
    producer, worker = coordinator.board(), coordinator.board()
    tracer = provider.get_tracer("producer")
    with tracer.start_as_current_span("submit order") as submit:
        headers = dict(inject())
        await producer.post("one", flow_id="traced", headers=headers)
    await producer.post("one", flow_id="untraced")  # no headers: a trace of its own
    assert "traceparent" in headers
    async with fc.Engine() as engine:
        instrument(engine, provider, min_duration=0)
        async with Conductor(worker, engine, _registry(), rescan_interval=60.0) as conductor:
            with anyio.fail_after(10):
                while conductor.stats.consumed < 2:  # noqa: ASYNC110 - bounded by fail_after
                    await anyio.sleep(0.01)
    flows = {
        s.attributes["flowcoord.flow_id"]: s
        for s in exporter.get_finished_spans()
        if s.name == "flow one" and s.attributes is not None
    }
    traced_span, untraced = flows["traced"], flows["untraced"]
    assert traced_span.parent is not None
    assert traced_span.parent.span_id == submit.get_span_context().span_id
    assert traced_span.context.trace_id == submit.get_span_context().trace_id
    tasks = [s for s in exporter.get_finished_spans() if s.name == "task work"]
    assert {s.context.trace_id for s in tasks} == {
        traced_span.context.trace_id,
        untraced.context.trace_id,
    }
    assert untraced.parent is None
    assert untraced.context.trace_id != submit.get_span_context().trace_id
