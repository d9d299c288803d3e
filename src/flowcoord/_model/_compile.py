"""Compile a flow tree into an execution plan: nodes, edges, retry scopes. Validates it."""

from __future__ import annotations

import graphlib
import itertools
from collections.abc import Callable, Collection, Iterable
from typing import Any

from ..errors import AmbiguousProviderError, CycleError, DuplicateTaskError, MissingInputError
from ._flow import Flow, Graph, Item, Linear
from ._retry import Retry
from ._task import Task

__all__ = ["Node", "Plan", "Scope", "compile_flow"]


class Scope:
    """A retry scope: a flow or task with a retry controller, and the nodes under it."""

    __slots__ = (
        "exit",
        "index",
        "key",
        "members",
        "name",
        "parent",
        "retry",
        "task_names",
    )

    def __init__(self, key: str, name: str, retry: Retry, parent: Scope | None) -> None:
        self.key = key
        self.name = name
        self.retry = retry
        self.parent = parent
        self.members: list[int] = []
        self.task_names: list[str] = []
        self.exit: int | None = None
        self.index = 0

    def within(self, other: Scope) -> bool:
        """True if this scope is ``other`` or nested inside it."""
        s: Scope | None = self
        while s is not None:
            if s is other:
                return True
            s = s.parent
        return False

    def __repr__(self) -> str:
        return f"<Scope {self.key} members={len(self.members)}>"


class Node:
    """One task (or a virtual barrier, ``task is None``) in the plan."""

    __slots__ = ("index", "name", "path", "preds", "scopes", "succs", "task")

    def __init__(self, index: int, name: str, task: Task | None, scopes: tuple[Scope, ...]):
        self.index = index
        self.name = name
        self.task = task
        self.scopes = scopes  # innermost first
        # Shared empty tuples until the first edge: most nodes of a big unordered flow have
        # none, and two empty lists cost 112 bytes a node.
        self.preds: list[int] | tuple[()] = ()
        self.succs: list[int] | tuple[()] = ()
        self.path: tuple[str, ...] = ()


