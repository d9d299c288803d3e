"""Flows for the conductor tests (in memory and on ZooKeeper): tasks that count their runs
and can be held at a gate."""

from __future__ import annotations

from collections import Counter

import anyio

import flowcoord as fc


class World:
    """Tasks that count their runs and can be held at a gate."""

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        self.gate = anyio.Event()
        self.reached = anyio.Event()
        self.hold: str | None = None
        self.registry = fc.FlowRegistry()
        self.registry.register("three", self.three)
        self.registry.register("failing", self.failing)
        self.registry.register("wide", lambda: self.wide(20))
        self.registry.register("one", lambda: self.wide(1))

    def step(self, name: str, provides: str | None = None) -> fc.Task:
        async def body() -> str:
            self.runs[name] += 1
            if name == self.hold:
                self.reached.set()
                await self.gate.wait()
            return name

        return fc.FunctionTask(body, name, provides=provides)

    def three(self) -> fc.Flow:
        return fc.Linear("three", self.step("a"), self.step("b"), self.step("c"))

    def wide(self, n: int) -> fc.Flow:
        return fc.Unordered(f"wide{n}", *(self.step(f"w{i}") for i in range(n)))

    def failing(self) -> fc.Flow:
        async def boom() -> None:
            raise RuntimeError("boom")

        return fc.Linear("failing", self.step("x"), fc.FunctionTask(boom, "boom"))
