"""Conductor processes (``tests.faults._zk_worker``) for the fail-over tests and benchmark.

A :class:`Cluster` spawns workers sharing one SQLite journal and one effects file, waits on
that file (every line is one event, in one order over all processes), reads the journal, and
kills what it started. Waits are bounded; on failure, :meth:`Cluster.dump_on_failure` adds
each worker's stderr and the effects file's tail to the error.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio

import flowcoord as fc
from flowcoord._journal._events import Entry, EventKind

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""


class Cluster:
    def __init__(self, workdir: Path, hosts: str, namespace: str, session_timeout: float) -> None:
        self.workdir = workdir
        self.hosts = hosts
        self.namespace = namespace
        self.session_timeout = session_timeout
        self.journal = workdir / "journal.sqlite"
        self.effects = workdir / "effects"
        self.workers: dict[str, Worker] = {}

    # -- processes ---------------------------------------------------------------------------

    #: the module a worker process runs (its flows and its effects)
    worker_module = "tests.faults._zk_worker"

    def spawn(self, name: str, *, hosts: str | None = None, capacity: int = 10) -> Worker:
        err = self.workdir / f"{name}.stderr"
        cmd = [
            sys.executable,
            "-m",
            self.worker_module,
            "--zk",
            hosts or self.hosts,
            "--namespace",
            self.namespace,
            "--journal",
            str(self.journal),
            "--effects",
            str(self.effects),
            "--name",
            name,
            "--capacity",
            str(capacity),
            "--session-timeout",
            str(self.session_timeout),
        ]
        with err.open("wb") as stderr:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr
            )
        worker = self.workers[name] = Worker(name, proc, err)
        return worker

    async def start(self, name: str, *, hosts: str | None = None, capacity: int = 10) -> Worker:
        """Spawn a worker and wait until its conductor runs."""
        w = self.spawn(name, hosts=hosts, capacity=capacity)
        await self.wait_for(lambda ev: ["ready", str(w.pid), name] in ev, f"{name} ready")
        return w

    def signal(self, name: str, signum: int) -> None:
        os.kill(self.workers[name].pid, signum)

    async def wait_exit(self, name: str, within: float = 15) -> int:
        proc = self.workers[name].proc
        with anyio.fail_after(within):
            while proc.poll() is None:  # noqa: ASYNC110 - a child process, bounded
                await anyio.sleep(0.02)
        return proc.returncode

    def stop_all(self) -> None:
        """SIGTERM every live worker (SIGCONT first: it may be stopped), SIGKILL stragglers."""
        live = [w for w in self.workers.values() if w.proc.poll() is None]
        for w in live:
            with contextlib.suppress(ProcessLookupError):
                w.proc.send_signal(signal.SIGCONT)
                w.proc.terminate()
        for w in live:
            try:
                w.proc.wait(15)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()

    # -- the effects file --------------------------------------------------------------------

    def events(self) -> list[list[str]]:
        try:
            text = self.effects.read_text()
        except FileNotFoundError:
            return []
        return [line.split() for line in text.splitlines() if line.strip()]

    async def wait_for(
        self, pred: Callable[[list[list[str]]], bool], what: str, within: float = 30
    ) -> list[list[str]]:
        """Poll the effects file until ``pred(events)``; fail naming ``what`` after ``within``
        seconds, or at once if a worker died that was not told to."""
        try:
            with anyio.fail_after(within):
                while True:
                    events = self.events()
                    if pred(events):
                        return events
                    for w in self.workers.values():
                        code = w.proc.poll()
                        if code not in (None, -signal.SIGKILL, 0):
                            raise AssertionError(f"worker {w.name} exited with {code}")
                    await anyio.sleep(0.02)
        except TimeoutError:
            raise AssertionError(f"timed out after {within} s waiting for: {what}") from None

    def task_lines(self, flow_id: str | None = None, pid: int | None = None) -> list[list[str]]:
        return [
            e
            for e in self.events()
            if e[0] == "task"
            and (flow_id is None or e[1] == flow_id)
            and (pid is None or e[3] == str(pid))
        ]

    # -- the journal -------------------------------------------------------------------------

    async def entries(self, flow_ids: list[str]) -> dict[str, list[Entry]]:
        async with fc.SQLiteJournal(self.journal) as journal:
            return {fid: await journal.read(fid) for fid in flow_ids}

    async def wait_finished(self, flow_ids: list[str], within: float = 60) -> None:
        """Poll the journal until every flow reached a final state."""

        async def done() -> bool:
            if not self.journal.exists():
                return False
            got = await self.entries(flow_ids)
            return all(fc.journal.replay(f, e).state.finished for f, e in got.items())

        try:
            with anyio.fail_after(within):
                while not await done():  # noqa: ASYNC110 - another process's journal file
                    await anyio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(f"flows {flow_ids} did not finish within {within} s") from None

    # -- diagnostics -------------------------------------------------------------------------

    @contextlib.contextmanager
    def dump_on_failure(self) -> Iterator[None]:
        try:
            yield
        except BaseException as exc:
            for w in self.workers.values():
                exc.add_note(f"--- worker {w.name} (pid {w.pid}) stderr ---\n{w.stderr()[-6000:]}")
            tail = "\n".join(" ".join(e) for e in self.events()[-80:])
            exc.add_note(f"--- effects (tail) ---\n{tail}")
            raise


def successes(entries: list[Entry]) -> dict[str, int]:
    """Task name → token of its TASK_SUCCEEDED entry."""
    return {e.task: e.token for e in entries if e.kind is EventKind.TASK_SUCCEEDED and e.task}


def assert_one_owner_at_a_time(entries: list[Entry]) -> None:
    """In seq order a flow's tokens never go back: once a newer owner wrote, no entry of an
    older owner follows."""
    tokens = [e.token for e in sorted(entries, key=lambda e: e.seq)]
    assert tokens == sorted(tokens), tokens
