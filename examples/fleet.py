"""The flow registry the distributed workers example runs (``fleet:registry``)."""

from __future__ import annotations

import os

import anyio

import flowcoord as fc

registry = fc.FlowRegistry()


def _note(line: str) -> None:
    path = os.environ.get("FLEET_LOG")
    if path:
        with open(path, "a") as f:
            f.write(f"{line} pid={os.getpid()}\n")


@fc.task(provides="vm_id")
async def allocate(host: str) -> str:
    _note(f"{host} allocate")
    await anyio.sleep(0.3)
    return f"vm-{host}"


@fc.task(provides="ip")
async def boot(host: str, vm_id: str) -> str:
    _note(f"{host} boot")
    await anyio.sleep(0.3)
    return "10.0.0." + str(sum(map(ord, host)) % 250 + 2)


@fc.task(provides="record")
async def publish(host: str, ip: str) -> str:
    _note(f"{host} publish")
    await anyio.sleep(0.3)
    return f"{host}.example.internal A {ip}"


@registry.register("provision")
def build_provision() -> fc.Flow:
    return fc.Linear("provision", allocate, boot, publish)
