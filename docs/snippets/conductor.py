"""A conductor in your own process, on the in-memory twin of the job board."""

import anyio
from myflows import registry

import flowcoord as fc
from flowcoord.coordination import Conductor, MemoryCoordinator


async def main() -> None:
    coordinator = MemoryCoordinator()
    producer = coordinator.board()  # a board on its own session
    for host in ("web-1", "web-2"):
        await producer.post("provision", {"host": host}, flow_id=f"provision-{host}")

    async with (
        fc.Engine() as engine,
        Conductor(coordinator.board(), engine, registry, capacity=4) as conductor,
    ):
        with anyio.fail_after(10):
            while await producer.jobs():  # consumed jobs leave the board
                await producer.wait_changed()
        print(conductor.stats)


if __name__ == "__main__":
    anyio.run(main)
