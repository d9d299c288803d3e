import anyio

import flowcoord as fc


@fc.task(provides="vm_id")
async def allocate(size: int) -> str:
    print(f"allocating a VM of size {size}")
    return f"vm-{size}"


@fc.task(provides="ip")
async def boot(vm_id: str) -> str:  # requires "vm_id": runs after allocate
    print(f"booting {vm_id}")
    return "10.0.0.7"


flow = fc.Linear("provision", allocate, boot)


async def main() -> None:
    async with fc.Engine(fc.SQLiteJournal("journal.sqlite")) as engine:
        outcome = await engine.run(flow, {"size": 2})
    print(outcome.state, outcome["vm_id"], outcome["ip"])


if __name__ == "__main__":
    anyio.run(main)
