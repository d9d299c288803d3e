"""Import time of flowcoord's entry points, each in fresh interpreters.

``import flowcoord`` must not load asyncpg, aiozk or aiohttp: those load on first use of
``flowcoord.PostgresJournal``, of the ZooKeeper names in ``flowcoord.coordination``, and
with ``flowcoord.aiohttp``. :func:`measure` times ``python -c CODE`` for each case against
``python -c pass`` (the bare interpreter), interleaved, and reports the median wall time
above the bare interpreter. One more run per case, with ``-X importtime``, tells which of
the heavy dependencies it loaded, how many modules, and the import time Python itself counts.

Used by ``bench_import.py`` (the ``import`` rows of the table) and by the runner, which puts
the figures into every JSON report (``import_time``), measuring them with few samples when
the ``import`` module did not run.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["CASES", "HEAVY", "Case", "last", "measure"]

#: The dependencies that ``import flowcoord`` must not load.
HEAVY = ("asyncpg", "aiozk", "aiohttp")


@dataclass(frozen=True, slots=True)
class Case:
    key: str
    code: str
    #: the heavy dependencies this case is expected to load (the others it must not)
    expects: tuple[str, ...] = ()


CASES: tuple[Case, ...] = (
    Case("flowcoord", "import flowcoord"),
    Case("postgres_journal", "import flowcoord; flowcoord.PostgresJournal", ("asyncpg",)),
    Case(
        "zookeeper_session",
        "import flowcoord.coordination; flowcoord.coordination.ZooKeeperSession",
        ("aiozk",),
    ),
    Case("aiohttp", "import flowcoord.aiohttp", ("aiohttp",)),
)

_BARE = "pass"
_PROBE = f"\nimport sys\nprint(len(sys.modules), *[m for m in {HEAVY!r} if m in sys.modules])"

_last: dict[str, Any] | None = None


def last() -> dict[str, Any] | None:
    """The figures of the latest :func:`measure` in this process, or None."""
    return _last


def _time_one(code: str) -> float | str:
    """Wall seconds of one ``python -c code``, or the error text when it failed."""
    began = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - began
    if proc.returncode:
        lines = proc.stderr.strip().splitlines()
        return lines[-1] if lines else f"exit status {proc.returncode}"
    return elapsed


def _probe(code: str) -> dict[str, Any]:
    """Modules loaded by ``code`` and Python's own import-time count (``-X importtime``:
    the cumulative time of every top-level import, in ms)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code + _PROBE],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        lines = proc.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit status {proc.returncode}"}
    count, *loaded = proc.stdout.split()
    total_us = 0
    for line in proc.stderr.splitlines():
        # "import time:  self [us] | cumulative | imported package"; nested imports indented
        _, sep, rest = line.partition("import time:")
        parts = rest.split("|")
        if not sep or len(parts) != 3 or parts[2].startswith("  "):
            continue
        cumulative = parts[1].strip()
        if cumulative.isdigit():
            total_us += int(cumulative)
    return {"modules": int(count), "loads": loaded, "importtime_ms": total_us / 1000}


def measure(
    repeat: int,
    cases: Sequence[Case] = CASES,
    *,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Time every case ``repeat`` times (after one untimed warm-up that also writes the
    bytecode caches), interleaved with the bare interpreter; return the figures as JSON-ready
    data (also kept for :func:`last`)."""
    global _last
    codes = {"bare": _BARE, **{c.key: c.code for c in cases}}
    samples: dict[str, list[float]] = {k: [] for k in codes}
    errors: dict[str, str] = {}
    for key, code in codes.items():  # warm-up
        out = _time_one(code)
        if isinstance(out, str):
            errors[key] = out
    for r in range(repeat):
        for key, code in codes.items():
            if key in errors:
                continue
            out = _time_one(code)
            if isinstance(out, str):
                errors[key] = out
            else:
                samples[key].append(out)
        if log is not None:
            log(f"round {r + 1}/{repeat} done")
    if "bare" in errors:
        raise RuntimeError(f"python -c pass failed: {errors['bare']}")
    bare = statistics.median(samples["bare"])
    bare_probe = _probe(_BARE)
    result: dict[str, Any] = {
        "method": (
            "wall time of a fresh `python -c CODE` minus that of `python -c pass`, median of "
            f"{repeat} interleaved runs after a warm-up; modules and -X importtime from one "
            "more run"
        ),
        "python": sys.executable,
        "pythonpath": os.environ.get("PYTHONPATH", ""),
        "repeat": repeat,
        "bare_ms": round(bare * 1000, 2),
        "bare_modules": bare_probe.get("modules"),
        "cases": {},
    }
    for case in cases:
        entry: dict[str, Any] = {"code": case.code, "expects": list(case.expects)}
        if case.key in errors:
            entry["error"] = errors[case.key]
        else:
            probe = _probe(case.code)
            wall = samples[case.key]
            entry |= {
                "ms": round((statistics.median(wall) - bare) * 1000, 2),
                "samples_ms": [round((s - bare) * 1000, 2) for s in wall],
                **probe,
            }
            if "importtime_ms" in probe and "importtime_ms" in bare_probe:
                entry["importtime_ms"] = round(
                    probe["importtime_ms"] - bare_probe["importtime_ms"], 2
                )
            if "loads" in probe:
                entry["unexpected"] = [m for m in probe["loads"] if m not in case.expects]
        result["cases"][case.key] = entry
    _last = result
    return result
