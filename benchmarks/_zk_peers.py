"""The peers of ``bench_zookeeper``'s ``queue.*`` rows: kazoo's LockingQueue and TaskFlow's
ZooKeeper job board, each run by ``_zk_board_peer.py`` in an interpreter of its own and
driven a round at a time, and the rows comparing them with flowcoord (see
:mod:`benchmarks.bench_zookeeper`)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.abc
import anyio.to_thread
from anyio.streams.buffered import BufferedByteReceiveStream

from ._harness import Context, Result

HERE = Path(__file__).resolve().parent
JUTE_MAXBUFFER = 1024 * 1024  # ZooKeeper's default bound on one response
#: The peers of the ``queue.*`` rows (``_zk_board_peer.py --peer NAME``).
PEERS = {"kazoo": "kazoo LockingQueue", "taskflow": "TaskFlow ZooKeeper job board"}


# -- peers: kazoo's LockingQueue and TaskFlow's ZooKeeper job board --------------------------


class _Peer:
    """``_zk_board_peer.py`` in an interpreter of its own, driven a round at a time
    (``--step``) so that its claim rounds alternate with flowcoord's. ``error`` says why it
    measured nothing (not installed, crashed, timed out); ``summary`` is its last answer."""

    def __init__(
        self, name: str, python: str, sizes: list[int], argv: list[str], budget: float
    ) -> None:
        self.name, self.python, self.sizes, self.budget = name, python, sizes, budget
        self.argv = ["--peer", name, "--sizes", ",".join(map(str, sizes)), *argv]
        self.error = ""
        self.summary: dict[str, Any] = {}
        self._proc: anyio.abc.Process | None = None
        self._out: BufferedByteReceiveStream | None = None
        self._err: IO[bytes] | None = None  # its stderr

    async def start(self, within: float) -> str:
        """Start it; it fills its queues and opens its claimers before it answers. What
        failed, for the progress line."""
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 - closed by aclose()
        try:
            self._proc = await anyio.open_process(
                [self.python, str(HERE / "_zk_board_peer.py"), "--step", *self.argv],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._err,
            )
        except OSError as exc:
            self.error = f"cannot start {self.python}: {exc}"
            return self.error
        assert self._proc.stdout is not None
        self._out = BufferedByteReceiveStream(self._proc.stdout)
        got = await self._answer(within)
        if got is not None and "error" in got:
            self.error = (
                f"peer not installed in {self.python} ({got['error']}); "
                "pip install kazoo taskflow there, or -o zk_peer_python=/path/to/python"
            )
            await self.aclose()
        return "; ".join(
            f"failed at {_label(int(n))}: {why}" for n, why in (got or {}).get("errors", {}).items()
        )

    async def round(self, within: float) -> str:
        """One round at each size; what it did, for the progress line."""
        got = await self._say(b"round\n", within)
        if got is None:
            return self.error
        done = got.get("sizes", {}).items()
        return ", ".join(
            f"{_label(int(n))} {d.get('claims', d.get('error', '-'))}" for n, d in done
        )

    async def finish(self, within: float) -> None:
        got = await self._say(b"done\n", within)
        if got is not None:
            self.summary = got
        await self.aclose()

    async def _say(self, line: bytes, within: float) -> dict[str, Any] | None:
        if self.error or self._proc is None or self._proc.stdin is None:
            return None
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self._proc.stdin.send(line)  # if it died, _answer says how
        return await self._answer(within)

    async def _answer(self, within: float) -> dict[str, Any] | None:
        assert self._out is not None
        try:
            with anyio.fail_after(within):
                raw = await self._out.receive_until(b"\n", 1 << 26)
            got: dict[str, Any] = json.loads(raw)
            return got
        except TimeoutError:
            self.error = f"no answer within {within:.0f} s"
        except (anyio.IncompleteRead, anyio.EndOfStream, anyio.ClosedResourceError):
            self.error = f"exited {await self._exit_status()}: {self._stderr_tail()}"
        except ValueError as exc:
            self.error = f"unreadable answer: {exc}"
        await self.aclose()
        return None

    async def _exit_status(self) -> int | None:
        if self._proc is None:
            return None
        with anyio.move_on_after(10):
            await self._proc.wait()
        return self._proc.returncode

    def _stderr_tail(self) -> str:
        if self._err is None:
            return ""
        self._err.seek(max(0, self._err.seek(0, os.SEEK_END) - 65536))
        lines = self._err.read().decode(errors="replace").strip().splitlines()
        return " | ".join(lines[-3:])[-600:]

    async def aclose(self) -> None:
        if self._proc is not None:
            if self._proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    self._proc.kill()
            with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                await self._proc.aclose()
            self._proc = None
        if self._err is not None:
            self._err.close()


def _peer_results(
    peer: _Peer, fc_post: dict[int, float], fc_claims: dict[int, float]
) -> list[Result]:
    """The peer's figures at each size, and flowcoord's beside them (ratio = flowcoord ÷
    peer): a ratio row is there even when the peer measured nothing, saying why."""
    p, label = peer.name, PEERS[peer.name]
    got: dict[str, Any] = peer.summary.get("sizes", {})
    version = peer.summary.get("version", "?")
    out: list[Result] = []
    listings: dict[str, int] = {}
    for n in peer.sizes:
        s = got.get(str(n), {})
        why = peer.error or s.get("error", "") or ("" if s else "no figures")
        if s.get("post_per_s"):
            out.append(
                Result(
                    f"queue.peer_{p}_post_{_label(n)}",
                    s["post_per_s"],
                    "jobs/s",
                    stat=f"{s['posted']} posts, {peer.summary['post_threads']} threads, one client",
                )
            )
        ms: list[float] = s.get("latencies_ms", [])
        budget = (
            f"; its claim budget ({peer.budget:g} s a size) cut the rounds short"
            if s.get("budget_hit")
            else ""
        )
        if ms:
            for q in (50, 99):
                out.append(
                    Result(
                        f"queue.peer_{p}_claim_{_label(n)}.p{q}",
                        _percentile(ms, q),
                        "ms",
                        stat=f"p{q} of {len(ms)} claims, 4 claimers, {_label(n)} queued",
                    )
                )
            out.append(
                Result(
                    f"queue.peer_{p}_claims_per_s_{_label(n)}",
                    s["claims_per_s"],
                    "claims/s",
                    stat=f"median of {len(s['round_rates'])} rounds, {len(ms)} claims + "
                    "consumes, 4 claimers",
                    samples=tuple(s["round_rates"]),
                    note=f"{label} {version}{budget}" if budget else "",
                    extra={k: s.get(k) for k in ("load_seconds", "settle_seconds", "listings")},
                )
            )
        if s.get("max_listing_bytes") and not why:  # a failed fill is not at its size
            listings[str(n)] = s["max_listing_bytes"]
        out.append(
            Result(
                f"queue.vs_{p}_claims_{_label(n)}",
                fc_claims[n],
                "claims/s",
                baseline=s.get("claims_per_s") if ms else None,
                baseline_name=label if ms else f"{label}: NOT MEASURED",
                stat="flowcoord ÷ peer, median rounds, same run, rounds alternated",
                note=f"{label} not measured at {_label(n)}: {why}" if why else "",
            )
        )
        out.append(
            Result(
                f"queue.vs_{p}_post_{_label(n)}",
                fc_post[n],
                "jobs/s",
                baseline=s.get("post_per_s"),
                baseline_name=label if s.get("post_per_s") else f"{label}: NOT MEASURED",
                stat="flowcoord (64 in flight) ÷ peer (64 threads)",
            )
        )
    if listings:
        largest = max(listings.values())
        at = max(listings, key=lambda k: listings[k])
        reach = int(int(at) * JUTE_MAXBUFFER / largest)
        out.append(
            Result(
                f"queue.peer_{p}_max_listing_bytes",
                largest,
                "bytes",
                baseline=JUTE_MAXBUFFER,
                baseline_name="jute.maxbuffer",
                stat="largest getChildren answer its claimers got",
                note=f"{label} lists the whole queue: {largest:,} B at {_label(int(at))} "
                f"queued, so about {reach:,} queued jobs reach 1 MiB",
                extra={"by_size": listings, "jobs_at_maxbuffer": reach},
            )
        )
    return out


def _peer_names(ctx: Context) -> list[str]:
    """The peers ``-o zk_peers`` names (default: all; ``none``: none) that ``--only`` wants."""
    text = ctx.option("zk_peers", ",".join(PEERS)) or ""
    names = [x.strip() for x in text.split(",") if x.strip() and x.strip() != "none"]
    unknown = sorted(set(names) - set(PEERS))
    if unknown:
        raise ValueError(f"-o zk_peers: unknown peer(s) {unknown}; known: {', '.join(PEERS)}")
    return [n for n in names if _asks(ctx, f"queue.peer_{n}") or _asks(ctx, f"queue.vs_{n}")]


def _asks(ctx: Context, name: str) -> bool:
    """Whether ``--only`` wants a row called ``name`` or one beneath it."""
    return ctx.selected(name) or any(p.startswith(f"{ctx.module}.{name}") for p in ctx.only)


def _label(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]
