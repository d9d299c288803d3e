"""A workflow that waits for people: an approval by event, and a durable grace period.

    python examples/approval.py JOURNAL            # approved: the VM is published
    python examples/approval.py JOURNAL --reject   # rejected: the VM is freed again

A `provision` workflow allocates a VM, then waits for an "approval" event. The event comes
from another process, as it would from a person or a service: this script runs
`flowcoord flows send-event FLOW approval --value '"approve"'` against the same SQLite
journal while the workflow waits. Approved, the workflow sleeps a (short, durable) grace
period and publishes the VM; rejected, it raises, and the allocation is compensated.

The wait and the sleep are journaled: a crash while waiting loses nothing (the event stays
in the flow's mailbox, and the run resumed elsewhere takes it), and a crash during the
sleep resumes with only what is left of it.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import anyio
import structlog

import flowcoord as fc


async def allocate(size: int) -> str:
    print(f"allocated vm-{size}")
    return f"vm-{size}"


async def free(size: int, result: str | None) -> None:
    print(f"freed {result}")


async def publish(vm: str) -> str:
    print(f"published {vm}")
    return f"{vm}.example.net"


@fc.workflow(name="provision")
async def provision(ctx: fc.Context, size: int) -> str:
    vm = await ctx.step(allocate, size, revert=free)
    decision = await ctx.wait_event("approval", timeout=60)
    if decision != "approve":
        raise PermissionError(f"not approved: {decision}")
    await ctx.sleep(0.2)  # a grace period (durable: journaled when it starts)
    return await ctx.step(publish, vm)


def send(journal: str, flow_id: str, value: str) -> None:
    """What an approver's tool would run, in a process of its own."""
    subprocess.run(
        [sys.executable, "-m", "flowcoord", "flows", "send-event", flow_id, "approval",
         "--value", f'"{value}"', "--key", f"{flow_id}-decision", "--journal", journal],
        check=True,
    )  # fmt: skip


async def main(journal: str, decision: str) -> int:
    async with fc.Engine(fc.SQLiteJournal(journal)) as engine:
        handle = await engine.start(provision, {"size": 2}, flow_id="vm-request-1")
        print("waiting for approval ...")
        await anyio.to_thread.run_sync(send, journal, "vm-request-1", decision)
        try:
            outcome = await handle.wait()
        except PermissionError as exc:  # the workflow's own error, once it was compensated
            state = (await engine.status("vm-request-1")).state.value
            print(f"provisioning failed: {exc} (flow {state})")
            return 1
        print(f"provisioned: {outcome.result}")
        return 0


if __name__ == "__main__":
    logging.disable(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    args = sys.argv[1:]
    if not args:
        sys.exit("usage: approval.py JOURNAL [--reject]")
    sys.exit(anyio.run(main, args[0], "reject" if "--reject" in args else "approve"))
