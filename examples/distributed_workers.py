"""Distributed workers on ZooKeeper + PostgreSQL: two `flowcoord worker` processes take
provisioning jobs from a ZooKeeper job board and journal to PostgreSQL. One is killed with
kill -9 half-way; the other takes its flows over and resumes them from the journal.

    python examples/distributed_workers.py                      # throw-away servers
    python examples/distributed_workers.py --zk HOSTS --pg DSN  # your own servers

Without --zk/--pg it starts a temporary ZooKeeper and PostgreSQL on loopback (Debian's
`zookeeper` and `postgresql` packages, which scripts/test.sh installs).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import structlog

import flowcoord as fc
from flowcoord.coordination import JobSpec, open_board, post_jobs

HERE = Path(__file__).resolve().parent
NAMESPACE = "/fleet-example"
HOSTS = [f"web-{i}" for i in range(6)]


@contextlib.contextmanager
def servers(zk: str | None, pg: str | None) -> Iterator[tuple[str, str]]:
    from flowcoord.testing import TemporaryPostgres, ZooKeeperServer

    with contextlib.ExitStack() as stack:
        if zk is None:
            zk = stack.enter_context(ZooKeeperServer()).hosts
        if pg is None:
            pg = stack.enter_context(TemporaryPostgres()).dsn
        yield zk, pg


def worker(name: str, zk: str, journal: str, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "flowcoord", "worker", "--zk", zk, "--namespace", NAMESPACE]
    cmd += ["--journal", journal, "--registry", "fleet:registry", "--name", name]
    cmd += ["--capacity", "3", "--session-timeout", "4"]
    env = {**os.environ, "FLEET_LOG": str(log), "PYTHONPATH": str(HERE)}
    return subprocess.Popen(cmd, cwd=HERE, env=env, stderr=subprocess.DEVNULL)


def wait_for(predicate: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.05)


async def board_empty(zk: str) -> bool:
    async with open_board(zk_hosts=zk, namespace=NAMESPACE) as board:
        return not await board.jobs()


async def summary(journal: str) -> list[tuple[str, str]]:
    backend = fc.PostgresJournal(journal.split("?")[0], schema="fleet")
    async with backend:
        return [(r.flow_id, r.state) for r in await backend.list_flows()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--zk", help="ZooKeeper hosts (default: start a temporary server)")
    parser.add_argument("--pg", help="PostgreSQL DSN (default: start a temporary server)")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    with servers(args.zk, args.pg) as (zk, pg), tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "fleet.log"
        log.touch()
        sep = "&" if "?" in pg else "?"
        journal = f"{pg}{sep}schema=fleet"
        w1, w2 = worker("worker-1", zk, journal, log), worker("worker-2", zk, journal, log)
        try:
            specs = [JobSpec("provision", {"host": h}, flow_id=f"provision-{h}") for h in HOSTS]
            anyio.run(lambda: post_jobs(specs, zk_hosts=zk, namespace=NAMESPACE))
            print(f"posted {len(specs)} jobs; two workers are taking them")
            wait_for(lambda: len(log.read_text().splitlines()) >= 4, "work to start")
            os.kill(w1.pid, signal.SIGKILL)
            w1.wait()
            print(f"worker-1 (pid {w1.pid}) killed with SIGKILL; worker-2 takes over its flows")
            wait_for(lambda: anyio.run(board_empty, zk), "the board to empty", timeout=90)
            states = anyio.run(summary, journal)
            for flow_id, state in states:
                print(f"  {flow_id:<18} {state}")
            done = [line.split() for line in log.read_text().splitlines()]
            pids = {p.split("=")[1] for *_, p in done}
            print(
                f"{len(done)} task runs by {len(pids)} processes; all flows succeeded: "
                f"{all(s == 'SUCCESS' for _, s in states)}"
            )
            return 0 if len(states) == len(HOSTS) and all(s == "SUCCESS" for _, s in states) else 1
        finally:
            for w in (w1, w2):
                if w.poll() is None:
                    w.terminate()
                    try:
                        w.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        w.kill()
                        w.wait()


if __name__ == "__main__":
    sys.exit(main())
