"""The cost of OpenTelemetry tracing on the PostgreSQL throughput benchmark: 1,000 linear
flows x 10 no-op tasks started at once (``bench_postgres``'s ``throughput_1000x10.linear``),
without tracing and with :func:`flowcoord.otel.instrument` on the OpenTelemetry SDK (a
``TracerProvider`` with a ``BatchSpanProcessor`` and an exporter that drops every span),
alternated in the same run on the same server; and the engine's core alone (in-memory
journal, one 10,000-task unordered flow), without and with tracing. Target, on both:
tracing with its defaults (a span per flow, per failed or slow task attempt, per revert)
costs at most 10% more of this process's CPU per task. Also reported: a no-op state
listener (what being told of every state change costs) and ``min_duration=0`` (a span per
task attempt).

``…_cpu``: client CPU µs per task with the listener or tracing (``value``) and without
(``baseline``), medians; the rates are in ``extra``. The CPU of one such run varies by
±15% from run to run here (more than the cost measured), so each sample is
``RUNS_PER_SAMPLE`` runs back to back, and ``…_paired`` is the median, over the rounds, of
each round's CPU with tracing ÷ the same round's without (a drift between rounds hits both
halves of a pair alike). Even so a round's ratio on PostgreSQL swings by ±20% (the client's
CPU per task follows how the server's work batches its flushes), so the target is checked
on the in-memory row, whose rounds agree within ±2%. Standalone:
``python -m benchmarks.bench_otel``.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import flowcoord as fc

from ._harness import Case, Context, Result, Target, alternate
from .bench_postgres import Schemas, _server, flows_case, noop_flow

NAME = "otel"

TARGET_DEFAULT = Target("<=", 1.10, on="value")  # paired CPU ratio: default tracing ÷ none
RUNS_PER_SAMPLE = 3


def _provider() -> Any:
    """An SDK tracer provider whose spans are batched to an exporter that drops them."""
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class Drop(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    return provider


async def run(ctx: Context) -> AsyncIterator[Result]:
    try:
        from flowcoord.otel import instrument

        provider = _provider()
    except (ImportError, fc.errors.ConfigurationError) as exc:
        ctx.skip(f"OpenTelemetry SDK not installed ({exc}): pip install 'flowcoord[otel]'")
        raise  # unreachable: skip() raises
    try:
        async for result in _memory(ctx, instrument, provider):
            yield result
        async for result in _postgres(ctx, instrument, provider):
            yield result
    finally:
        provider.shutdown()


async def _memory(ctx: Context, instrument: Any, provider: Any) -> AsyncIterator[Result]:
    """The engine's core on its own (in-memory journal, one 10,000-task unordered flow):
    what tracing costs per task, without a database's noise."""
    n = 1_000 if ctx.quick else 10_000
    key = f"memory_unordered_{n}"
    if not ctx.selected(key):
        return
    flow = noop_flow("unordered", n)

    def case(setup: Callable[[fc.Engine], object] | None) -> Case:
        async def one() -> dict[str, float]:
            async with fc.Engine() as engine:
                if setup is not None:
                    setup(engine)
                c0 = time.process_time()
                engine.compile(flow)
                await engine.run(flow)
                return {"cpu": time.process_time() - c0}

        return one

    cases = {
        "plain": case(None),
        "default": case(lambda engine: instrument(engine, provider)),
    }
    got = await alternate(cases, repeat=max(ctx.repeat, 9), log=ctx.log)
    plain, traced = got["plain"]["cpu"], got["default"]["cpu"]
    paired = [a / b for a, b in zip(traced.values, plain.values, strict=True)]
    yield Result(
        f"{key}.default_paired",
        statistics.median(paired),
        "x",
        target=TARGET_DEFAULT,
        stat=f"median of {len(paired)} rounds",
        samples=tuple(paired),
        extra={
            "plain_us_per_task": plain.median / n * 1e6,
            "default_us_per_task": traced.median / n * 1e6,
        },
        note=f"in-memory engine, one {n}-task unordered flow of no-op tasks: each round's CPU "
        f"with instrument(engine) ÷ without ({traced.median / n * 1e6:.2f} vs "
        f"{plain.median / n * 1e6:.2f} µs/task, compile included)",
    )


