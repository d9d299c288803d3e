"""The flows the workers run: `flowcoord worker --registry myflows:registry`."""

import anyio

import flowcoord as fc

registry = fc.FlowRegistry()


@fc.task(provides="vm_id")
async def allocate(host: str) -> str:
    await anyio.sleep(0.5)
    return f"vm-{host}"


@allocate.on_revert
async def release(result: object) -> None:
    pass  # release the VM if `result` is one (idempotent)


@fc.task(provides="ip")
async def boot(host: str, vm_id: str) -> str:
    await anyio.sleep(0.5)
    return "10.0.0.7"


@registry.register("provision")
def build_provision() -> fc.Flow:
    return fc.Linear("provision", allocate, boot)
