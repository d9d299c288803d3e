"""flowcoord benchmarks: ``python -m benchmarks`` (or ``nox -s bench``). See README.md.

A benchmark module is ``benchmarks/bench_<name>.py`` with an ``async def run(ctx)`` that
yields (or returns a list of) :class:`Result`; everything it needs is re-exported here.
"""

from ._harness import Case as Case
from ._harness import Context as Context
from ._harness import Phases as Phases
from ._harness import Result as Result
from ._harness import Samples as Samples
from ._harness import Skip as Skip
from ._harness import Target as Target
from ._harness import alternate as alternate
from ._harness import contention_note as contention_note
from ._harness import cpu_share as cpu_share

__all__ = [
    "Case",
    "Context",
    "Phases",
    "Result",
    "Samples",
    "Skip",
    "Target",
    "alternate",
    "contention_note",
    "cpu_share",
]
