"""Export a flow's graph as Graphviz DOT or Mermaid text."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from ._compile import Plan, compile_flow
from ._flow import Flow

__all__ = ["task_edges", "to_dot", "to_mermaid"]


def task_edges(plan: Plan) -> Iterator[tuple[str, str]]:
    """Edges between tasks, with virtual barriers collapsed (for display only)."""
    nodes = plan.nodes
    memo: dict[int, set[int]] = {}

    def task_succs(i: int) -> set[int]:
        out: set[int] = set()
        stack = list(nodes[i].succs)
        seen: set[int] = set()
        while stack:
            j = stack.pop()
            if j in seen:
                continue
            seen.add(j)
            if nodes[j].task is not None:
                out.add(j)
            elif j in memo:
                out |= memo[j]
            else:
                stack.extend(nodes[j].succs)
        return out

    for n in nodes:
        if n.task is None:
            continue
        for j in sorted(task_succs(n.index)):
            yield n.name, nodes[j].name


def _id(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(flow: Flow | Plan, *, states: Mapping[str, str] | None = None) -> str:
    """Graphviz DOT: one cluster per sub-flow, one node per task (filled by state if given)."""
    plan = flow if isinstance(flow, Plan) else compile_flow(flow)
    colours = {
        "SUCCESS": "palegreen",
        "FAILURE": "salmon",
        "RUNNING": "lightblue",
        "REVERTED": "khaki",
        "REVERTING": "orange",
        "REVERT_FAILURE": "red",
    }
    lines = [f"digraph {_id(plan.flow.name)} {{", "  rankdir=LR;", "  node [shape=box];"]
    clusters: dict[tuple[str, ...], list[str]] = {}
    for n in plan.nodes:
        if n.task is not None:
            clusters.setdefault(n.path, []).append(n.name)
    for k, (path, names) in enumerate(sorted(clusters.items())):
        lines.append(f"  subgraph cluster_{k} {{ label={_id('/'.join(path))};")
        for name in names:
            style = ""
            state = (states or {}).get(name)
            if state:
                style = f" style=filled fillcolor={colours.get(state, 'white')}"
            lines.append(f"    {_id(name)} [label={_id(name)}{style}];")
        lines.append("  }")
    for a, b in task_edges(plan):
        lines.append(f"  {_id(a)} -> {_id(b)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(flow: Flow | Plan) -> str:
    """Mermaid ``flowchart`` text."""
    plan = flow if isinstance(flow, Plan) else compile_flow(flow)
    ids = {n.name: f"t{k}" for k, n in enumerate(x for x in plan.nodes if x.task is not None)}
    lines = ["flowchart LR"]
    for name, i in ids.items():
        label = name.replace('"', "#quot;")
        lines.append(f'  {i}["{label}"]')
    for a, b in task_edges(plan):
        lines.append(f"  {ids[a]} --> {ids[b]}")
    return "\n".join(lines) + "\n"
