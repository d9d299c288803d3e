"""PostgreSQL journal: durable throughput, idle per-task cost and resume, against raw asyncpg
and DBOS measured in the same run on the same server.

The server is a :class:`~flowcoord.testing.TemporaryPostgres` started here (fsync on, the
defaults of ``initdb``) unless ``FLOWCOORD_BENCH_PG_DSN`` (or ``-o pg_dsn=...``) names one;
its fsync / synchronous_commit settings are reported with every figure. Every flowcoord
sample runs on a fresh schema and a fresh :class:`~flowcoord.Engine` with default settings
(opening and closing it are not timed, its pool starts with one connection); schemas are
dropped afterwards. Figures are medians of ``ctx.repeat`` samples after one warm-up,
interleaved with their baselines.

Measures:

* ``throughput``: 1,000 flows x 10 no-op tasks started at once (``engine.run`` for each,
  flow creation included), unordered and linear, in durable task completions per second;
  with the number of backend calls, group-commit flushes and entries per flush. Baselines:
  raw asyncpg, one INSERT per commit on one connection, and ``executemany`` of 100 rows per
  transaction.
* ``throughput_1000x10.workflow``: 1,000 code-first workflows x 10 sequential ``ctx.step``
  calls of a no-op async function, started at once on the same kind of engine, alternated with the
  pattern flows above: durable steps per second against the linear 1,000 x 10 of the same
  run, with the client's CPU per step. ``…workflow_vs_dbos``: the same figure against DBOS's
  sequential steps/s (DBOS runs for it even when ``--only`` leaves ``dbos`` out).
* ``dbos``: DBOS Transact in a subprocess (``_dbos_peer.py``) when it is installed;
  flowcoord's throughput against DBOS's better figure (steps/s or one-step workflows/s).
* ``idle``: one linear flow of 200 no-op tasks, one at a time: the cost per task, against one
  raw INSERT+commit round trip; the target allows that round trip plus 0.3 ms.
* ``resume``: a 10,000-task flow, then a crash simulated by copying its journal into another
  schema without the final SUCCESS state entry (what a kill -9 after the last task's journaled
  success leaves) and resuming it with a fresh engine (``engine.resume``): nothing may run
  again, and it must take at most 10% of the first run. The same through ``engine.run`` with
  the journaled flow id (which first tries to create the flow) is reported beside it.

``-o pg_profile=PATH`` also profiles one extra 1,000 x 10 sample with cProfile (stats written
to PATH). Standalone: ``python -m benchmarks.bench_postgres [runner options]`` (this module
only, unless ``--only`` says otherwise).
"""

from __future__ import annotations

import asyncio
import collections
import cProfile
import gc
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter, process_time, time
from typing import Any

import asyncpg

import flowcoord as fc
from flowcoord._journal._events import Entry, FlowRecord
from flowcoord.testing import PostgresNotInstalled, TemporaryPostgres

from ._harness import Case, Context, Phases, Result, Samples, Target, alternate

NAME = "postgres"

HERE = Path(__file__).resolve().parent
TARGET_THROUGHPUT = Target(">=", 20_000, on="value")
TARGET_VS_DBOS = Target(">=", 50)
TARGET_WORKFLOW_VS_LINEAR = Target(">=", 1.0)  # a durable step costs no more than a task
TARGET_WORKFLOW_VS_DBOS = Target(">=", 100)
TARGET_RESUME = Target("<=", 0.10)
IDLE_MARGIN_US = 300.0  # per-task cost allowed on top of one commit round trip
#: Anchor figures, measured once (not in this run) on the reference machine (2 cores):
#: DBOS Transact 3.4 on PostgreSQL 15, sequential steps/s in one async workflow and
#: workflows/s for 200 concurrent one-step workflows. Used only when DBOS cannot run here.
ANCHOR_DBOS = (348.0, 159.0)


@dataclass(frozen=True)
class Sizes:
    flows: int
    tasks: int
    commits: int  # single-commit INSERTs per baseline sample
    batches: int  # executemany transactions of 100 rows per baseline sample
    linear: int
    resume: int
    resume_linear: int  # 0: not measured
    dbos_steps: int
    dbos_workflows: int


