"""Time kazoo's ``LockingQueue`` or TaskFlow's ZooKeeper job board at queue sizes; a script.

``python benchmarks/_zk_board_peer.py --peer kazoo|taskflow --hosts 127.0.0.1:PORT
--sizes 1000,10000`` measures what ``bench_zookeeper``'s ``queue.*`` rows measure for
flowcoord, in the same shape: one fresh path per size, filled by one producer client
(``--post-threads`` posts in flight) with the size plus one round's jobs; then rounds of
``--jobs-per-round`` claims, the sizes alternated round by round, by ``--claimers`` threads,
each with its own ``KazooClient`` (its own session): each claims a job and consumes it. After
each round as many jobs as it claimed are posted again (untimed, through the first claimer),
so that every round starts at the same length: the peers' cost grows with the queue.

- kazoo: ``LockingQueue.put`` to post; ``get()`` (it lists the whole entries folder and the
  lock folder, then locks the first free entry) to claim; ``consume()``.
- TaskFlow: ``post`` on a board from ``taskflow.jobs.backends.fetch(..., {"board":
  "zookeeper"})``; to claim, the first ``--claimers`` unclaimed jobs of ``iterjobs
  (only_unclaimed=True)``, claimer ``i`` trying the ``i``-th first (as flowcoord's claimers
  do), ``claim``; ``consume``. Each board keeps every job in memory, refreshed by a children
  watch that lists the whole folder on every change.

Claim latency: from the scan to a won claim (lost races included). Every ``getChildren``
answer is measured (names and their 4-byte length prefixes, as ZooKeeper sends them) against
``jute.maxbuffer``. A size whose fill or claims fail is reported with its error, the others
go on; ``--fill-budget`` and ``--claim-budget`` (seconds, per size) bound the time spent, and
a size over budget reports the claims it made.

Output, one JSON object a line: ``{"event": "ready", ...}`` after the fills, one ``{"event":
"round", ...}`` per round, then the summary ``{"peer": ..., "version": ..., "sizes": {"1000":
{...}}}``; or ``{"error": ...}`` with exit status 3 when the peer cannot be imported. With
``--step`` it waits for a ``round`` line on stdin before each round (anything else, or EOF,
ends the rounds), so that a driver can alternate its own rounds with the peer's. It leaves its
paths on the server (use a throw-away server). Standalone on purpose: it imports nothing from
the harness or from flowcoord, and loads the peer with ``importlib``.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import logging
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def _emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


class OverBudget(Exception):
    """A size ran out of its time budget."""


class Listings:
    """The ``getChildren`` answers of the clients it watches: the largest, their count, their
    total (bytes of names and 4-byte length prefixes, plus the list's own)."""

    def __init__(self) -> None:
        self.largest = 0
        self.calls = 0
        self.total = 0
        self._lock = threading.Lock()

    def watch(self, client: Any) -> Any:
        children = client.get_children

        def recorded(*args: Any, **kwargs: Any) -> Any:
            got = children(*args, **kwargs)
            names = got[0] if kwargs.get("include_data") else got
            size = 4 + sum(4 + len(n.encode()) for n in names)
            with self._lock:
                self.largest = max(self.largest, size)
                self.calls += 1
                self.total += size
            return got

        client.get_children = recorded
        return client


class Peer:
    """One queue at one size: post jobs; claimers that claim and consume one job at a time."""

    def __init__(self, args: argparse.Namespace, path: str, listings: Listings) -> None:
        self.args = args
        self.path = path
        self.listings = listings
        self.clients: list[Any] = []
        self.load_seconds = 0.0

    def client(self) -> Any:
        kazoo = importlib.import_module("kazoo.client")
        c = self.listings.watch(kazoo.KazooClient(hosts=self.args.hosts, timeout=10.0))
        c.start(timeout=30)
        self.clients.append(c)
        return c

    def open_producer(self) -> None:
        raise NotImplementedError

    def post(self, i: int) -> None:
        raise NotImplementedError

    def close_producer(self) -> None:
        raise NotImplementedError

    def open_claimers(self, expected: int) -> None:
        raise NotImplementedError

    def claim(self, i: int) -> float | None:
        """Claim one job and consume it: the seconds from the scan to the won claim, or None
        when nothing was claimable."""
        raise NotImplementedError

    def settle(self, length: int, timeout: float) -> float:
        """Wait for work a round left behind (watches catching up with ``length`` jobs)."""
        return 0.0


class KazooPeer(Peer):
    def open_producer(self) -> None:
        queue = importlib.import_module("kazoo.recipe.queue")
        self.producer = queue.LockingQueue(self.client(), self.path)

    def post(self, i: int) -> None:
        self.producer.put(json.dumps({"i": i}).encode())

    def close_producer(self) -> None:
        self.producer.client.stop()
        self.producer.client.close()
        self.clients.remove(self.producer.client)

    def open_claimers(self, expected: int) -> None:
        queue = importlib.import_module("kazoo.recipe.queue")
        self.queues = [
            queue.LockingQueue(self.client(), self.path) for _ in range(self.args.claimers)
        ]
        self.producer = self.queues[0]

    def claim(self, i: int) -> float | None:
        q = self.queues[i]
        began = time.perf_counter()
        if q.get(timeout=self.args.get_timeout) is None:
            return None
        took = time.perf_counter() - began
        if not q.consume():
            raise RuntimeError("LockingQueue.consume() found its lock gone")
        return took


class TaskflowPeer(Peer):
    def board(self) -> Any:
        backends = importlib.import_module("taskflow.jobs.backends")
        conf = {"board": "zookeeper", "path": self.path, "check_compatible": False}
        board = backends.fetch(f"bench-{len(self.clients)}", conf, client=self.client())
        board.connect()
        return board

    def open_producer(self) -> None:
        self.producer = self.board()

    def post(self, i: int) -> None:
        self.producer.post(f"q-{i:07d}", details={"i": i})

    def close_producer(self) -> None:
        self.producer.close()
        client = self.clients.pop(0)
        client.stop()
        client.close()

    def open_claimers(self, expected: int) -> None:
        exc = importlib.import_module("taskflow.exceptions")
        self.claim_errors = (exc.UnclaimableJob, exc.NotFound)
        began = time.perf_counter()
        self.boards = [self.board() for _ in range(self.args.claimers)]
        deadline = began + self.args.fill_budget
        # each board lists the folder and reads every job once before it knows of them
        while min(b.job_count for b in self.boards) < expected:
            if time.perf_counter() > deadline:
                counts = [b.job_count for b in self.boards]
                raise OverBudget(f"claimer boards knew {counts} of {expected} jobs")
            time.sleep(0.05)
        self.load_seconds = time.perf_counter() - began
        self.producer = self.boards[0]

    def claim(self, i: int) -> float | None:
        board = self.boards[i]
        k = len(self.boards)
        began = time.perf_counter()
        while True:
            jobs = list(itertools.islice(board.iterjobs(only_unclaimed=True), k))
            if not jobs:
                return None
            for job in jobs[i % len(jobs) :] + jobs[: i % len(jobs)]:
                try:
                    board.claim(job, f"c{i}")
                except self.claim_errors:
                    continue
                took = time.perf_counter() - began
                board.consume(job, f"c{i}")
                return took

    def settle(self, length: int, timeout: float) -> float:
        # every board re-lists the folder after each change and reconciles its jobs with it:
        # wait until each knows the round's consumes and posts, so that this work does not
        # spill into the next round (of another system, when a driver alternates them)
        began = time.perf_counter()
        while any(b.job_count != length for b in self.boards):
            if time.perf_counter() - began > timeout:
                break
            time.sleep(0.02)
        return time.perf_counter() - began


PEERS: dict[str, type[Peer]] = {"kazoo": KazooPeer, "taskflow": TaskflowPeer}


class Size:
    """One queue size: its peer, its figures, its error if it failed."""

    def __init__(self, args: argparse.Namespace, n: int) -> None:
        self.n = n
        self.total = n + args.jobs_per_round  # the length each round starts at
        self.posted = 0
        self.listings = Listings()
        path = f"/zkpeer-{args.peer}-{os.getpid()}-{time.monotonic_ns()}-{n}"
        self.peer = PEERS[args.peer](args, path + ("/jobs" if args.peer == "taskflow" else ""),
                                     self.listings)  # fmt: skip
        self.error = ""
        self.post_seconds = 0.0
        self.latencies: list[float] = []
        self.top_up_seconds = 0.0
        self.round_rates: list[float] = []
        self.claim_seconds = 0.0
        self.settle_seconds = 0.0
        self.budget_hit = False

    def post(self, args: argparse.Namespace, count: int) -> float:
        """Post ``count`` more jobs, ``--post-threads`` in flight; the seconds it took."""
        deadline = time.perf_counter() + args.fill_budget
        done = itertools.count()

        def post(i: int) -> None:
            if time.perf_counter() > deadline:
                raise OverBudget(
                    f"posting over its budget of {args.fill_budget:g} s after "
                    f"{next(done)} of {count} posts"
                )
            self.peer.post(i)
            next(done)

        began = time.perf_counter()
        with ThreadPoolExecutor(args.post_threads) as pool:
            for _ in pool.map(post, range(self.posted, self.posted + count)):
                pass
        self.posted += count
        return time.perf_counter() - began

    def fill(self, args: argparse.Namespace) -> None:
        try:
            self.peer.open_producer()
            self.post_seconds = self.post(args, self.total)
            self.peer.close_producer()
            self.peer.open_claimers(self.total)
        except Exception as exc:
            self.fail(exc)

    def fail(self, exc: BaseException) -> None:
        self.error = f"{type(exc).__name__}: {exc}"[:500]
        logging.warning("size %d: %s", self.n, self.error)

    def round(self, args: argparse.Namespace) -> dict[str, Any]:
        if self.error:
            return {"error": self.error}
        # the budget is spread over the rounds, so that every round has its share
        deadline = time.perf_counter() + args.claim_budget / args.rounds
        try:
            got, seconds, stopped = _claim_round(self.peer, args, deadline)
            self.top_up_seconds += self.post(args, len(got))
            self.settle_seconds += self.peer.settle(self.total, args.claim_budget)
        except Exception as exc:
            self.fail(exc)
            return {"error": self.error}
        self.claim_seconds += seconds
        self.budget_hit |= stopped
        self.latencies += got
        if got:
            self.round_rates.append(len(got) / seconds)
        return {"claims": len(got), "seconds": seconds, "budget_hit": stopped}

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "posted": self.total,
            "post_seconds": self.post_seconds,
            "topped_up": self.posted - self.total,
            "top_up_seconds": self.top_up_seconds,
            "post_per_s": self.total / self.post_seconds if self.post_seconds else None,
            "load_seconds": self.peer.load_seconds,
            "claims": len(self.latencies),
            "claim_seconds": self.claim_seconds,
            "settle_seconds": self.settle_seconds,
            "latencies_ms": [x * 1000 for x in self.latencies],
            "round_rates": self.round_rates,
            "claims_per_s": statistics.median(self.round_rates) if self.round_rates else None,
            "budget_hit": self.budget_hit,
            "max_listing_bytes": self.listings.largest,
            "listings": self.listings.calls,
            "listed_bytes": self.listings.total,
        }
        if self.error:
            out["error"] = self.error
        return out


