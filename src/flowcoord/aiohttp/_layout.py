"""A small layered graph layout and its SVG drawing (Graphviz is not needed).

Layer = longest path from a source, so every edge points right; nodes in a layer are ordered
by a few barycenter sweeps to cut crossings. Nodes are filled by task state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["STATE_COLOURS", "Box", "Layout", "layout", "render_svg"]

#: Fill and text colour per task state (shared with the dashboard's CSS).
STATE_COLOURS: Mapping[str, tuple[str, str]] = {
    "PENDING": ("#ffffff", "#333333"),
    "RUNNING": ("#add8e6", "#0b2a3a"),
    "SUCCESS": ("#98fb98", "#0f3d0f"),
    "FAILURE": ("#fa8072", "#3d0f0f"),
    "REVERTING": ("#ffa500", "#3d2600"),
    "REVERTED": ("#f0e68c", "#3d3600"),
    "REVERT_FAILURE": ("#d32f2f", "#ffffff"),
}

_NODE_H = 30
_LAYER_GAP = 56
_ROW_GAP = 16
_MARGIN = 16
_CHAR_W = 7.2
_MAX_LABEL = 28
_SWEEPS = 4


@dataclass(frozen=True, slots=True)
class Box:
    name: str
    layer: int
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True, slots=True)
class Layout:
    boxes: dict[str, Box]
    edges: list[tuple[str, str]]
    width: float
    height: float


def _label(name: str) -> str:
    return name if len(name) <= _MAX_LABEL else name[: _MAX_LABEL - 1] + "…"


def _layers(nodes: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    preds: dict[str, list[str]] = {n: [] for n in nodes}
    succs: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        succs[a].append(b)
        preds[b].append(a)
    indeg = {n: len(preds[n]) for n in nodes}
    layer = dict.fromkeys(nodes, 0)
    queue = [n for n in nodes if indeg[n] == 0]
    while queue:  # Kahn; a compiled plan has no cycle, so every node is reached
        n = queue.pop(0)
        for s in succs[n]:
            layer[s] = max(layer[s], layer[n] + 1)
            indeg[s] -= 1
            if indeg[s] == 0:
                queue.append(s)
    return layer


def layout(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> Layout:
    """Place ``nodes`` left to right by longest path from the sources."""
    names = list(dict.fromkeys(nodes))
    known = set(names)
    es = [(a, b) for a, b in dict.fromkeys(edges) if a in known and b in known and a != b]
    layer_of = _layers(names, es)
    n_layers = max(layer_of.values(), default=-1) + 1
    rows: list[list[str]] = [[] for _ in range(n_layers)]
    for n in names:
        rows[layer_of[n]].append(n)

    preds: dict[str, list[str]] = {n: [] for n in names}
    succs: dict[str, list[str]] = {n: [] for n in names}
    for a, b in es:
        succs[a].append(b)
        preds[b].append(a)

    def order(row: list[str], neighbours: dict[str, list[str]], pos: dict[str, int]) -> None:
        def key(item: tuple[int, str]) -> float:
            i, n = item
            ps = [pos[m] for m in neighbours[n] if m in pos]
            return sum(ps) / len(ps) if ps else float(i)

        row[:] = [n for _, n in sorted(enumerate(row), key=key)]

    for sweep in range(_SWEEPS):
        pos = {n: i for row in rows for i, n in enumerate(row)}
        down = sweep % 2 == 0
        seq = range(1, n_layers) if down else range(n_layers - 2, -1, -1)
        for k in seq:
            order(rows[k], preds if down else succs, pos)
            pos.update({n: i for i, n in enumerate(rows[k])})

    widths = {n: max(64.0, len(_label(n)) * _CHAR_W + 24) for n in names}
    col_w = [max((widths[n] for n in row), default=0.0) for row in rows]
    tallest = max((len(row) for row in rows), default=0)
    full_h = tallest * _NODE_H + max(tallest - 1, 0) * _ROW_GAP
    boxes: dict[str, Box] = {}
    x = float(_MARGIN)
    for k, row in enumerate(rows):
        row_h = len(row) * _NODE_H + max(len(row) - 1, 0) * _ROW_GAP
        y = _MARGIN + (full_h - row_h) / 2
        for n in row:
            w = widths[n]
            boxes[n] = Box(n, k, x + (col_w[k] - w) / 2, y, w, _NODE_H)
            y += _NODE_H + _ROW_GAP
        x += col_w[k] + _LAYER_GAP
    width = max(x - _LAYER_GAP + _MARGIN, 2 * _MARGIN)
    height = full_h + 2 * _MARGIN
    return Layout(boxes, es, width, height)


def _fmt(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def render_svg(
    nodes: Iterable[str],
    edges: Iterable[tuple[str, str]],
    *,
    states: Mapping[str, str] | None = None,
    title: str = "",
    legend: bool = True,
) -> str:
    """A standalone SVG of the graph; each node is a ``<g class="node" data-task=…
    data-state=…>`` with a ``<rect>`` filled by its state's colour."""
    lay = layout(nodes, edges)
    states = states or {}
    present = set(states.values())
    shown = [n for n in STATE_COLOURS if n in present or n == "PENDING"]
    steps = [16 + len(n) * 6.6 + 14 for n in shown]
    legend_h = 26 if legend and lay.boxes else 0
    w = max(lay.width, 2 * _MARGIN + sum(steps)) if legend_h else lay.width
    h = lay.height + legend_h
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="flowcoord-graph" width="{_fmt(w)}" '
        f'height="{_fmt(h)}" viewBox="0 0 {_fmt(w)} {_fmt(h)}" role="img" '
        f'aria-label="{escape(title or "flow graph")}" '
        'font-family="system-ui, sans-serif" font-size="12">',
        f"<title>{escape(title or 'flow graph')}</title>",
        '<defs><marker id="fc-arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" fill="#666"/></marker></defs>',
        '<g class="edges" fill="none" stroke="#888" stroke-width="1.4">',
    ]
    for a, b in lay.edges:
        s, t = lay.boxes[a], lay.boxes[b]
        x1, y1 = s.x + s.w, s.y + s.h / 2
        x2, y2 = t.x, t.y + t.h / 2
        mid = (x1 + x2) / 2
        out.append(
            f'<path class="edge" data-from="{escape(a)}" data-to="{escape(b)}" '
            f'd="M {_fmt(x1)} {_fmt(y1)} C {_fmt(mid)} {_fmt(y1)}, {_fmt(mid)} {_fmt(y2)}, '
            f'{_fmt(x2)} {_fmt(y2)}" marker-end="url(#fc-arrow)"/>'
        )
    out.append("</g>")
    out.append('<g class="nodes">')
    for box in lay.boxes.values():
        state = states.get(box.name, "PENDING")
        fill, ink = STATE_COLOURS.get(state, STATE_COLOURS["PENDING"])
        name = escape(box.name)
        out.append(
            f'<g class="node state-{escape(state)}" data-task="{name}" '
            f'data-state="{escape(state)}">'
            f"<title>{name}: {escape(state)}</title>"
            f'<rect x="{_fmt(box.x)}" y="{_fmt(box.y)}" width="{_fmt(box.w)}" '
            f'height="{_fmt(box.h)}" rx="5" fill="{fill}" stroke="#555"/>'
            f'<text x="{_fmt(box.x + box.w / 2)}" y="{_fmt(box.y + box.h / 2 + 4)}" '
            f'text-anchor="middle" fill="{ink}">{escape(_label(box.name))}</text></g>'
        )
    out.append("</g>")
    if legend_h:
        x = float(_MARGIN)
        y = lay.height + 4
        out.append('<g class="legend" font-size="11">')
        for name, step in zip(shown, steps, strict=True):
            fill, _ = STATE_COLOURS[name]
            out.append(
                f'<rect x="{_fmt(x)}" y="{_fmt(y)}" width="12" height="12" rx="2" '
                f'fill="{fill}" stroke="#555"/>'
                f'<text x="{_fmt(x + 16)}" y="{_fmt(y + 10)}" fill="#333">{name.lower()}</text>'
            )
            x += step
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