FULL = Sizes(1_000, 10, 2_000, 200, 200, 10_000, 10_000, 200, 200)
QUICK = Sizes(1_000, 10, 500, 50, 200, 10_000, 0, 200, 200)


# -- the server and its schemas ---------------------------------------------------------------


@asynccontextmanager
async def _server(ctx: Context) -> AsyncIterator[tuple[str, str]]:
    """``(dsn, where)``: the named server, or a temporary cluster for this run."""
    dsn = ctx.option("pg_dsn")
    if dsn:
        yield dsn, "FLOWCOORD_BENCH_PG_DSN"
        return
    try:
        pg = TemporaryPostgres()
    except PostgresNotInstalled as exc:
        ctx.skip(str(exc))
        raise  # unreachable: skip() raises
    try:
        await asyncio.to_thread(pg.start)
        yield pg.dsn, "TemporaryPostgres (initdb defaults, fsync on)"
    finally:
        await asyncio.to_thread(pg.cleanup)


async def _settings(dsn: str) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        names = ("server_version", "fsync", "synchronous_commit", "wal_sync_method")
        return {n: str(await conn.fetchval(f"SHOW {n}")) for n in names}
    finally:
        await conn.close()


class Schemas:
    """Fresh schema names, all dropped by ``drop_all``."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.made: list[str] = []

    def new(self, prefix: str = "b") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.made.append(name)
        return name

    async def drop_all(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            for name in self.made:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await conn.close()
        self.made.clear()


class CountingJournal(fc.PostgresJournal):
    """A :class:`~flowcoord.PostgresJournal` that counts its calls (one round trip each,
    retries aside) and the entries appended."""

    def __init__(self, dsn: str, *, schema: str) -> None:
        super().__init__(dsn, schema=schema)
        self.calls: collections.Counter[str] = collections.Counter()

    async def create_flow(self, record: FlowRecord, entries: Sequence[Entry]) -> bool:
        self.calls["create_flow"] += 1
        return await super().create_flow(record, entries)

    async def append(self, entries: Sequence[Entry]) -> frozenset[str]:
        self.calls["append"] += 1
        self.calls["entries"] += len(entries)
        return await super().append(entries)

    async def get_flow(self, flow_id: str) -> FlowRecord | None:
        self.calls["get_flow"] += 1
        return await super().get_flow(flow_id)

    async def read(self, flow_id: str, *, after_seq: int = -1) -> list[Entry]:
        self.calls["read"] += 1
        return await super().read(flow_id, after_seq=after_seq)

    async def fence(self, flow_id: str, token: int) -> int:
        self.calls["fence"] += 1
        return await super().fence(flow_id, token)


# -- workloads --------------------------------------------------------------------------------


class Runs:
    """Counts task executions (to prove a resume re-ran nothing)."""

    def __init__(self) -> None:
        self.n = 0


def noop_flow(kind: str, n: int, runs: Runs | None = None) -> fc.Flow:
    if runs is None:

        async def body() -> None:
            return None

    else:

        async def body() -> None:
            runs.n += 1

    tasks = [fc.FunctionTask(body, f"t{i}") for i in range(n)]
    pattern = fc.Linear if kind == "linear" else fc.Unordered
    return pattern(f"{kind}-{n}", *tasks)


async def noop_step() -> None:
    return None


def noop_workflow(n: int) -> fc.Workflow:
    """A workflow of ``n`` sequential steps of a no-op async function; it returns ``n``."""

    @fc.workflow(name=f"steps-{n}")
    async def steps(ctx: fc.Context) -> int:
        for _ in range(n):
            await ctx.step(noop_step)
        return n

    return steps


def flows_case(
    dsn: str,
    schemas: Schemas,
    flow: fc.Flow | fc.Workflow,
    n: int,
    stats: list[dict[str, Any]],
    profile: cProfile.Profile | None = None,
    gc_threshold: int | None = None,
    result: object = None,
    setup: Callable[[fc.Engine], object] | None = None,
) -> Case:
    """``n`` flows (or workflows) started at once on one fresh engine; times all of
    ``engine.run``.

    ``gc_threshold`` raises the collector's first threshold for the timed part only (what
    ``flowcoord worker --gc-threshold`` does for a whole worker process). ``result``: what
    each must return (a pattern flow returns None; :func:`noop_workflow` its step count).
    ``setup(engine)``: called on the open engine before the timed part (e.g. tracing)."""

    async def case() -> Phases:
        backend = CountingJournal(dsn, schema=schemas.new())
        async with fc.Engine(backend) as engine:
            if isinstance(flow, fc.Flow):
                engine.compile(flow)
            if setup is not None:
                setup(engine)
            if profile is not None:
                profile.enable()
            old = gc.get_threshold()
            if gc_threshold is not None:
                gc.set_threshold(gc_threshold, max(old[1], 20), max(old[2], 20))
            try:
                t0, c0 = perf_counter(), process_time()
                async with asyncio.TaskGroup() as tg:
                    runs = [tg.create_task(engine.run(flow, flow_id=f"f{i}")) for i in range(n)]
                t1, c1 = perf_counter(), process_time()
            finally:
                gc.set_threshold(*old)
            if profile is not None:
                profile.disable()
            journal = engine.journal
            stats.append(
                {
                    **backend.calls,
                    "flushes": journal.flushes,
                    "appended": journal.appended,
                }
            )
        bad = [r.result().state for r in runs if r.result().state is not fc.FlowState.SUCCESS]
        if bad:
            raise RuntimeError(f"{len(bad)} benchmark flows ended {bad[0]}")
        wrong = [r.result().result for r in runs if r.result().result != result]
        if wrong:
            raise RuntimeError(
                f"{len(wrong)} benchmark flows returned {wrong[0]!r}, not {result!r}"
            )
        return {"total": t1 - t0, "cpu": c1 - c0}

    return case


def one_flow_case(dsn: str, schemas: Schemas, flow: fc.Flow) -> Case:
    async def case() -> Phases:
        async with fc.Engine(fc.PostgresJournal(dsn, schema=schemas.new())) as engine:
            engine.compile(flow)
            t0 = perf_counter()
            out = await engine.run(flow, flow_id="one")
            t1 = perf_counter()
        if out.state is not fc.FlowState.SUCCESS:
            raise RuntimeError(f"benchmark flow ended {out.state}")
        return {"total": t1 - t0}

    return case


_RAW_TABLE = (
    "CREATE TABLE {t} (flow_id text, seq bigint, kind text, task text, data text,"
    " state text, token bigint, at double precision, PRIMARY KEY (flow_id, seq))"
)
_RAW_INSERT = "INSERT INTO {t} VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"


class Raw:
    """Raw asyncpg on one connection into a table shaped like the journal's entries."""

    def __init__(self, dsn: str, schemas: Schemas) -> None:
        self.dsn = dsn
        self.schema = schemas.new("raw")
        self.table = f'"{self.schema}".entries'
        self.conn: asyncpg.Connection[asyncpg.Record] | None = None
        self.seq = 0

    async def open(self) -> None:
        self.conn = await asyncpg.connect(self.dsn)
        await self.conn.execute(f'CREATE SCHEMA "{self.schema}"')
        await self.conn.execute(_RAW_TABLE.format(t=self.table))

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()

    def _rows(self, n: int) -> list[tuple[Any, ...]]:
        data = '{"result":null,"attempt":1}'
        first, self.seq = self.seq, self.seq + n
        at = time()
        return [
            ("raw", s, "task.succeeded", "t", data, None, 0, at) for s in range(first, first + n)
        ]

    def single_commits(self, n: int) -> Case:
        """``n`` INSERTs, each its own transaction (autocommit), one after the other."""

        async def case() -> Phases:
            conn = self.conn
            assert conn is not None
            sql = _RAW_INSERT.format(t=self.table)
            rows = self._rows(n)
            t0 = perf_counter()
            for row in rows:
                await conn.execute(sql, *row)
            return {"total": perf_counter() - t0}

        return case

    def executemany(self, batches: int, size: int = 100) -> Case:
        """``batches`` transactions, each an ``executemany`` of ``size`` rows."""

        async def case() -> Phases:
            conn = self.conn
            assert conn is not None
            sql = _RAW_INSERT.format(t=self.table)
            work = [self._rows(size) for _ in range(batches)]
            t0 = perf_counter()
            for rows in work:
                async with conn.transaction():
                    await conn.executemany(sql, rows)
            return {"total": perf_counter() - t0}

        return case


