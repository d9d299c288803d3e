"""Flow patterns: linear, unordered and graph, nested freely."""

from __future__ import annotations

from typing import TYPE_CHECKING, Self, TypeAlias

from ..errors import FlowDefinitionError
from ._task import Task

if TYPE_CHECKING:
    from ._retry import Retry

__all__ = ["Flow", "Graph", "Item", "Linear", "Unordered"]

Item: TypeAlias = "Task | Flow"


class Flow:
    """A named group of tasks and sub-flows. Use :class:`Linear`, :class:`Unordered` or
    :class:`Graph`. In every pattern a task that requires a name runs after the task that
    provides it, wherever that task is in the tree. ``retry`` puts the whole flow under a
    retry controller."""

    kind = "flow"

    def __init__(self, name: str, *items: Item, retry: Retry | None = None) -> None:
        if not isinstance(name, str) or not name or "/" in name:
            raise FlowDefinitionError(f"flow name {name!r} must be a non-empty str without '/'")
        self.name = name
        self.retry = retry
        self.items: list[Item] = []
        self.add(*items)

    def add(self, *items: Item) -> Self:
        for item in items:
            if not isinstance(item, (Task, Flow)):
                raise FlowDefinitionError(
                    f"can only add tasks and flows, got {item!r}",
                    flow=self.name,
                    hint="decorate the function with @flowcoord.task",
                )
            self.items.append(item)
        return self

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} items={len(self.items)}>"


class Linear(Flow):
    """Each item runs after the previous one has finished."""

    kind = "linear"


class Unordered(Flow):
    """Items run concurrently (apart from data dependencies between them)."""

    kind = "unordered"


class Graph(Flow):
    """Items ordered by data dependencies and by explicit :meth:`link` calls only."""

    kind = "graph"

    def __init__(self, name: str, *items: Item, retry: Retry | None = None) -> None:
        super().__init__(name, *items, retry=retry)
        self.links: list[tuple[Item, Item]] = []

    def link(self, before: Item, after: Item) -> Self:
        """Make ``after`` wait for ``before`` (both items of this graph)."""
        for item in (before, after):
            if not any(item is x for x in self.items):
                raise FlowDefinitionError(
                    f"link names {getattr(item, 'name', item)!r}, which is not an item of "
                    "this graph",
                    flow=self.name,
                    hint="add() the item to the graph before linking it",
                )
        self.links.append((before, after))
        return self
