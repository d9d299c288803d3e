"""Trace context across the job board: a producer posts a job with ``headers=inject()``;
the flow a conductor runs for it is traced under the producer's span, on every kind of
board (the headers travel in the job's record); a job without headers starts a new trace."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

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