async def _copy_without_final_state(
    dsn: str, source: str, target: str, *, last_checkpoint: bool = True
) -> None:
    """Schema ``target``: ``source``'s journal minus its final SUCCESS state entry, the flow
    left RUNNING, as after a crash right after the last task's success was committed.
    ``last_checkpoint=False``: minus the last checkpoint too (the crash came just before it),
    so that resuming must read every entry since the one before."""
    async with fc.PostgresJournal(dsn, schema=target):
        pass  # creates the schema and its tables
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(
                f'INSERT INTO "{target}".flows SELECT flow_id, name, $1, token, created_at,'
                f' updated_at FROM "{source}".flows',
                fc.FlowState.RUNNING.value,
            )
            last = await conn.fetchval(f'SELECT max(seq) FROM "{source}".entries')
            row = await conn.fetchrow(
                f'SELECT kind, state FROM "{source}".entries WHERE seq = $1', last
            )
            final = (fc.journal.EventKind.FLOW_STATE.value, fc.FlowState.SUCCESS.value)
            if row is None or tuple(row) != final:
                raise RuntimeError(f"the last entry is {row}, not the SUCCESS state")
            if not last_checkpoint:
                last = await conn.fetchval(
                    f'SELECT max(seq) FROM "{source}".entries WHERE kind = $1',
                    fc.journal.EventKind.CHECKPOINT.value,
                )
            await conn.execute(
                f'INSERT INTO "{target}".entries SELECT * FROM "{source}".entries'
                f" WHERE seq < $1 OR (seq > $1 AND kind <> 'flow.state')",
                last,
            )
    finally:
        await conn.close()


