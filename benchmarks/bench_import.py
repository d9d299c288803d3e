"""Import time: `import flowcoord` and its lazy entry points, in fresh interpreters.

Each row is the median wall time of ``python -c CODE`` minus that of ``python -c pass``
(the bare interpreter), in ms, runs interleaved after a warm-up; the note says which of
asyncpg / aiozk / aiohttp the case loaded. ``flowcoord_loads_heavy`` counts the heavy
dependencies a plain ``import flowcoord`` loads: the target is none (they are lazy).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from . import _imports
from ._harness import Context, Result, Target

NAME = "import"

TARGET_NO_HEAVY = Target("<=", 0, on="value")


async def run(ctx: Context) -> AsyncIterator[Result]:
    cases = [c for c in _imports.CASES if ctx.selected(c.key)]
    if ctx.selected("flowcoord_loads_heavy") and not any(c.key == "flowcoord" for c in cases):
        cases.insert(0, _imports.CASES[0])
    repeat = 2 * ctx.repeat + 1  # one sample is cheap and noisy: take more
    ctx.log(f"{len(cases)} cases + the bare interpreter, {repeat} rounds")
    got = _imports.measure(repeat, cases, log=ctx.log)
    stat = f"median of {repeat}, minus bare python"
    failed = {
        c.key: f"{c.code!r} failed: {got['cases'][c.key]['error']}"
        for c in cases
        if "error" in got["cases"][c.key]
    }
    yield Result(
        "bare_interpreter",
        got["bare_ms"],
        "ms",
        stat=f"median of {repeat}",
        note="; ".join([f"python -c pass: {got['bare_modules']} modules", *failed.values()]),
        extra={"failed": failed},
    )
    for case in cases:
        entry = got["cases"][case.key]
        if case.key in failed:
            ctx.log(failed[case.key])
            continue
        loads = ", ".join(entry["loads"]) or "none of " + "/".join(_imports.HEAVY)
        if ctx.selected(case.key):
            yield Result(
                case.key,
                entry["ms"],
                "ms",
                stat=stat,
                samples=tuple(entry["samples_ms"]),
                note=(
                    f"{case.code!r}: loads {loads}; {entry['modules']} modules; "
                    f"-X importtime {entry['importtime_ms']:.0f} ms"
                ),
                extra={k: v for k, v in entry.items() if k != "samples_ms"},
            )
        if case.key == "flowcoord" and ctx.selected("flowcoord_loads_heavy"):
            yield Result(
                "flowcoord_loads_heavy",
                float(len(entry["loads"])),
                "modules",
                target=TARGET_NO_HEAVY,
                note=f"'import flowcoord' loads {loads}",
                extra={"loads": entry["loads"]},
            )