async def _postgres(ctx: Context, instrument: Any, provider: Any) -> AsyncIterator[Result]:
    n, k = 1_000, 10
    key = f"linear_{n}x{k}"
    if not ctx.selected(key):
        return
    setups: dict[str, Callable[[fc.Engine], object] | None] = {
        "plain": None,
        "listener": lambda engine: engine.add_listener(lambda change: None),
        "default": lambda engine: instrument(engine, provider),
        "every": lambda engine: instrument(engine, provider, min_duration=0),
    }
    total = n * k
    async with _server(ctx) as (dsn, where):
        schemas = Schemas(dsn)
        flow = noop_flow("linear", k)
        stats: list[dict[str, Any]] = []
        cases: dict[str, Case] = {
            name: _runs(flows_case(dsn, schemas, flow, n, stats, setup=setup))
            for name, setup in setups.items()
        }
        ctx.log(f"{key}: {n} linear flows x {k} no-op tasks, {', '.join(cases)} ({where})")
        try:
            got = await alternate(cases, repeat=ctx.repeat, log=ctx.log)
        finally:
            await schemas.drop_all()
    stat = f"median of {ctx.repeat} samples of {RUNS_PER_SAMPLE} runs"
    total *= RUNS_PER_SAMPLE
    base_cpu = got["plain"]["cpu"].median / total * 1e6
    base_rate = total / got["plain"]["total"].median
    plain = got["plain"]["cpu"].values
    notes = {
        "listener": ("a no-op state listener (engine.add_listener(lambda change: None))", None),
        "default": (
            "flowcoord.otel.instrument(engine) with its defaults: a span per flow, per failed "
            "or slow (>= 1 ms) task attempt, per revert; SDK, BatchSpanProcessor, an exporter "
            "that drops the spans (report only: a round's ratio swings ±20% here with the "
            "server's work; the target is checked on the in-memory row)",
            None,
        ),
        "every": ("the same with min_duration=0: a span per task attempt too (report only)", None),
    }
    for name, (note, target) in notes.items():
        cpu = got[name]["cpu"].median / total * 1e6
        rate = total / got[name]["total"].median
        paired = [a / b for a, b in zip(got[name]["cpu"].values, plain, strict=True)]
        yield Result(
            f"{key}.{name}_paired",
            statistics.median(paired),
            "x",
            target=target,
            stat=f"median of {ctx.repeat} rounds",
            samples=tuple(paired),
            note=f"each round's CPU per task with {name} ÷ the same round's without",
        )
        yield Result(
            f"{key}.{name}_cpu",
            cpu,
            "µs/task",
            baseline=base_cpu,
            baseline_name="no listener (µs/task)",
            stat=stat,
            samples=tuple(c / total * 1e6 for c in got[name]["cpu"].values),
            extra={"tasks_per_s": rate, "plain_tasks_per_s": base_rate},
            note=f"{note}; this process's CPU per task (the SDK's export thread included); "
            f"{rate:.0f} tasks/s against {base_rate:.0f} without",
        )


def _runs(case: Case) -> Case:
    """``case`` run ``RUNS_PER_SAMPLE`` times back to back, its phases summed."""

    async def runs() -> dict[str, float]:
        total: dict[str, float] = {}
        for _ in range(RUNS_PER_SAMPLE):
            for phase, seconds in (await case()).items():
                total[phase] = total.get(phase, 0.0) + seconds
        return total

    return runs


if __name__ == "__main__":
    from ._runner import main

    argv = sys.argv[1:]
    raise SystemExit(main(argv if "--only" in argv else ["--only", NAME, *argv]))