def resume_case(
    dsn: str, schemas: Schemas, kind: str, n: int, reruns: list[int], read: list[int]
) -> Case:
    """Run an ``n``-task flow, copy its journal twice as a crash would leave it, resume one
    copy with ``engine.resume`` and the other with ``engine.run``."""
    runs = Runs()
    flow = noop_flow(kind, n, runs)

    async def case() -> Phases:
        first_schema = schemas.new()
        async with fc.Engine(fc.PostgresJournal(dsn, schema=first_schema)) as engine:
            engine.compile(flow)
            runs.n = 0
            t0 = perf_counter()
            out = await engine.run(flow, flow_id="big")
            t1 = perf_counter()
        if out.state is not fc.FlowState.SUCCESS or runs.n != n:
            raise RuntimeError(f"first run ended {out.state} after {runs.n} of {n} tasks")
        took = {"total": t1 - t0}
        for phase in ("resume", "run_again", "before_checkpoint"):
            copy = schemas.new()
            await _copy_without_final_state(
                dsn, first_schema, copy, last_checkpoint=phase != "before_checkpoint"
            )
            async with fc.Engine(fc.PostgresJournal(dsn, schema=copy)) as engine:
                engine.compile(flow)
                if phase != "run_again":
                    read.append(len(await engine.backend.read_for_resume("big")))
                runs.n = 0
                t2 = perf_counter()
                if phase == "run_again":
                    out = await engine.run(flow, flow_id="big")
                else:
                    out = await engine.resume(flow, "big")
                took[phase] = perf_counter() - t2
            reruns.append(runs.n)
            if out.state is not fc.FlowState.SUCCESS:
                raise RuntimeError(f"resumed flow ended {out.state}")
        return took

    return case


