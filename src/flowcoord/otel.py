"""OpenTelemetry traces of an engine's flows (extra ``otel``: ``pip install flowcoord[otel]``).

::

    from flowcoord.otel import instrument

    async with fc.Engine(journal) as engine:
        instrument(engine)              # the global tracer provider, or tracer_provider=
        await engine.run(flow, inputs)

A span per flow run (``flow <name>``), per task attempt or workflow step (``task <name>``)
and per revert or compensation (``revert <name>``), with the attributes
``flowcoord.flow_id``, ``flowcoord.flow``, ``flowcoord.task``, ``flowcoord.attempt`` and
``flowcoord.state``; a failed attempt or revert has an ERROR status. A flow's span is a
child of the span current where its run began (the caller's, or the job's: see
:func:`job_context`); a child flow's span is a child of its parent's step span. A resumed
flow gets a new span for its new run.

Trace context across the job board: :func:`inject` / :func:`extract` carry a context as W3C
headers, and a flow's span starts in :data:`job_context` when it is set (a conductor running a
job whose producer's context it knows).

Cost: a span costs the OpenTelemetry SDK tens of microseconds, more than a no-op task costs
the engine; so a task attempt gets a span only if it failed or took at least
``min_duration`` (1 ms by default; 0: every attempt) — see :class:`Tracing`.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from ._engine._children import current_child
from ._states import FlowState, StateChange
from .errors import ConfigurationError

if TYPE_CHECKING:
    from opentelemetry.context import Context as OtelContext
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from ._engine._engine import Engine

__all__ = ["CARRIER_KEY", "Tracing", "inject", "instrument", "job_context"]

#: The input name under which a job carries its producer's trace context (W3C traceparent).
CARRIER_KEY = "_trace"

_FINAL = frozenset(s.value for s in FlowState if s.finished) | {FlowState.SUSPENDED.value}
_FAILED_FLOW = frozenset({FlowState.REVERTED.value, FlowState.FAILED.value})

#: The trace context a flow's span starts in, when it is not the current one (a job's).
job_context: contextvars.ContextVar[OtelContext | None] = contextvars.ContextVar(
    "flowcoord_job_trace", default=None
)


def _otel() -> Any:
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover - the extra is installed in CI
        raise ConfigurationError(
            "OpenTelemetry is not installed", hint="pip install 'flowcoord[otel]'"
        ) from None
    return trace


def inject(carrier: MutableMapping[str, Any] | None = None) -> MutableMapping[str, Any]:
    """The current trace context, as W3C headers in ``carrier`` (a new dict by default):
    give it to a job as ``inputs[CARRIER_KEY]``."""
    _otel()
    from opentelemetry.propagate import inject as _inject

    out: MutableMapping[str, Any] = {} if carrier is None else carrier
    _inject(out)
    return out


def extract(carrier: Mapping[str, Any]) -> OtelContext:
    """The trace context ``carrier`` holds (see :func:`inject`)."""
    _otel()
    from opentelemetry.propagate import extract as _extract

    return _extract(dict(carrier))


class Tracing:
    """A state listener that makes the spans (see the module's doc); :func:`instrument` adds
    one to an engine.

    A task attempt's span is made when the attempt ends (with its real start time), and only
    if it failed or took at least ``min_duration`` seconds: a span costs the OpenTelemetry SDK
    tens of microseconds, more than a no-op task costs the engine, so the default (1 ms)
    keeps the cost of tracing a fraction of a flow's while every real operation (a call to
    another service) and every failure is traced. ``min_duration=0`` traces every attempt.
    Reverts and flows always have their span; a child flow's step has its span as soon as
    the child starts (the child's span is under it)."""

    def __init__(
        self, tracer_provider: TracerProvider | None = None, *, min_duration: float = 0.001
    ) -> None:
        trace = _otel()
        from . import __version__

        self._trace = trace
        self._tracer: Tracer = trace.get_tracer(
            "flowcoord", __version__, tracer_provider=tracer_provider
        )
        self._min_ns = int(min_duration * 1e9)
        self._flows: dict[str, tuple[Span, OtelContext]] = {}
        self._open: dict[tuple[str, str], Span] = {}  # spans made before their end
        self._started: dict[tuple[str, str], tuple[int, int]] = {}  # (start ns, attempt)
        self._attempts: dict[tuple[str, str], int] = {}
        self._reverting: dict[tuple[str, str], int] = {}

    def __call__(self, change: StateChange) -> None:
        if change.task is None:
            self._flow(change)
        else:
            self._task(change, change.task)

    # -- flows ---------------------------------------------------------------------------------

    def _flow_span(self, change: StateChange) -> tuple[Span, OtelContext]:
        got = self._flows.get(change.flow_id)
        if got is not None:
            return got
        trace = self._trace
        parent: OtelContext | None = job_context.get()
        scope = current_child.get()
        if scope is not None and scope.child_id == change.flow_id:
            step = self._step_span(scope.parent_id, scope.key)
            if step is not None:
                parent = trace.set_span_in_context(step)
        span = self._tracer.start_span(
            f"flow {change.flow_name}",
            context=parent,
            attributes={"flowcoord.flow_id": change.flow_id, "flowcoord.flow": change.flow_name},
        )
        got = self._flows[change.flow_id] = (span, trace.set_span_in_context(span))
        return got

    def _step_span(self, flow_id: str, task: str) -> Span | None:
        """The span of a running step, made now if it was not (a child flow's parent)."""
        key = (flow_id, task)
        span = self._open.get(key)
        if span is None and key in self._started and flow_id in self._flows:
            t0, attempt = self._started[key]
            span = self._open[key] = self._span("task", flow_id, task, attempt, t0)
        return span

    def _flow(self, change: StateChange) -> None:
        span, _ = self._flow_span(change)
        new = change.new
        if new not in _FINAL:
            span.add_event(new)
            return
        span.set_attribute("flowcoord.state", new)
        if new in _FAILED_FLOW:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, new))
        span.end()
        fid = change.flow_id
        del self._flows[fid]
        for table in (self._open, self._started, self._attempts, self._reverting):
            for key in [k for k in table if k[0] == fid]:
                del table[key]

    # -- tasks and reverts ---------------------------------------------------------------------

    def _span(self, what: str, flow_id: str, task: str, attempt: int, t0: int) -> Span:
        got = self._flows.get(flow_id)
        return self._tracer.start_span(
            f"{what} {task}",
            context=None if got is None else got[1],
            attributes={
                "flowcoord.flow_id": flow_id,
                "flowcoord.task": task,
                "flowcoord.attempt": attempt,
            },
            start_time=t0,
        )

    def _task(self, change: StateChange, task: str) -> None:
        key, new = (change.flow_id, task), change.new
        now = time.time_ns()
        if change.flow_id not in self._flows:
            self._flow_span(change)
        if new == "RUNNING":
            attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
            self._started[key] = (now, attempt)
            return
        trace = self._trace
        if new in ("SUCCESS", "FAILURE", "PENDING"):
            started = self._started.pop(key, None)
            span = self._open.pop(key, None)
            if span is None:
                if started is None or (new == "SUCCESS" and now - started[0] < self._min_ns):
                    return  # a fast success: no span (see the class's doc)
                span = self._span("task", change.flow_id, task, started[1], started[0])
            span.set_attribute("flowcoord.state", new if new != "PENDING" else "INTERRUPTED")
            if new == "FAILURE":
                span.set_status(trace.Status(trace.StatusCode.ERROR, "task failed"))
            span.end(end_time=now)
        elif new == "REVERTING":
            self._reverting[key] = now
        elif new in ("REVERTED", "REVERT_FAILURE"):
            t0 = self._reverting.pop(key, None)
            if t0 is None:
                return  # never started (nothing to undo): no span
            span = self._span("revert", change.flow_id, task, self._attempts.get(key, 1), t0)
            span.set_attribute("flowcoord.state", new)
            if new == "REVERT_FAILURE":
                span.set_status(trace.Status(trace.StatusCode.ERROR, "revert failed"))
            span.end(end_time=now)


def instrument(
    engine: Engine,
    tracer_provider: TracerProvider | None = None,
    *,
    min_duration: float = 0.001,
) -> Tracing:
    """Trace ``engine``'s flows (see the module's doc and :class:`Tracing`); returns the
    listener added."""
    tracing = Tracing(tracer_provider, min_duration=min_duration)
    engine.add_listener(tracing)
    return tracing
