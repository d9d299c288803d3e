"""Prometheus metrics of engines, conductors and sessions (extra ``prometheus``:
``pip install flowcoord[prometheus]``).

::

    from flowcoord.prometheus import Metrics

    metrics = Metrics()            # the default registry, or registry=
    metrics.watch(engine)          # flows, tasks, journal flushes
    metrics.watch_conductor(conductor)
    metrics.serve(9464)            # GET http://127.0.0.1:9464/metrics

``flowcoord serve`` answers ``GET /metrics`` and ``flowcoord worker --metrics-port N`` serves
them on their own port.

Metrics (prefix ``flowcoord_``):

- ``flows_total{flow, state}``: flows that entered a state (RUNNING, SUSPENDED, REVERTING and
  each final state) on a watched engine; ``flows_running``: flows running on them now.
- ``task_duration_seconds{flow, outcome}``: how long each task attempt's (workflow step's)
  body ran, ``outcome`` success or failure; ``reverts_total{flow, outcome}``: tasks and
  steps reverted (REVERTED, also those with nothing to undo) or whose revert failed.
- ``journal_flush_entries`` and ``journal_flush_seconds``: entries per flush and its duration
  (one backend append); ``journal_flush_failures_total``; ``journal_queued_entries``: entries
  waiting for the next flush (the group commit's queue depth).
- ``jobs_total{event}``: a watched conductor's claims, consumed, failed, abandoned, trashed,
  lost, quarantined, released (stopped cleanly and given back) and handed_back (of those,
  sleepers given back until they wake) jobs; ``jobs_running`` and, of those,
  ``jobs_waiting`` (workflows that only sleep or wait for an event).
- ``session_state{state}``: 1 for the state a watched coordination session is in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ._states import FlowState, StateChange
from .errors import ConfigurationError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ._coord._conductor import Conductor
    from ._coord._contract import CoordinationSession
    from ._engine._engine import Engine

__all__ = ["Metrics", "MetricsServer"]

_FLOW_STATES = frozenset(s.value for s in FlowState if s is not FlowState.PENDING)
_FLUSH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
_STATS = (
    "claimed",
    "consumed",
    "failed",
    "abandoned",
    "trashed",
    "lost",
    "quarantined",
    "released",
    "handed_back",
)


def _client() -> Any:
    try:
        import prometheus_client
    except ImportError:  # pragma: no cover - the extra is installed in CI
        raise ConfigurationError(
            "prometheus-client is not installed", hint="pip install 'flowcoord[prometheus]'"
        ) from None
    return prometheus_client


class Metrics:
    """The metrics of the module's doc, in ``registry`` (the client's default one if None).
    One per process and registry: a second one in the same registry is refused by the
    client (its names are taken)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        pc = _client()
        self.registry = registry if registry is not None else pc.REGISTRY
        reg = self.registry
        self._flows = pc.Counter(
            "flowcoord_flows", "Flows that entered a state", ["flow", "state"], registry=reg
        )
        self._tasks = pc.Histogram(
            "flowcoord_task_duration_seconds",
            "Task attempts (workflow steps) that ended, by outcome",
            ["flow", "outcome"],
            registry=reg,
        )
        self._reverts = pc.Counter(
            "flowcoord_reverts", "Reverts (compensations) that ended", ["flow", "outcome"],
            registry=reg,
        )  # fmt: skip
        self._flush_entries = pc.Histogram(
            "flowcoord_journal_flush_entries",
            "Entries per journal flush (one backend append)",
            buckets=_FLUSH_BUCKETS,
            registry=reg,
        )
        self._flush_seconds = pc.Histogram(
            "flowcoord_journal_flush_seconds", "Duration of a journal flush", registry=reg
        )
        self._flush_failures = pc.Counter(
            "flowcoord_journal_flush_failures", "Journal flushes that failed", registry=reg
        )
        self._engines: list[Engine] = []
        self._conductors: list[Conductor] = []
        self._sessions: list[CoordinationSession] = []
        reg.register(_Live(self))

    # -- what to watch -------------------------------------------------------------------------

    def watch(self, engine: Engine) -> None:
        """Count ``engine``'s flows, tasks and journal flushes."""
        engine.add_listener(self._changed, starts=False)  # the ends carry the durations
        engine.add_flush_listener(self._flushed)
        self._engines.append(engine)

    def watch_conductor(self, conductor: Conductor) -> None:
        """Export ``conductor``'s job counts (and watch its engine)."""
        self._conductors.append(conductor)
        if conductor.engine not in self._engines:
            self.watch(conductor.engine)

    def watch_session(self, session: CoordinationSession) -> None:
        self._sessions.append(session)

    # -- serving -------------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        pc = _client()
        return pc.generate_latest(self.registry), pc.CONTENT_TYPE_LATEST

    def serve(self, port: int, addr: str = "127.0.0.1") -> MetricsServer:
        """Serve ``GET /metrics`` on ``addr:port`` (0: any free port) from a thread; close
        the server returned to stop."""
        server, thread = _client().start_http_server(port, addr, registry=self.registry)
        return MetricsServer(server, thread)

    # -- listeners -----------------------------------------------------------------------------

    def _changed(self, change: StateChange) -> None:
        new = change.new
        if change.task is None:
            if new in _FLOW_STATES:
                self._flows.labels(change.flow_name, new).inc()
            return
        if new in ("SUCCESS", "FAILURE"):
            if change.elapsed is not None:  # an attempt that ran (not one restored)
                outcome = "success" if new == "SUCCESS" else "failure"
                self._tasks.labels(change.flow_name, outcome).observe(change.elapsed)
        elif new == "REVERTED":
            self._reverts.labels(change.flow_name, "success").inc()
        elif new == "REVERT_FAILURE":
            self._reverts.labels(change.flow_name, "failure").inc()

    def _flushed(self, entries: int, seconds: float, failed: bool) -> None:
        self._flush_entries.observe(entries)
        self._flush_seconds.observe(seconds)
        if failed:
            self._flush_failures.inc()


