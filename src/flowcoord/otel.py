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

Trace context across the job board: a producer posts a job with ``headers=inject()`` (the
current context as W3C headers); the flow a conductor runs for that job gets its span under
the producer's (the headers travel in the job's record, on every board). A flow's span
starts in :data:`job_context` instead when that is set.

Cost: a span costs the OpenTelemetry SDK tens of microseconds, more than a no-op task costs
the engine; so a task attempt gets a span only if it failed or took at least
``min_duration`` (1 ms by default; 0: every attempt) — see :class:`Tracing`.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from ._coord._conductor import current_job
from ._engine._children import current_child
from ._states import FlowState, StateChange
from .errors import ConfigurationError

if TYPE_CHECKING:
    from opentelemetry.context import Context as OtelContext
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from ._engine._engine import Engine

__all__ = ["Tracing", "extract", "inject", "instrument", "job_context"]

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
    post a job with them (``board.post(..., headers=inject())``, ``JobSpec(headers=...)``)
    and the flow a conductor runs for it is traced under the producer's span."""
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

    A task attempt's span is made when the attempt ends (from the start time the end
    carries), and only if it failed or took at least ``min_duration`` seconds: a span costs
    the OpenTelemetry SDK tens of microseconds, more than a no-op task costs the engine, so
    the default (1 ms) keeps the cost of tracing a fraction of a flow's while every real
    operation (a call to another service) and every failure is traced. ``min_duration=0``
    traces every attempt. Reverts and flows always have their span; a child flow's step has
    its span as soon as the child starts (the child's span is under it).

    It needs no task starts: :func:`instrument` adds it with ``starts=False`` and
    ``min_elapsed=min_duration``, so the engine does not even tell it of a fast success
    (added with ``engine.add_listener(tracing)`` it ignores the starts it is told)."""

    def __init__(
        self, tracer_provider: TracerProvider | None = None, *, min_duration: float = 0.001
    ) -> None:
        trace = _otel()
        from . import __version__

        self._trace = trace
        from opentelemetry import context

        self._context = context
        self._tracer: Tracer = trace.get_tracer(
            "flowcoord", __version__, tracer_provider=tracer_provider
        )
        self.min_duration = min_duration
        self._flows: dict[str, _FlowTrace] = {}

    def __call__(self, change: StateChange) -> None:
        task = change.task
        if task is None:
            self._flow(change)
            return
        ft = self._flows.get(change.flow_id)
        if ft is None:
            ft = self._flow_trace(change)
        if ft.recording:  # else the flow's span is sampled out: so would its tasks' be
            self._task(ft, change, task)

    # -- flows ---------------------------------------------------------------------------------

    def _flow_trace(self, change: StateChange) -> _FlowTrace:
        got = self._flows.get(change.flow_id)
        if got is not None:
            return got
        trace = self._trace
        parent: OtelContext | None = job_context.get()
        if parent is None:
            job = current_job.get()
            if job is not None and job.headers and job.flow_id == change.flow_id:
                parent = extract(job.headers)  # the producer's, carried by the job board
        scope = current_child.get()
        if scope is not None and scope.child_id == change.flow_id:
            above = self._flows.get(scope.parent_id)
            if above is not None and not above.recording:
                parent = above.context()  # sampled out: so is the child, as its steps
            elif above is not None:
                step = above.open.get(scope.key)
                if step is None:  # the step's span, from now: the child is what it does
                    step = above.open[scope.key] = self._span(
                        above, "task", scope.parent_id, scope.key, scope.attempt, time.time_ns()
                    )
                parent = trace.set_span_in_context(step)
        if parent is None:  # the span current now, not when the flow's span is made
            parent = self._context.get_current()
        got = self._flows[change.flow_id] = _FlowTrace(self, change, parent)
        return got

    def _flow(self, change: StateChange) -> None:
        ft = self._flow_trace(change)
        new = change.new
        first, ft.first = ft.first, False
        if new not in _FINAL:
            if not (first and new == "RUNNING"):  # the span's start says that one
                ft.made().add_event(new)
            return
        if ft.span is None:  # nothing needed it yet: made now, its state with the rest
            span = ft.made({"flowcoord.state": new})
        else:
            span = ft.span
            span.set_attribute("flowcoord.state", new)
        if new in _FAILED_FLOW:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, new))
        span.end()
        del self._flows[change.flow_id]

    # -- tasks and reverts ---------------------------------------------------------------------

    def _span(
        self, ft: _FlowTrace, what: str, flow_id: str, task: str, attempt: int, t0: int
    ) -> Span:
        return self._tracer.start_span(
            f"{what} {task}",
            context=ft.context(),
            attributes={
                "flowcoord.flow_id": flow_id,
                "flowcoord.task": task,
                "flowcoord.attempt": attempt,
            },
            start_time=t0,
        )

    def _task(self, ft: _FlowTrace, change: StateChange, task: str) -> None:
        """A task's change other than its start: end (or skip) its attempt's span, start or
        end its revert's."""
        new = change.new
        trace = self._trace
        if new in _ENDS:
            span = ft.open.pop(task, None)
            if span is None:
                started, elapsed = change.started_at, change.elapsed
                if started is None:
                    return  # its body never ran: no span
                if new == "SUCCESS" and elapsed is not None and elapsed < self.min_duration:
                    return  # a fast success: no span (see the class's doc)
                attempt = change.attempt or 1
                span = self._span(ft, "task", change.flow_id, task, attempt, int(started * 1e9))
            span.set_attribute("flowcoord.state", new if new != "PENDING" else "INTERRUPTED")
            if new == "FAILURE":
                span.set_status(trace.Status(trace.StatusCode.ERROR, "task failed"))
            span.end()
        elif new == "REVERTING":
            ft.reverting[task] = time.time_ns()
        elif new in ("REVERTED", "REVERT_FAILURE"):
            t0 = ft.reverting.pop(task, None)
            if t0 is None:
                return  # never started (nothing to undo): no span
            span = self._span(ft, "revert", change.flow_id, task, change.attempt or 1, t0)
            span.set_attribute("flowcoord.state", new)
            if new == "REVERT_FAILURE":
                span.set_status(trace.Status(trace.StatusCode.ERROR, "revert failed"))
            span.end()


_ENDS = frozenset({"SUCCESS", "FAILURE", "PENDING"})


class _FlowTrace:
    """One flow run's span and what its tasks' spans need. The span is made when something
    needs it (a span under it, an event) or at the flow's end, with the run's start time:
    a flow that goes well holds no SDK span while it runs (1,000 flows at once would hold
    1,000, each many objects for the garbage collector to scan)."""

    __slots__ = (
        "_attributes",
        "_context",
        "_name",
        "_parent",
        "_start",
        "_tracing",
        "first",
        "open",
        "recording",
        "reverting",
        "span",
    )

    def __init__(self, tracing: Tracing, change: StateChange, parent: OtelContext | None) -> None:
        self._tracing, self._parent = tracing, parent
        self._name, self._start = f"flow {change.flow_name}", time.time_ns()
        self._attributes = {"flowcoord.flow_id": change.flow_id, "flowcoord.flow": change.flow_name}
        self.span: Span | None = None
        self.recording = True  # until its span says otherwise (sampled out)
        self.first = True  # no flow state change told yet
        self._context: OtelContext | None = None  # made for the first span under it
        self.open: dict[str, Span] = {}  # spans made before their end (a child's step)
        self.reverting: dict[str, int] = {}  # task → when its revert started (ns)

    def made(self, more: Mapping[str, str] | None = None) -> Span:
        """The flow's span, made now if it was not (``more``: attributes to add then)."""
        span = self.span
        if span is None:
            attributes = self._attributes if more is None else {**self._attributes, **more}
            span = self.span = self._tracing._tracer.start_span(
                self._name, context=self._parent, attributes=attributes, start_time=self._start
            )
            self.recording = span.is_recording()
        return span

    def context(self) -> OtelContext:
        """The context of the flow's span, for the spans under it."""
        if self._context is None:
            self._context = self._tracing._trace.set_span_in_context(self.made())
        return self._context


def instrument(
    engine: Engine,
    tracer_provider: TracerProvider | None = None,
    *,
    min_duration: float = 0.001,
) -> Tracing:
    """Trace ``engine``'s flows (see the module's doc and :class:`Tracing`); returns the
    listener added."""
    tracing = Tracing(tracer_provider, min_duration=min_duration)
    engine.add_listener(tracing, starts=False, min_elapsed=min_duration)
    return tracing
