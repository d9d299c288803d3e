"""A worker process serving limited queues, for the global-limit tests.

usage: python -m tests.faults._zk_queue_worker --zk HOSTS --namespace NS --journal FILE
       --effects FILE --name NAME --queue Q [--queue-limit Q=N] [--worker-limit Q=N]
       [--capacity N] [--session-timeout S]

It runs :func:`flowcoord.coordination.run_worker` with those queue options (parsed by the
``flowcoord worker`` parser) on a SQLite journal shared by every process. The one flow,
``call`` (inputs ``fid``, ``pause``), is one task that appends to the effects file, one line
at a time (``O_APPEND``)::

    ready <pid> <name>                 the conductor runs
    start <fid> <pid> <epoch s>        the task body started
    end <fid> <pid> <epoch s>          the task body finished
"""

from __future__ import annotations

import sys
import time

import anyio

import flowcoord as fc
from flowcoord._cli._worker import queue_settings, worker_parser
from flowcoord._coord._conductor import Conductor
from flowcoord.coordination import run_worker

from ._zk_worker import Effects, configure_logging


def registry(effects: Effects) -> fc.FlowRegistry:
    async def call(fid: str, pause: float) -> str:
        effects.write("start", fid, effects.pid, f"{time.time():.6f}")
        await anyio.sleep(pause)
        effects.write("end", fid, effects.pid, f"{time.time():.6f}")
        return fid

    reg = fc.FlowRegistry()
    reg.register("call", lambda: fc.Linear("call", fc.FunctionTask(call, "call")))
    return reg


async def main(argv: list[str]) -> None:
    parser = worker_parser("_zk_queue_worker")
    parser.add_argument("--effects", required=True)
    opts = parser.parse_args(["--registry", "unused:unused", *argv])
    effects = Effects(opts.effects)
    configure_logging(effects)

    def ready(conductor: Conductor) -> None:
        effects.write("ready", effects.pid, opts.name)

    await run_worker(
        zk_hosts=opts.zk,
        namespace=opts.namespace,
        journal=fc.SQLiteJournal(opts.journal),
        registry=registry(effects),
        name=opts.name,
        capacity=opts.capacity,
        session_timeout=opts.session_timeout,
        shutdown_timeout=5.0,
        on_ready=ready,
        **queue_settings(opts),
    )


if __name__ == "__main__":
    anyio.run(main, sys.argv[1:])