class MetricsServer:
    """``GET /metrics`` served from a thread (see :meth:`Metrics.serve`)."""

    def __init__(self, server: Any, thread: Any) -> None:
        self._server, self._thread = server, thread
        self.port: int = server.server_address[1]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Live:
    """What is read when scraped: running flows, the group commit's queue, the
    conductors' job counts, the sessions' states."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def describe(self) -> Iterable[Any]:
        return []  # collected at scrape time only (names unknown to the registry's checks)

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        m = self._m
        running = GaugeMetricFamily("flowcoord_flows_running", "Flows running on this engine")
        running.add_metric([], sum(len(e.running) for e in m._engines))
        yield running
        queued = GaugeMetricFamily(
            "flowcoord_journal_queued_entries", "Entries waiting for the next journal flush"
        )
        total = 0
        for e in m._engines:
            journal = e._journal
            if journal is not None:
                total += journal.queued
        queued.add_metric([], total)
        yield queued
        if m._conductors:
            jobs = CounterMetricFamily("flowcoord_jobs", "Job board events", labels=["event"])
            for stat in _STATS:
                jobs.add_metric([stat], sum(getattr(c.stats, stat) for c in m._conductors))
            yield jobs
            held = GaugeMetricFamily("flowcoord_jobs_running", "Jobs a conductor runs now")
            held.add_metric([], sum(len(c.running) for c in m._conductors))
            yield held
            waiting = GaugeMetricFamily(
                "flowcoord_jobs_waiting",
                "Of the jobs running, those whose workflows only wait (a sleep, an event)",
            )
            waiting.add_metric([], sum(c.waiting for c in m._conductors))
            yield waiting
        if m._sessions:
            state = GaugeMetricFamily(
                "flowcoord_session_state", "The coordination session's state", labels=["state"]
            )
            from ._coord._session import SessionState

            for s in SessionState:
                state.add_metric([s.name], sum(1 for x in m._sessions if x.state is s))
            yield state