async def dbos(ctx: Context, dsn: str, sizes: Sizes) -> dict[str, Any]:
    """DBOS samples in a subprocess, or ``{"error": ...}``."""
    python = ctx.option("dbos_python", sys.executable) or sys.executable
    repeat = max(1, min(ctx.repeat, 3))
    ctx.log(f"DBOS: {sizes.dbos_steps} sequential steps, {sizes.dbos_workflows} concurrent "
            f"one-step workflows, {repeat} samples (in {python})")  # fmt: skip
    argv = [python, str(HERE / "_dbos_peer.py"), f"--dsn={dsn}", f"--repeat={repeat}",
            f"--steps={sizes.dbos_steps}", f"--workflows={sizes.dbos_workflows}"]  # fmt: skip
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except OSError as exc:
        return {"error": f"cannot start {python}: {exc}"}
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 600)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return {"error": "_dbos_peer.py did not finish within 600s"}
    try:
        data: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = err.decode(errors="replace").strip().splitlines()[-3:]
        return {"error": f"_dbos_peer.py exited {proc.returncode}: {' | '.join(tail)}"}
    return data


def rate(n: int, s: Samples) -> float:
    return n / s.median


# -- the measures -----------------------------------------------------------------------------


async def run(ctx: Context) -> AsyncIterator[Result]:
    sizes = QUICK if ctx.quick else FULL
    rep = ctx.repeat
    stat = f"median of {rep}"
    async with _server(ctx) as (dsn, where):
        settings = await _settings(dsn)
        durable = settings["fsync"] == "on" and settings["synchronous_commit"] == "on"
        server_note = (
            f"{where}: PostgreSQL {settings['server_version']}, fsync={settings['fsync']}, "
            f"synchronous_commit={settings['synchronous_commit']}, "
            f"wal_sync_method={settings['wal_sync_method']}"
        ) + ("" if durable else " — NOT DURABLE, figures are not comparable")
        load = os.getloadavg()[0]
        server_note += f"; 1-min load average at start {load:.2f} on {os.cpu_count()} CPUs"
        ctx.log(server_note)
        schemas = Schemas(dsn)
        raw = Raw(dsn, schemas)
        await raw.open()
        try:
            async for result in _measures(ctx, sizes, rep, stat, dsn, schemas, raw, server_note):
                yield result
        finally:
            await raw.close()
            await schemas.drop_all()


