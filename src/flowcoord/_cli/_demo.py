"""``flowcoord demo``: provision a VM on embedded defaults — success, rollback, crash + resume."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import structlog

import flowcoord as fc

__all__ = ["build_provision", "main"]

SLOW = float(os.environ.get("FLOWCOORD_DEMO_SLOW", "0.15"))


def _say(text: str) -> None:
    print(text, flush=True)


@fc.task(provides="vm_id")
async def allocate(size: int) -> str:
    """Reserve a VM of ``size`` vCPUs."""
    await anyio.sleep(SLOW)
    return f"vm-{size}cpu-{os.getpid() % 1000:03d}"


@allocate.on_revert
async def _release(size: int, result: Any) -> None:
    if isinstance(result, str):
        _say(f"      ↩ released {result}")


@fc.task(provides="ip")
async def start_vm(vm_id: str) -> str:
    await anyio.sleep(SLOW)
    return "10.0.0." + str(sum(map(ord, vm_id)) % 250 + 2)


@start_vm.on_revert
async def _stop(vm_id: str) -> None:
    _say(f"      ↩ stopped {vm_id}")


@fc.task(provides="volume")
async def attach_disk(vm_id: str, disk_gb: int = 20) -> str:
    await anyio.sleep(SLOW)
    return f"vol-{disk_gb}g@{vm_id}"


@attach_disk.on_revert
async def _detach(result: Any) -> None:
    if isinstance(result, str):
        _say(f"      ↩ detached {result}")


@fc.task(provides="address")
async def publish_address(ip: str, hostname: str, dns_broken: bool = False) -> str:
    await anyio.sleep(SLOW)
    if dns_broken:
        raise ConnectionError(f"DNS server refused the record for {hostname}")
    return f"{hostname} → {ip}"


def build_provision() -> fc.Flow:
    """allocate → (start ∥ attach disk) → publish address."""
    return fc.Linear(
        "provision",
        allocate,
        fc.Unordered("boot", start_vm, attach_disk),
        publish_address,
    )


def _listener(change: fc.StateChange) -> None:
    if change.task is None:
        _say(f"  flow {change.flow_id[:8]}: {change.old} → {change.new}")
    elif change.new in ("RUNNING", "SUCCESS", "FAILURE", "REVERTED", "REVERT_FAILURE"):
        mark = {"RUNNING": "…", "SUCCESS": "✓", "FAILURE": "✗"}.get(change.new, "↩")
        _say(f"    {mark} {change.task:<16} {change.new}")


async def _scenarios(journal_path: Path) -> None:
    async with fc.Engine(fc.SQLiteJournal(journal_path), listeners=[_listener]) as engine:
        _say("\n1. Provision a VM (allocate → start ∥ attach disk → publish):")
        out = await engine.run(build_provision(), {"size": 2, "hostname": "web-1"})
        _say(f"  result: {out['address']}  (volume {out['volume']})")

        _say("\n2. Provision with DNS down: publish fails, everything done is reverted:")
        try:
            await engine.run(
                build_provision(), {"size": 4, "hostname": "web-2", "dns_broken": True}
            )
        except ConnectionError as exc:
            _say(f"  raised to the caller: {type(exc).__name__}: {exc}")


async def _resume(journal_path: Path, flow_id: str) -> None:
    async with fc.Engine(fc.SQLiteJournal(journal_path)) as engine:
        rep = await engine.status(flow_id)
        for name in ("allocate", "start_vm", "attach_disk", "publish_address"):
            rec = rep.tasks.get(name)
            _say(f"    {name:<16} {rec.state if rec else 'not started'}")
    _say("  a new engine resumes it: done tasks are skipped, in-flight ones re-run:")
    async with fc.Engine(fc.SQLiteJournal(journal_path), listeners=[_listener]) as engine:
        out = await engine.run(build_provision(), flow_id=flow_id)
        _say(f"  result: {out['address']}")
    _say(f"\nJournal file: {journal_path} (pass a path to 'flowcoord demo' to keep it)")


def _crash(journal_path: Path, flow_id: str) -> None:
    _say("\n3. Crash and resume: a worker process is killed (kill -9) mid-flow …")
    child = subprocess.Popen(
        [sys.executable, "-m", "flowcoord._cli._demo", "--child", str(journal_path), flow_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert child.stdout is not None
    deadline = time.monotonic() + 30
    for line in child.stdout:
        _say("   [worker] " + line.rstrip())
        if ("allocate" in line and "SUCCESS" in line) or time.monotonic() > deadline:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.communicate()
    _say(f"  worker killed (exit {child.returncode}); the journal on disk says:")


async def _child(journal_path: str, flow_id: str) -> None:
    async with fc.Engine(fc.SQLiteJournal(journal_path), listeners=[_listener]) as engine:
        await engine.run(
            build_provision(), {"size": 8, "hostname": "db-1", "disk_gb": 100}, flow_id=flow_id
        )


def _quiet_logs() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="flowcoord demo", description=(__doc__ or "").strip().split(": ", 1)[-1]
    )
    p.add_argument(
        "journal_path",
        nargs="?",
        metavar="JOURNAL_PATH",
        help="the SQLite journal to write (default: a temporary file, removed at the end)",
    )
    p.add_argument("--child", nargs=2, metavar=("PATH", "FLOW_ID"), help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the demo; ``argv`` as ``flowcoord demo`` takes it (bad usage exits with 2)."""
    parser = _parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.journal_path and not args.child:
        where = Path(args.journal_path)
        if where.exists():
            parser.error(f"{where} exists: the demo writes a new journal (name another file)")
        if not where.absolute().parent.is_dir():
            parser.error(f"directory {str(where.absolute().parent)!r} does not exist")
    _quiet_logs()
    if args.child:
        anyio.run(_child, *args.child)
        return 0
    with tempfile.TemporaryDirectory(prefix="flowcoord-demo-") as tmp:
        path = Path(args.journal_path) if args.journal_path else Path(tmp) / "journal.sqlite"
        anyio.run(_scenarios, path)
        _crash(path, "demo-crash")
        anyio.run(_resume, path, "demo-crash")
    return 0


if __name__ == "__main__":
    sys.exit(main())
