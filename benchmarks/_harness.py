"""What a benchmark module works with: the context, results, targets and timing helpers."""

from __future__ import annotations

import gc
import logging
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import structlog

__all__ = [
    "Case",
    "Context",
    "Phases",
    "Result",
    "RunFn",
    "Samples",
    "Skip",
    "Target",
    "alternate",
    "contention_note",
    "cpu_share",
    "quiet_logging",
]

#: Phase name → seconds, as returned by one timed sample. ``"total"`` is the main phase.
Phases: TypeAlias = Mapping[str, float]
#: One timed sample: does its own setup, times what it measures, returns the phases.
Case: TypeAlias = Callable[[], Awaitable[Phases]]
#: A benchmark module's ``run``: an async generator of results, or a coroutine returning them.
RunFn: TypeAlias = Callable[
    ["Context"], AsyncIterator["Result"] | Coroutine[Any, Any, Sequence["Result"] | None]
]


class Skip(Exception):
    """Raised by a module (or ``ctx.skip``) when it cannot run here; the reason is reported."""


@dataclass(frozen=True, slots=True)
class Target:
    """A pass/fail bound on a result's ``ratio`` (value ÷ baseline) or on its ``value``."""

    op: Literal[">=", "<="]
    bound: float
    on: Literal["ratio", "value"] = "ratio"

    def check(self, result: Result) -> bool | None:
        """True/False, or None when the compared figure is missing (no baseline)."""
        x = result.ratio if self.on == "ratio" else result.value
        if x is None:
            return None
        return x >= self.bound if self.op == ">=" else x <= self.bound

    def __str__(self) -> str:
        sign = "≥" if self.op == ">=" else "≤"
        if self.on == "ratio":
            return f"{sign} {self.bound:g}x"
        return f"{sign} {self.bound:g}"


@dataclass(frozen=True, slots=True)
class Result:
    """One measured figure.

    ``name`` is local to the module (the runner prefixes the module name). ``baseline`` is the
    figure it is compared with, measured in the same run (or a labelled anchor), in the same
    unit; ``ratio`` is ``value / baseline``. ``stat`` says which statistic ``value`` is
    (e.g. ``"median of 5"``); ``samples`` holds the raw figures behind it.
    """

    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    target: Target | None = None
    stat: str = ""
    note: str = ""
    samples: tuple[float, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline:
            return None
        return self.value / self.baseline

    @property
    def verdict(self) -> str:
        """``pass`` / ``FAIL`` against the target, ``n/a`` if not comparable, ``""`` if none."""
        if self.target is None:
            return ""
        ok = self.target.check(self)
        return "n/a" if ok is None else ("pass" if ok else "FAIL")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "stat": self.stat,
            "baseline": self.baseline,
            "baseline_name": self.baseline_name,
            "ratio": self.ratio,
            "target": None
            if self.target is None
            else {"op": self.target.op, "bound": self.target.bound, "on": self.target.on},
            "verdict": self.verdict,
            "note": self.note,
            "samples": list(self.samples),
            "extra": dict(self.extra),
        }


@dataclass(frozen=True, slots=True)
class Samples:
    """Repeated measurements of one phase, in seconds."""

    values: tuple[float, ...]

    @property
    def best(self) -> float:
        return min(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def rates(self, n: int) -> tuple[float, ...]:
        """``n`` items ÷ each sample: items per second."""
        return tuple(n / v for v in self.values)


@dataclass
class Context:
    """What the runner hands a module's ``run(ctx)``.

    ``quick`` asks for smaller sizes; ``repeat`` is the number of timed samples per measure
    (after ``warmup`` untimed ones); ``selected(name)`` says whether ``--only`` wants the
    measure called ``name`` (skip expensive work when it does not); ``option(key)`` reads
    ``-o key=value`` or the environment variable ``FLOWCOORD_BENCH_<KEY>``.
    """

    module: str
    quick: bool = False
    repeat: int = 5
    warmup: int = 1
    only: Sequence[str] = ()
    options: Mapping[str, str] = field(default_factory=dict)
    verbose: bool = True

    def selected(self, name: str) -> bool:
        if not self.only:
            return True
        full = f"{self.module}.{name}"
        return any(full.startswith(p) or ("." not in p and p in name) for p in self.only)

    def option(self, key: str, default: str | None = None) -> str | None:
        if key in self.options:
            return self.options[key]
        return os.environ.get(f"FLOWCOORD_BENCH_{key.upper()}", default)

    def skip(self, reason: str) -> None:
        raise Skip(reason)

    def log(self, message: str) -> None:
        """A progress line on stderr (the table goes to stdout)."""
        if self.verbose:
            print(f"  [{self.module}] {message}", file=sys.stderr, flush=True)


async def alternate(
    cases: Mapping[str, Case],
    *,
    repeat: int,
    warmup: int = 1,
    log: Callable[[str], None] | None = None,
) -> dict[str, dict[str, Samples]]:
    """Time each case ``warmup`` times untimed, then ``repeat`` rounds, interleaved
    (A B C, A B C, …) so drift hits every case alike.

    Before each sample: ``gc.collect()`` then ``gc.freeze()``, so objects built during setup
    (e.g. a 100k-task flow definition) are not rescanned by collections inside the sample;
    the garbage collector stays enabled for what the sample allocates. Each case also gets
    the phases ``case_wall`` and ``case_cpu`` (wall and process CPU time around the whole
    call): see :func:`cpu_share`.
    """
    for _ in range(warmup):
        for case in cases.values():
            await _one(case)
    collected: dict[str, dict[str, list[float]]] = {k: {} for k in cases}
    for r in range(repeat):
        for key, case in cases.items():
            phases = await _one(case)
            for phase, seconds in phases.items():
                collected[key].setdefault(phase, []).append(seconds)
        if log is not None:
            log(f"round {r + 1}/{repeat} done")
    return {
        k: {phase: Samples(tuple(v)) for phase, v in per.items()} for k, per in collected.items()
    }


async def _one(case: Case) -> Phases:
    gc.collect()
    gc.freeze()
    try:
        w0, c0 = time.perf_counter(), time.process_time()
        phases = dict(await case())
        phases["case_wall"] = time.perf_counter() - w0
        phases["case_cpu"] = time.process_time() - c0
        return phases
    finally:
        gc.unfreeze()


def cpu_share(*cases: Mapping[str, Samples]) -> float:
    """Process CPU time ÷ wall time over the given cases' samples (from :func:`alternate`).

    Near 1.0 for the single-threaded asyncio benchmarks on an idle machine; clearly lower
    means another process took the CPU during the samples, and wall-clock figures are high.
    """
    wall = sum(sum(c["case_wall"].values) for c in cases)
    cpu = sum(sum(c["case_cpu"].values) for c in cases)
    return cpu / wall if wall else 1.0


def contention_note(share: float, threshold: float = 0.9) -> str:
    """A warning for the table when :func:`cpu_share` is below ``threshold``."""
    if share >= threshold:
        return ""
    return (
        f"machine busy: this process got {share:.0%} of a CPU during these samples; "
        "wall-clock figures are inflated (compare ratios, or re-run on an idle machine)"
    )


def quiet_logging() -> None:
    """Benchmarks run with structlog filtered at WARNING (the engine logs flow states at INFO)
    and the stdlib root logger at WARNING (peers such as TaskFlow log through it)."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger().setLevel(logging.WARNING)
