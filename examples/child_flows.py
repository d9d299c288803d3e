"""Child flows: a workflow that runs another workflow and a pattern flow as steps.

An order reserves stock, provisions a machine with a child workflow (which attaches a disk
with its own compensation) and publishes its address with a child pattern flow. If billing
fails afterwards, the parent compensates newest first: the published address and the
machine — both children, already finished — are undone in their own journals (they end
CANCELLED), then the stock reservation.

    python examples/child_flows.py journal.sqlite            # billing fails: all undone
    python examples/child_flows.py journal.sqlite --bill-ok  # the order goes through

Each child has its own journal under a deterministic id (``<order>.<position>:<name>``):
``flowcoord flows list --journal journal.sqlite`` shows the family, ``flowcoord flows show``
a child's steps and its parent.
"""

from __future__ import annotations

import sys
from typing import Any

import anyio

import flowcoord as fc


async def reserve(sku: str) -> str:
    print(f"reserved {sku}")
    return f"R-{sku}"


async def release(sku: str) -> None:
    print(f"released {sku}")


async def boot(size: int) -> str:
    print(f"booted a machine of size {size}")
    return f"vm-{size}"


async def halt(size: int, result: str | None) -> None:
    print(f"halted {result or 'the machine'}")


async def attach(vm: str) -> str:
    print(f"attached a disk to {vm}")
    return f"disk-of-{vm}"


async def detach(vm: str) -> None:
    print(f"detached the disk of {vm}")


@fc.workflow
async def provision(ctx: fc.Context, size: int) -> dict[str, str]:
    vm = await ctx.step(boot, size, revert=halt)
    disk = await ctx.step(attach, vm, revert=detach)
    return {"vm": vm, "disk": disk}


async def unpublish(vm: str) -> None:
    print(f"unpublished {vm}.example.net")


@fc.task(provides="address", revert=unpublish)
async def publish_address(vm: str) -> str:
    print(f"published {vm}.example.net")
    return f"{vm}.example.net"


publish = fc.Linear("publish", publish_address)

BILL_OK = {"value": False}


async def bill(amount: int) -> str:
    if not BILL_OK["value"]:
        raise RuntimeError("card declined")
    return f"invoice for {amount}"


@fc.workflow
async def order(ctx: fc.Context, sku: str, size: int) -> dict[str, Any]:
    reservation = await ctx.step(reserve, sku, revert=release)
    machine = await ctx.run(provision, {"size": size})  # a child workflow
    dns = await ctx.run(publish, {"vm": machine["vm"]})  # a child pattern flow
    invoice = await ctx.step(bill, 10 * size)
    return {"reservation": reservation, **machine, **dns, "invoice": invoice}


async def main(path: str) -> int:
    async with fc.Engine(fc.SQLiteJournal(path)) as engine:
        try:
            out = await engine.run(order, {"sku": "gpu-node", "size": 4}, flow_id="order-1")
        except fc.errors.StepFailed as exc:
            print(f"order failed: {exc.failure.message}")
            code = 1
        else:
            print(f"order done: {out.result}")
            code = 0
        for fid in ("order-1", "order-1.2:provision", "order-1.3:publish"):
            rec = await engine.backend.get_flow(fid)
            print(f"{fid}: {rec.state if rec else 'not journaled'}")
    return code


if __name__ == "__main__":
    BILL_OK["value"] = "--bill-ok" in sys.argv
    sys.exit(anyio.run(main, sys.argv[1]))