async def _measures(
    ctx: Context,
    sizes: Sizes,
    rep: int,
    stat: str,
    dsn: str,
    schemas: Schemas,
    raw: Raw,
    server_note: str,
) -> AsyncIterator[Result]:
    n, k = sizes.flows, sizes.tasks
    total_tasks = n * k
    ours: float | None = None  # unordered tasks/s, for the DBOS ratio
    ours_wf: float | None = None  # workflow steps/s, for the DBOS sequential ratio
    wf_samples: tuple[float, ...] = ()

    # 1. many concurrent flows (and workflows), durably, against raw asyncpg.
    key = f"throughput_{n}x{k}"
    wf_dbos_key = f"{key}.workflow_vs_dbos"
    want_wf = ctx.selected(f"{key}.workflow") or ctx.selected(wf_dbos_key)
    if ctx.selected(key) or ctx.selected("dbos") or want_wf:
        ctx.log(
            f"{key}: {n} flows x {k} no-op tasks (unordered, linear)"
            + (f", {n} workflows x {k} no-op steps" if want_wf else "")
            + " and raw asyncpg"
        )
        stats: dict[str, list[dict[str, Any]]] = {
            "unordered": [],
            "linear": [],
            "workflow": [],
            "tuned": [],
        }
        flows = {kind: noop_flow(kind, k) for kind in ("unordered", "linear")}
        cases: dict[str, Case] = {
            "unordered": flows_case(dsn, schemas, flows["unordered"], n, stats["unordered"]),
            "linear": flows_case(dsn, schemas, flows["linear"], n, stats["linear"]),
        }
        if want_wf:  # interleaved with the linear flows it is compared with
            wf = noop_workflow(k)
            cases["workflow"] = flows_case(dsn, schemas, wf, n, stats["workflow"], result=k)
        cases["tuned"] = flows_case(
            dsn, schemas, flows["unordered"], n, stats["tuned"], gc_threshold=20000
        )
        cases["commit"] = raw.single_commits(sizes.commits)
        cases["executemany"] = raw.executemany(sizes.batches)
        got = await alternate(cases, repeat=rep, log=ctx.log)
        commit_rate = rate(sizes.commits, got["commit"]["total"])
        many_rate = rate(sizes.batches * 100, got["executemany"]["total"])
        yield Result(
            f"{key}.raw_single_commit",
            commit_rate,
            "commits/s",
            stat=stat,
            samples=got["commit"]["total"].rates(sizes.commits),
            extra={"us_per_commit": 1e6 / commit_rate},
            note=f"baseline: raw asyncpg, one INSERT per commit, one connection; {server_note}",
        )
        yield Result(
            f"{key}.raw_executemany_100",
            many_rate,
            "rows/s",
            stat=stat,
            samples=got["executemany"]["total"].rates(sizes.batches * 100),
            note="baseline: raw asyncpg, executemany of 100 rows per transaction",
        )
        for kind in ("unordered", "linear"):
            s = got[kind]["total"]
            last = stats[kind][-1]
            per_flush = last["appended"] / max(1, last["flushes"])
            value = rate(total_tasks, s)
            cpu_us = got[kind]["cpu"].median / total_tasks * 1e6
            if kind == "unordered":
                ours = value
            yield Result(
                f"{key}.{kind}",
                value,
                "tasks/s",
                baseline=commit_rate,
                baseline_name="raw single commits/s",
                target=TARGET_THROUGHPUT,
                stat=stat,
                samples=s.rates(total_tasks),
                extra={
                    "best": total_tasks / s.best,
                    "seconds": s.median,
                    "entries_per_flush": per_flush,
                    "client_cpu_us_per_task": cpu_us,
                    "vs_raw_executemany_100": value / many_rate,
                    **last,
                },
                note=f"{n} {kind} flows of {k} no-op tasks started at once, creation included; "
                f"{last['flushes']} flushes of {per_flush:.0f} entries, "
                f"{last.get('create_flow', 0)} create_flow + {last.get('get_flow', 0)} "
                f"get_flow calls; this process's CPU: {cpu_us:.0f} µs per task",
            )

        if want_wf:
            # workflows: the same durable work as the linear flows (k journaled results one after
            # the other, per flow), written as code; ratio against the linear row of this run
            linear_rate = rate(total_tasks, got["linear"]["total"])
            linear_cpu_us = got["linear"]["cpu"].median / total_tasks * 1e6
            s = got["workflow"]["total"]
            last = stats["workflow"][-1]
            per_flush = last["appended"] / max(1, last["flushes"])
            ours_wf, wf_samples = rate(total_tasks, s), s.rates(total_tasks)
            wf_cpu_us = got["workflow"]["cpu"].median / total_tasks * 1e6
            entries_per_step = last.get("entries", 0) / total_tasks
            yield Result(
                f"{key}.workflow",
                ours_wf,
                "steps/s",
                baseline=linear_rate,
                baseline_name=f"pattern linear {n}x{k} (tasks/s)",
                target=TARGET_WORKFLOW_VS_LINEAR,
                stat=stat,
                samples=wf_samples,
                extra={
                    "best": total_tasks / s.best,
                    "seconds": s.median,
                    "entries_per_flush": per_flush,
                    "entries_per_step": entries_per_step,
                    "client_cpu_us_per_step": wf_cpu_us,
                    "linear_client_cpu_us_per_task": linear_cpu_us,
                    "vs_raw_single_commit": ours_wf / commit_rate,
                    **last,
                },
                note=f"{n} workflows of {k} sequential ctx.step(no-op async def) started at once, "
                f"creation included, alternated with the linear flows; {last['flushes']} flushes "
                f"of {per_flush:.0f} entries, {entries_per_step:.2f} appended entries per step; "
                f"this process's CPU: {wf_cpu_us:.0f} µs per step (linear: {linear_cpu_us:.0f} µs "
                "per task); target: a step costs no more than a linear task",
            )

        tuned = got["tuned"]["total"]
        yield Result(
            f"{key}.unordered_gc_threshold_20000",
            rate(total_tasks, tuned),
            "tasks/s",
            baseline=commit_rate,
            baseline_name="raw single commits/s",
            stat=stat,
            samples=tuned.rates(total_tasks),
            extra={"client_cpu_us_per_task": got["tuned"]["cpu"].median / total_tasks * 1e6},
            note="the unordered case with gc.set_threshold(20000, 20, 20) while it runs, as "
            "`flowcoord worker --gc-threshold 20000` does (report only)",
        )

    # 2. DBOS on the same server (also for the workflow row's ratio, when only it is asked).
    if ctx.selected("dbos") or ctx.selected(wf_dbos_key):
        peer = await dbos(ctx, dsn, sizes)
        if "error" in peer:
            baseline, baseline_name = max(ANCHOR_DBOS), "ANCHOR DBOS steps/s"
            note = (
                f"DBOS not measured ({peer['error']}); baseline is the anchor figure "
                f"{baseline:g}/s, not measured in this run"
            )
            seq_base, seq_name = ANCHOR_DBOS[0], "ANCHOR DBOS sequential steps/s"
            seq_note = (
                f"DBOS not measured ({peer['error']}); baseline is the anchor figure "
                f"{seq_base:g} steps/s, not measured in this run"
            )
            seq_extra: dict[str, Any] = {}
        else:
            seq, conc = Samples(tuple(peer["sequential"])), Samples(tuple(peer["concurrent"]))
            seq_rate, conc_rate = rate(peer["steps"], seq), rate(peer["workflows"], conc)
            yield Result(
                "dbos.sequential_steps",
                seq_rate,
                "steps/s",
                stat=f"median of {len(seq.values)}",
                samples=seq.rates(peer["steps"]),
                note=f"DBOS {peer['dbos']}: {peer['steps']} no-op steps in one async workflow",
            )
            yield Result(
                "dbos.concurrent_workflows",
                conc_rate,
                "workflows/s",
                stat=f"median of {len(conc.values)}",
                samples=conc.rates(peer["workflows"]),
                note=f"DBOS: {peer['workflows']} concurrent one-step async workflows",
            )
            baseline = max(seq_rate, conc_rate)
            baseline_name = "DBOS best (steps/s)"
            note = "ratio against DBOS's better figure: a step or a one-step workflow = a task"
            seq_base, seq_name = seq_rate, "DBOS sequential steps/s"
            seq_note = (
                f"DBOS {peer['dbos']}: {peer['steps']} no-op steps one after the other in one "
                f"async workflow, measured in this run ({seq_rate:.0f} steps/s; its "
                f"{peer['workflows']} concurrent one-step workflows: {conc_rate:.0f}/s)"
            )
            seq_extra = {
                "dbos_sequential_samples_s": peer["sequential"],
                "dbos_concurrent_workflows_per_s": conc_rate,
            }
        if ours is not None:
            yield Result(
                f"dbos.flowcoord_{n}x{k}_vs_dbos",
                ours,
                "tasks/s",
                baseline=baseline,
                baseline_name=baseline_name,
                target=TARGET_VS_DBOS,
                stat=stat,
                note=note,
            )
        if ours_wf is not None:
            yield Result(
                wf_dbos_key,
                ours_wf,
                "steps/s",
                baseline=seq_base,
                baseline_name=seq_name,
                target=TARGET_WORKFLOW_VS_DBOS,
                stat=stat,
                samples=wf_samples,
                extra=seq_extra,
                note=f"flowcoord's {n} concurrent workflows x {k} steps (the `{key}.workflow` "
                f"row) against {seq_note}: both durable steps on the same server, flowcoord's "
                "group-committed across workflows",
            )

    # 3. idle per-task overhead: one linear flow, one task at a time.
    m = sizes.linear
    key = f"idle_linear_{m}"
    if ctx.selected(key):
        ctx.log(f"{key}: one linear flow of {m}, one of 1, and {m} single commits")
        got = await alternate(
            {
                "commit": raw.single_commits(m),
                "long": one_flow_case(dsn, schemas, noop_flow("linear", m)),
                "short": one_flow_case(dsn, schemas, noop_flow("linear", 1)),
            },
            repeat=rep,
            log=ctx.log,
        )
        commit_us = got["commit"]["total"].median / m * 1e6
        long_s, short_s = got["long"]["total"].median, got["short"]["total"].median
        per_task = (long_s - short_s) / (m - 1) * 1e6
        yield Result(
            f"{key}.per_task",
            per_task,
            "µs/task",
            baseline=commit_us,
            baseline_name="raw INSERT+commit",
            target=Target("<=", round(commit_us + IDLE_MARGIN_US, 1), on="value"),
            stat=stat,
            extra={
                "flow_seconds": long_s,
                "one_task_flow_seconds": short_s,
                "total_per_task_us": long_s / m * 1e6,
                "commit_us": commit_us,
                "per_task_best_us": (got["long"]["total"].best - got["short"]["total"].best)
                / (m - 1)
                * 1e6,
                "commit_best_us": got["commit"]["total"].best / m * 1e6,
            },
            note=f"(time of a {m}-task linear flow - time of a 1-task one) / {m - 1}; "
            f"target: one raw commit round trip + {IDLE_MARGIN_US:g} µs",
        )
        yield Result(
            f"{key}.overhead_over_commit",
            per_task - commit_us,
            "µs/task",
            target=Target("<=", IDLE_MARGIN_US, on="value"),
            stat=stat,
        )

    # 4. resume after a crash after the last task: nothing runs again.
    for kind, size in (("unordered", sizes.resume), ("linear", sizes.resume_linear)):
        key = f"resume_{kind}_{size // 1000}k"
        if not size or not ctx.selected(key):
            continue
        r = rep if kind == "unordered" else min(rep, 3)
        ctx.log(f"{key}: first run, simulated crash, resume ({r} samples)")
        reruns: list[int] = []
        read: list[int] = []
        got = await alternate(
            {"fc": resume_case(dsn, schemas, kind, size, reruns, read)}, repeat=r, log=ctx.log
        )
        if any(reruns):
            raise RuntimeError(f"a resume re-ran tasks: {reruns}")
        first, resumed = got["fc"]["total"], got["fc"]["resume"]
        again, worst = got["fc"]["run_again"], got["fc"]["before_checkpoint"]
        yield Result(
            f"{key}.resume",
            resumed.median,
            "s",
            baseline=first.median,
            baseline_name="first run",
            target=TARGET_RESUME,
            stat=f"median of {r}",
            samples=resumed.values,
            extra={
                "first_run_tasks_per_s": size / first.median,
                "first_run_samples_s": first.values,
                "tasks_rerun": sum(reruns),
                "entries_read": read[0::2],
            },
            note=f"a {size}-task {kind} flow whose SUCCESS state entry was not journaled, "
            "resumed by a fresh engine (engine.resume): reads the checkpoints and what follows "
            f"them ({read[0]} entries), re-runs nothing, journals SUCCESS",
        )
        reported: tuple[tuple[str, Samples, dict[str, Any], str], ...] = (
            (
                "before_checkpoint",
                worst,
                {"entries_read": read[1::2]},
                "the same with the crash just before the last checkpoint: reads every entry "
                f"since the one before ({read[1]} entries; report only)",
            ),
            (
                "run_again",
                again,
                {},
                "the same through engine.run(flow, flow_id=...), which first tries to create "
                "the flow (report only)",
            ),
        )
        for phase, samples, extra, note in reported:
            yield Result(
                f"{key}.{phase}",
                samples.median,
                "s",
                baseline=first.median,
                baseline_name="first run",
                stat=f"median of {r}",
                samples=samples.values,
                extra=extra,
                note=note,
            )
        await schemas.drop_all()

    # 5. optional: profile one more 1,000 x 10 sample.
    path = ctx.option("pg_profile")
    if path:
        ctx.log(f"profiling one {n} x {k} unordered sample into {path}")
        prof = cProfile.Profile()
        await flows_case(dsn, schemas, noop_flow("unordered", k), n, [], prof)()
        prof.dump_stats(path)


if __name__ == "__main__":
    from ._runner import main

    argv = sys.argv[1:]
    raise SystemExit(main(argv if "--only" in argv else ["--only", NAME, *argv]))
