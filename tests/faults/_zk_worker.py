"""A conductor process for the ZooKeeper fail-over tests (and the fail-over benchmark).

usage: python -m tests.faults._zk_worker --zk HOSTS --namespace NS --journal FILE
       --effects FILE --name NAME [--capacity N] [--session-timeout S] [--max-claims N]

It runs :func:`flowcoord.coordination.run_worker` on a SQLite journal shared by every process.
Everything the tests check is appended, one line at a time (``O_APPEND``), to the effects
file, which therefore gives one order over all processes::

    ready <pid> <name>                   the conductor runs
    session <state> <pid>                every session transition (listener order: at once)
    task <flow_id> <task> <pid>          a task body started
    done <flow_id> <task> <pid>          a task body finished (its result is not journaled yet)
    lost <flow_id> <pid> <event>         OwnershipLost seen (job_lost / flow_abandoned)
    stopped <pid>                        graceful shutdown finished

Flows (inputs ``fid`` = the flow id, ``pause`` = seconds each task sleeps): ``stages`` is
STAGES linear stages of WIDTH parallel tasks; ``chain`` is CHAIN tasks one after the other.
Flows for the poison-job test (input ``fid``): ``poison`` is one task that SIGKILLs its own
worker; ``patient`` is one task that sleeps ``pause`` s, then finishes once its conductor runs no
other job (so beside a poison job it is still in flight when the worker dies).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import MutableMapping
from typing import Any

import anyio
import structlog

import flowcoord as fc
from flowcoord._coord._conductor import Conductor
from flowcoord.coordination import run_worker

STAGES, WIDTH, CHAIN = 4, 3, 6
_LOST_EVENTS = {"job_lost", "flow_abandoned"}
_conductors: list[Conductor] = []  # this process's conductor, once it runs


class Effects:
    def __init__(self, path: str) -> None:
        self.path = path
        self.pid = os.getpid()

    def write(self, *words: object) -> None:
        line = " ".join(str(w) for w in words) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def registry(effects: Effects) -> fc.FlowRegistry:
    def task(name: str) -> fc.Task:
        async def body(fid: str, pause: float) -> str:
            effects.write("task", fid, name, effects.pid)
            await anyio.sleep(pause)
            effects.write("done", fid, name, effects.pid)
            return name

        return fc.FunctionTask(body, name)

    def stages() -> fc.Flow:
        return fc.Linear(
            "stages",
            *(
                fc.Unordered(f"stage{s}", *(task(f"s{s}t{i}") for i in range(WIDTH)))
                for s in range(STAGES)
            ),
        )

    def chain() -> fc.Flow:
        return fc.Linear("chain", *(task(f"c{i}") for i in range(CHAIN)))

    async def kill_self(fid: str) -> None:
        effects.write("task", fid, "poison", effects.pid)
        os.kill(os.getpid(), signal.SIGKILL)

    async def when_alone(fid: str, pause: float) -> str:
        effects.write("task", fid, "patient", effects.pid)
        await anyio.sleep(pause)  # longer than a scan: the worker claims what it can meanwhile
        while len(_conductors[0].running) > 1:  # noqa: ASYNC110 - a test flow; the test bounds it
            await anyio.sleep(0.01)
        effects.write("done", fid, "patient", effects.pid)
        return fid

    reg = fc.FlowRegistry()
    reg.register("stages", stages)
    reg.register("chain", chain)
    reg.register("poison", lambda: fc.Linear("poison", fc.FunctionTask(kill_self, "poison")))
    reg.register("patient", lambda: fc.Linear("patient", fc.FunctionTask(when_alone, "patient")))
    return reg


def cli_registry() -> fc.FlowRegistry:
    """For ``flowcoord worker --registry tests.faults._zk_worker:cli_registry``; the effects
    file is named by ``$ZK_WORKER_EFFECTS``."""
    return registry(Effects(os.environ["ZK_WORKER_EFFECTS"]))


def configure_logging(effects: Effects) -> None:
    def record_lost(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if event.get("event") in _LOST_EVENTS:
            effects.write("lost", event.get("flow_id", "?"), effects.pid, event["event"])
        return event

    structlog.configure(
        processors=[
            record_lost,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S.%f"),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


async def main(args: argparse.Namespace) -> None:
    effects = Effects(args.effects)
    configure_logging(effects)

    def ready(conductor: Conductor) -> None:
        _conductors.append(conductor)
        conductor.board.session.add_listener(
            lambda change: effects.write("session", change.state.value, effects.pid)
        )
        effects.write("ready", effects.pid, args.name)

    await run_worker(
        zk_hosts=args.zk,
        namespace=args.namespace,
        journal=fc.SQLiteJournal(args.journal),
        registry=registry(effects),
        name=args.name,
        capacity=args.capacity,
        session_timeout=args.session_timeout,
        shutdown_timeout=5.0,
        max_claims=args.max_claims,
        on_ready=ready,
    )
    effects.write("stopped", effects.pid)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--zk", required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--journal", required=True)
    p.add_argument("--effects", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--capacity", type=int, default=10)
    p.add_argument("--session-timeout", type=float, default=2.0)
    p.add_argument("--max-claims", type=int, default=5)
    return p.parse_args(argv)


if __name__ == "__main__":
    anyio.run(main, parse(sys.argv[1:]))