class Plan:
    """The compiled, validated form of a flow."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.nodes: list[Node] = []
        self.by_name: dict[str, int] = {}
        self.scopes: list[Scope] = []
        self.providers: dict[str, int] = {}  # name → node index
        self.scope_providers: dict[str, Scope] = {}
        self._edges: set[tuple[int, int]] = set()
        self.order: list[int] = []  # a topological order of the nodes
        # Filled in by _finish(), once: what every run of the plan would otherwise recompute.
        self.task_names: list[str] = []
        #: per node: the coroutine function to call (None for a barrier)
        self.fns: list[Callable[..., Any] | None] = []
        #: per node: called with no arguments (nothing required, optional or injected)
        self.bare: list[bool] = []
        #: per node: the revert to call (None for a barrier or a task without one)
        self.reverts: list[Callable[..., Any] | None] = []
        self.revert_succs: list[tuple[int, ...]] = []

    def _finish(self) -> None:
        tasks = [n.task for n in self.nodes]
        self.task_names = [n.name for n in self.nodes if n.task is not None]
        self.fns = [None if t is None else t._execute_fn() for t in tasks]
        self.bare = [
            t is not None and not (t.required_args or t.optional_args or t.inject) for t in tasks
        ]
        self.reverts = [None if t is None else t._revert_fn() for t in tasks]
        #: per node: its successors that are tasks with a revert (their start is journaled
        #: with this node's success when it releases them; see FlowRun._prestart)
        self.revert_succs = [
            tuple(k for k in n.succs if self.reverts[k] is not None) for n in self.nodes
        ]

    def edge(self, a: int, b: int) -> None:
        if a != b and (a, b) not in self._edges:
            self._edges.add((a, b))
            na, nb = self.nodes[a], self.nodes[b]
            if na.succs:
                na.succs.append(b)
            else:
                na.succs = [b]
            if nb.preds:
                nb.preds.append(a)
            else:
                nb.preds = [a]

    def check_inputs(self, stored: Collection[str]) -> None:
        """Raise :class:`MissingInputError` if some task requires a name nothing supplies."""
        missing: list[tuple[str, str]] = []
        for node in self.nodes:
            t = node.task
            if t is None:
                continue
            for name in t.requires:
                if (
                    name not in stored
                    and name not in self.scope_providers
                    and self.providers.get(name, node.index) == node.index
                ):
                    missing.append((node.name, name))
        for scope in self.scopes:
            for name in scope.retry.requires:
                if name not in stored and name not in self.providers:
                    missing.append((scope.name, name))
        if missing:
            listing = ", ".join(f"{t!r} needs {n!r}" for t, n in missing)
            raise MissingInputError(
                f"inputs missing: {listing}",
                flow=self.flow.name,
                tasks=[t for t, _ in missing],
                names=[n for _, n in missing],
                hint="store them when starting the flow, or add a task that provides them",
            )

    def edges(self) -> Iterable[tuple[int, int]]:
        return iter(self._edges)


def compile_flow(flow: Flow) -> Plan:
    """Turn ``flow`` into a :class:`Plan`, or raise a :class:`FlowDefinitionError`."""
    plan = Plan(flow)
    _Builder(plan).build(flow, (), ())
    _check_duplicates(plan, flow)
    _link_data(plan)
    _check_acyclic(plan)
    plan._finish()
    return plan


class _Builder:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def node(self, name: str, task: Task | None, scopes: tuple[Scope, ...]) -> int:
        idx = len(self.plan.nodes)
        self.plan.nodes.append(Node(idx, name, task, scopes))
        for s in scopes:
            s.members.append(idx)
            if task is not None:
                s.task_names.append(name)
        return idx

    def barrier(self, scopes: tuple[Scope, ...]) -> int:
        return self.node(f"#barrier{len(self.plan.nodes)}", None, scopes)

    def connect(self, exits: list[int], entries: list[int], scopes: tuple[Scope, ...]) -> None:
        if len(exits) * len(entries) > len(exits) + len(entries):
            b = self.barrier(scopes)
            for x in exits:
                self.plan.edge(x, b)
            for e in entries:
                self.plan.edge(b, e)
        else:
            for x in exits:
                for e in entries:
                    self.plan.edge(x, e)

    def scope(self, key: str, name: str, retry: Retry, scopes: tuple[Scope, ...]) -> Scope:
        s = Scope(key, name, retry, scopes[0] if scopes else None)
        s.index = len(self.plan.scopes)
        self.plan.scopes.append(s)
        return s

    def build(
        self, item: Item, scopes: tuple[Scope, ...], path: tuple[str, ...]
    ) -> tuple[list[int], list[int]]:
        if isinstance(item, Task):
            if item.retry is not None:
                scopes = (self.scope(f"task:{item.name}", item.name, item.retry, scopes), *scopes)
            idx = self.node(item.name, item, scopes)
            self.plan.nodes[idx].path = path
            return [idx], [idx]
        own: Scope | None = None
        if item.retry is not None:
            own = self.scope(f"flow:{item.name}", item.name, item.retry, scopes)
            scopes = (own, *scopes)
        path = (*path, item.name)
        parts: list[tuple[list[int], list[int]]] = []
        nodes, members = self.plan.nodes, [s.members for s in scopes]
        for child in item.items:
            if isinstance(child, Task) and child.retry is None:  # the common leaf, inlined
                idx = len(nodes)
                node = Node(idx, child.name, child, scopes)
                node.path = path
                nodes.append(node)
                for m in members:
                    m.append(idx)
                for sc in scopes:
                    sc.task_names.append(child.name)
                parts.append(([idx], [idx]))
            else:
                parts.append(self.build(child, scopes, path))
        entries: list[int] = []
        exits: list[int] = []
        if isinstance(item, Linear):
            for (_, x), (e, _) in itertools.pairwise(parts):
                self.connect(x, e, scopes)
            if parts:
                entries, exits = parts[0][0], parts[-1][1]
        elif isinstance(item, Graph):
            pos = {id(child): i for i, child in enumerate(item.items)}
            has_in: set[int] = set()
            has_out: set[int] = set()
            for before, after in item.links:
                a, b = pos[id(before)], pos[id(after)]
                self.connect(parts[a][1], parts[b][0], scopes)
                has_out.add(a)
                has_in.add(b)
            for i, (e, x) in enumerate(parts):
                if i not in has_in:
                    entries.extend(e)
                if i not in has_out:
                    exits.extend(x)
        else:
            for e, x in parts:
                entries.extend(e)
                exits.extend(x)
        if own is not None:
            # An exit barrier makes the retry scope atomic from outside: nothing outside
            # sees its results before the whole scope has succeeded.
            x_idx = self.barrier(scopes)
            own.exit = x_idx
            for xi in exits:
                self.plan.edge(xi, x_idx)
            exits = [x_idx]
        return entries, exits


def _check_duplicates(plan: Plan, flow: Flow) -> None:
    seen: dict[str, int] = {}
    dups: list[str] = []
    for node in plan.nodes:
        if node.task is None:
            continue
        if node.name in seen:
            dups.append(node.name)
        else:
            seen[node.name] = node.index
    keys: set[str] = set()
    for s in plan.scopes:
        if s.key in keys:
            dups.append(s.name)
        keys.add(s.key)
    if dups:
        raise DuplicateTaskError(
            f"names used more than once: {sorted(set(dups))}",
            flow=flow.name,
            tasks=sorted(set(dups)),
            hint="give each task (and each flow with a retry) its own name, e.g. task.copy('x2')",
        )
    plan.by_name = seen


def _link_data(plan: Plan) -> None:
    providers: dict[str, list[str]] = {}
    for node in plan.nodes:
        if node.task is not None:
            for name in node.task.provided:
                providers.setdefault(name, []).append(node.name)
                plan.providers.setdefault(name, node.index)
    for s in plan.scopes:
        for name in s.retry.provides:
            providers.setdefault(name, []).append(f"retry of {s.name}")
            plan.scope_providers[name] = s
    clashes = {n: who for n, who in providers.items() if len(who) > 1}
    if clashes:
        name, who = sorted(clashes.items())[0]
        raise AmbiguousProviderError(
            f"{name!r} is provided by more than one task: {who}"
            + (f" (and {len(clashes) - 1} more names)" if len(clashes) > 1 else ""),
            flow=plan.flow.name,
            tasks=who,
            names=sorted(clashes),
            hint="rename one result with provides=..., or the consumer's input with rebind=",
        )
    for node in list(plan.nodes):
        t = node.task
        if t is None:
            continue
        for name in (*t.requires, *t.optional):
            p = plan.providers.get(name)
            if p is None or p == node.index:
                continue
            src: int = p
            mine = set(map(id, node.scopes))
            for s in reversed(plan.nodes[p].scopes):  # outermost first
                if id(s) not in mine and s.exit is not None:
                    src = s.exit
                    break
            plan.edge(src, node.index)
    for s in plan.scopes:
        for name in s.retry.requires:
            p = plan.providers.get(name)
            if p is not None:
                for m in s.members:
                    plan.edge(p, m)


def _check_acyclic(plan: Plan) -> None:
    indeg = [len(n.preds) for n in plan.nodes]
    stack = [i for i, d in enumerate(indeg) if d == 0]
    seen = 0
    nodes = plan.nodes
    order = plan.order
    while stack:
        i = stack.pop()
        order.append(i)
        seen += 1
        for j in nodes[i].succs:
            indeg[j] -= 1
            if indeg[j] == 0:
                stack.append(j)
    if seen == len(nodes):
        return
    sorter: graphlib.TopologicalSorter[int] = graphlib.TopologicalSorter()
    for n in nodes:
        sorter.add(n.index, *n.preds)
    cycle: list[Any] = []
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = list(exc.args[1])
    names = [nodes[i].name for i in cycle if nodes[i].task is not None] or [
        nodes[i].name for i in cycle
    ]
    raise CycleError(
        "dependencies form a cycle: " + " -> ".join(names),
        flow=plan.flow.name,
        tasks=names,
        hint="a task cannot require (directly or through others) what runs after it",
    )
