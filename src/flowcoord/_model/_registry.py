"""Named flow factories, so a flow can be posted by name and built by any engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import overload

from ..errors import FlowDefinitionError, UnknownFlow
from ._flow import Flow
from ._workflow import Workflow

__all__ = ["FlowRegistry", "UnknownFlow"]

FlowFactory = Callable[[], Flow | Workflow]


class FlowRegistry:
    """Maps flow names to factories building a fresh :class:`Flow` each time (or to a
    :class:`Workflow`: its code is the definition, one object serves every run).

    ``registry.register("provision", build_provision)`` or, as a decorator,
    ``@registry.register("provision")``. Producers post jobs by name; conductors and the HTTP
    API build the flow from the registry.
    """

    def __init__(self) -> None:
        self._factories: dict[str, FlowFactory] = {}

    @overload
    def register(self, name: str, factory: FlowFactory | Flow | Workflow) -> FlowFactory: ...

    @overload
    def register(self, name: str) -> Callable[[FlowFactory], FlowFactory]: ...

    def register(
        self, name: str, factory: FlowFactory | Flow | Workflow | None = None
    ) -> FlowFactory | Callable[[FlowFactory], FlowFactory]:
        if not isinstance(name, str) or not name:
            raise FlowDefinitionError(f"a registered flow needs a non-empty name, got {name!r}")

        def add(f: FlowFactory | Flow | Workflow) -> FlowFactory:
            fac: FlowFactory = (lambda: f) if isinstance(f, Flow | Workflow) else f
            if not callable(fac):
                raise FlowDefinitionError(
                    f"register({name!r}): need a Flow, a Workflow or a factory"
                )
            self._factories[name] = fac
            return fac

        if factory is None:
            return add
        return add(factory)

    def build(self, name: str) -> Flow | Workflow:
        """A new flow built by the factory registered as ``name`` (a workflow as is)."""
        fac = self._factories.get(name)
        if fac is None:
            raise UnknownFlow(
                f"no flow registered as {name!r} (registered: {sorted(self._factories)})",
                hint="register it with FlowRegistry.register() in the worker's registry module",
            )
        flow = fac()
        if not isinstance(flow, Flow | Workflow):
            raise FlowDefinitionError(
                f"factory of {name!r} returned {flow!r}, not a Flow or a Workflow"
            )
        return flow

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._factories))

    def __len__(self) -> int:
        return len(self._factories)
