from typing import Any

import anyio

import flowcoord as fc

VMS: set[str] = set()  # stands for the cloud's inventory


@fc.task(provides="vm_id")
async def allocate(size: int) -> str:
    vm_id = f"vm-{size}"
    VMS.add(vm_id)
    return vm_id


@allocate.on_revert
async def release(size: int, result: Any) -> None:
    # result: what allocate returned, or a fc.Failure if allocate itself failed
    if isinstance(result, str):
        VMS.discard(result)  # idempotent: releasing twice is harmless
    print(f"released {result}")


@fc.task(provides="ip")
async def boot(vm_id: str, fail: bool = False) -> str:
    if fail:
        raise RuntimeError(f"{vm_id} did not boot")
    return "10.0.0.7"


flow = fc.Linear("provision", allocate, boot)


async def main() -> None:
    async with fc.Engine(fc.SQLiteJournal("journal.sqlite")) as engine:
        try:
            await engine.run(flow, {"size": 2, "fail": True}, flow_id="doomed-1")
        except RuntimeError as exc:  # the original exception, after the reverts
            print(f"failed: {exc}; VMs left: {VMS}")
        status = await engine.status("doomed-1")
        print(status.state, {name: t.state.value for name, t in status.tasks.items()})


if __name__ == "__main__":
    anyio.run(main)