def _claim_round(
    peer: Peer, args: argparse.Namespace, deadline: float
) -> tuple[list[float], float, bool]:
    """``--jobs-per-round`` claims (each consumed) by the claimers together, until the
    deadline: the latencies, the seconds it took, whether the deadline stopped it."""
    left = [args.jobs_per_round]
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    stopped = [False]

    def claimer(i: int) -> None:
        try:
            while True:
                with lock:
                    if left[0] <= 0 or errors:
                        return
                    if time.perf_counter() > deadline:
                        stopped[0] = True
                        return
                    left[0] -= 1
                took = peer.claim(i)
                if took is None:
                    return
                with lock:
                    latencies.append(took)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(args.claimers)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - began
    if errors:
        raise errors[0]
    return latencies, seconds, stopped[0]


def _rounds(args: argparse.Namespace) -> Callable[[], bool]:
    """Whether to run one more round: ``--rounds`` of them, or (``--step``) when stdin says."""
    done = [0]

    def more() -> bool:
        if args.step:
            return sys.stdin.readline().strip() == "round"
        done[0] += 1
        return done[0] <= int(args.rounds)

    return more


def _sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--peer", choices=sorted(PEERS), required=True)
    p.add_argument("--hosts", required=True, help="ZooKeeper hosts, e.g. 127.0.0.1:2181")
    p.add_argument("--sizes", type=_sizes, default=[1000, 10000])
    p.add_argument("--claimers", type=int, default=4)
    p.add_argument("--jobs-per-round", type=int, default=250)
    p.add_argument("--rounds", type=int, default=8, help="spreads --claim-budget")
    p.add_argument("--post-threads", type=int, default=64, help="posts in flight")
    p.add_argument("--fill-budget", type=float, default=600, help="seconds per size")
    p.add_argument("--claim-budget", type=float, default=120, help="seconds per size, all rounds")
    p.add_argument("--get-timeout", type=float, default=30, help="LockingQueue.get")
    p.add_argument("--step", action="store_true", help="a stdin line 'round' per round")
    args = p.parse_args()
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        from importlib.metadata import version

        importlib.import_module("kazoo.recipe.queue")
        if args.peer == "taskflow":
            importlib.import_module("taskflow.jobs.backends.impl_zookeeper")
    except ImportError as exc:
        _emit({"error": f"{type(exc).__name__}: {exc}"})
        return 3

    sizes = [Size(args, n) for n in args.sizes]
    for size in sizes:
        size.fill(args)
    _emit({"event": "ready", "errors": {str(s.n): s.error for s in sizes if s.error}})
    more = _rounds(args)
    r = 0
    while more():
        order = sizes if r % 2 == 0 else sizes[::-1]
        _emit({"event": "round", "round": r, "sizes": {str(s.n): s.round(args) for s in order}})
        r += 1
    _emit(
        {
            "peer": args.peer,
            "version": version("taskflow" if args.peer == "taskflow" else "kazoo"),
            "kazoo": version("kazoo"),
            "python": sys.version.split()[0],
            "claimers": args.claimers,
            "jobs_per_round": args.jobs_per_round,
            "post_threads": args.post_threads,
            "claim_budget": args.claim_budget,
            "sizes": {str(s.n): s.summary() for s in sizes},
        }
    )
    # No clean close: closing a TaskFlow board whose watch is still reading thousands of jobs
    # takes minutes (each pending read fails and logs); the server is a throw-away one.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
