"""Find the benchmark modules, run them one after the other in this process, print a table
and write the results as JSON. ``python -m benchmarks --help`` lists the options."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib
import inspect
import json
import os
import pkgutil
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any, cast

from . import _imports
from ._harness import Context, Result, RunFn, Skip, quiet_logging

__all__ = ["discover", "main"]

PACKAGE_DIR = Path(__file__).resolve().parent
RESULTS_DIR = PACKAGE_DIR / "results"


@dataclass
class ModuleReport:
    name: str
    status: str = "ok"  # ok | skipped | error
    reason: str = ""
    seconds: float = 0.0
    results: list[Result] = field(default_factory=list)


def discover() -> dict[str, ModuleType]:
    """Every ``benchmarks/bench_*.py``, keyed by its ``NAME`` (default: the file name without
    ``bench_``), in file-name order."""
    found: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules([str(PACKAGE_DIR)]), key=lambda i: i.name):
        if not info.name.startswith("bench_"):
            continue
        mod = importlib.import_module(f"{__package__}.{info.name}")
        name = getattr(mod, "NAME", info.name.removeprefix("bench_"))
        if not callable(getattr(mod, "run", None)):
            raise SystemExit(f"benchmarks/{info.name}.py has no run(ctx) function")
        found[name] = mod
    return found


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="flowcoord benchmarks: figures and ratios against baselines measured in "
        "the same run.",
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this module (core), measure prefix (core.linear) or measure-name "
        "substring (linear); repeatable",
    )
    p.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    p.add_argument("--repeat", type=int, default=None, help="timed samples per measure")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write here")
    p.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="module option (also read from FLOWCOORD_BENCH_<KEY>), "
        "e.g. -o taskflow_python=/path/to/python",
    )
    p.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    p.add_argument("--list", action="store_true", help="list the modules and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    modules = discover()
    if args.list:
        for name, mod in modules.items():
            lines = (mod.__doc__ or "").strip().splitlines()
            print(f"{name:<12} {lines[0] if lines else ''}")
        return 0
    options: dict[str, str] = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"-o needs KEY=VALUE, got {item!r}")
        options[key.strip()] = value
    quiet_logging()
    repeat = args.repeat or (3 if args.quick else 5)
    started = dt.datetime.now(dt.UTC)
    git = _git()  # before the run: others may commit meanwhile
    reports: list[ModuleReport] = []
    for name, mod in modules.items():
        patterns = _patterns_for(name, args.only, modules)
        if patterns is None:
            continue
        ctx = Context(
            module=name,
            quick=args.quick,
            repeat=repeat,
            only=patterns,
            options=options,
            verbose=not args.quiet,
        )
        reports.append(_run_module(name, mod, ctx))
    print(render_table(reports))
    doc = _document(args, started, git, reports, _import_time(args.quiet))
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    paths = [path] + ([args.json] if args.json else [])
    for out in paths:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nresults: {', '.join(str(p) for p in paths)}")
    if any(r.status == "error" for r in reports):
        return 2
    if args.check and any(res.verdict == "FAIL" for r in reports for res in r.results):
        return 1
    return 0


def _patterns_for(
    name: str, only: Sequence[str], modules: dict[str, ModuleType]
) -> tuple[str, ...] | None:
    """The ``--only`` patterns that concern module ``name``: ``()`` for all of it, None to
    skip it. A pattern is a module name, a ``module.measure`` prefix, or a bare substring of
    measure names (in every module)."""
    if not only or name in only:
        return ()
    mine = tuple(p for p in only if p.startswith(f"{name}.") or ("." not in p and p not in modules))
    return mine or None


def _run_module(name: str, mod: ModuleType, ctx: Context) -> ModuleReport:
    report = ModuleReport(name)
    ctx.log("start")
    t0 = time.perf_counter()

    def keep(result: Result) -> None:
        if not ctx.selected(result.name):
            return
        result = replace(result, name=f"{name}.{result.name}")
        report.results.append(result)
        ctx.log(f"{result.name} = {_fmt(result.value)} {result.unit}")

    async def collect() -> None:
        run: RunFn = mod.run
        out = run(ctx)
        if isinstance(out, AsyncIterator):
            async for result in out:
                keep(result)
        else:
            assert inspect.iscoroutine(out), f"{name}: run(ctx) must be async"
            results = cast("Sequence[Result] | None", await out)
            for result in results or ():
                keep(result)

    try:
        asyncio.run(collect())
    except Skip as exc:
        report.status, report.reason = "skipped", str(exc)
    except Exception as exc:
        report.status, report.reason = "error", f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    report.seconds = time.perf_counter() - t0
    ctx.log(f"{report.status} in {report.seconds:.1f}s {report.reason}".rstrip())
    return report


# -- output -----------------------------------------------------------------------------------


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def _fmt_ratio(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}x" if x >= 100 else f"{x:.3g}x"


def render_table(reports: Sequence[ModuleReport]) -> str:
    head = ("measure", "value", "unit", "stat", "baseline", "vs", "ratio", "target", "ok")
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []
    for rep in reports:
        if rep.status != "ok":
            rows.append((f"{rep.name} ({rep.status})", "", "", "", "", rep.reason, "", "", ""))
        for r in rep.results:
            ratio = r.ratio
            mark = ""
            if r.note:
                notes.append(f"[{len(notes) + 1}] {r.name}: {r.note}")
                mark = f" [{len(notes)}]"
            rows.append(
                (
                    r.name + mark,
                    _fmt(r.value),
                    r.unit,
                    r.stat,
                    _fmt(r.baseline),
                    r.baseline_name,
                    _fmt_ratio(ratio),
                    "" if r.target is None else str(r.target),
                    r.verdict,
                )
            )
    widths = [
        max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)
    ]
    right = {1, 4, 6}

    def line(cells: Sequence[str]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    lines = [line(head), line(["-" * w for w in widths]), *(line(r) for r in rows)]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def _git() -> dict[str, Any]:
    def run(*cmd: str) -> str:
        try:
            return subprocess.run(
                ["git", *cmd], cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "commit": run("rev-parse", "HEAD"),
        "dirty_src": bool(run("status", "--porcelain", "--", "src")),
    }


def _import_time(quiet: bool) -> dict[str, Any]:
    """The import-time figures for the JSON report: those of the ``import`` module when it
    ran every case in this process, else a quick measurement (3 rounds, a few seconds)."""
    got = _imports.last()
    if got is not None and set(got["cases"]) == {c.key for c in _imports.CASES}:
        return got
    if not quiet:
        print("  [runner] import time for the JSON report (3 rounds)", file=sys.stderr, flush=True)
    try:
        return _imports.measure(3)
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def _document(
    args: argparse.Namespace,
    started: dt.datetime,
    git: dict[str, Any],
    reports: Sequence[ModuleReport],
    import_time: dict[str, Any],
) -> dict[str, Any]:
    import flowcoord

    fc_info = {
        "version": flowcoord.__version__,
        "path": os.path.dirname(flowcoord.__file__ or ""),
    }
    return {
        "started": started.isoformat(),
        "finished": dt.datetime.now(dt.UTC).isoformat(),
        "argv": sys.argv[1:],
        "quick": args.quick,
        "host": {
            "python": sys.version.split()[0],
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        },
        "flowcoord": fc_info,
        "git": git,
        "import_time": import_time,
        "logging": "structlog filtered at WARNING; stdlib root logger at WARNING",
        "modules": [
            {
                "name": r.name,
                "status": r.status,
                "reason": r.reason,
                "seconds": round(r.seconds, 3),
                "results": [res.to_json() for res in r.results],
            }
            for r in reports
        ],
    }
