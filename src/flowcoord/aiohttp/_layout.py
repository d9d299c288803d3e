"""A small layered graph layout and its SVG drawing (Graphviz is not needed).

Layer = longest path from a source, so every edge points right; nodes in a layer are ordered
by a few barycenter sweeps to cut crossings. Nodes are filled by task state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["FAILED_COLOURS", "STATE_COLOURS", "Box", "Layout", "labels", "layout", "render_svg"]

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

#: A task that failed the flow (its failure stands, whatever its state since): its fill,
#: text and border, and the mark before its name.
FAILED_COLOURS = ("#fa8072", "#3d0f0f", "#b71c1c")
FAILED_MARK = "\u2716"

_NODE_H = 30
_LAYER_GAP = 56
_ROW_GAP = 16
_MARGIN = 16
_CHAR_W = 7.2
_MAX_LABEL = 34
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


def _cut(name: str, width: int) -> str:
    """``name`` in at most ``width`` characters: its start and its end, an ellipsis between
    (names often differ at their end: ``provision_disk_primary`` / ``..._secondary``)."""
    if len(name) <= width:
        return name
    tail = (width - 1) // 2
    return name[: width - 1 - tail] + "…" + name[len(name) - tail :]


_WORD_BREAKS = frozenset("_-.:/ ")


def _distinct_tail(name: str, common: int) -> str:
    """The end of ``name`` from the start of the word in which it stops sharing its last
    ``common`` characters with the names it would be confused with."""
    k = max(len(name) - common - 1, 0)
    while k > 0 and name[k - 1] not in _WORD_BREAKS:
        k -= 1
    return name[k:]


def _around(name: str, common: int, width: int) -> str:
    """``name`` cut so that it shows where it stops sharing its last ``common`` characters:
    its start, then that word to the end; a window around the place when that is too long."""
    tail = _distinct_tail(name, common)
    if len(tail) > width:  # no word break near: a window around where the names differ
        d = len(name) - common - 1
        mid = name[max(d - 6, 6) : d + 7]
        return name[:6] + "…" + mid + ("…" + name[-6:] if d + 7 < len(name) - 6 else name[d + 7 :])
    head = max(width - 1 - len(tail), 6)
    return name if head + 1 + len(tail) >= len(name) else name[:head] + "…" + tail


def _common_suffix(names: list[str]) -> int:
    first = names[0]
    n = 0
    while n < len(first) and all(len(x) > n and x[-1 - n] == first[-1 - n] for x in names):
        n += 1
    return n


def labels(names: Iterable[str], width: int = _MAX_LABEL) -> dict[str, str]:
    """A label of at most about ``width`` characters for each name (cut in the middle), no
    two alike: names that would share a label keep the words where they differ (and as
    much of their start as fits), or get longer labels, up to their whole name."""
    names = list(dict.fromkeys(names))
    out = {n: _cut(n, width) for n in names}
    w = width
    first = True
    while True:
        seen: dict[str, list[str]] = {}
        for n in names:
            seen.setdefault(out[n], []).append(n)
        clashes = [group for group in seen.values() if len(group) > 1]
        if not clashes or w > max((len(n) for n in names), default=0):
            return out
        for group in clashes:
            common = _common_suffix(group)
            for n in group:
                if first:  # where they differ, whole words, and what fits of their start
                    out[n] = _around(n, common, w)
                else:
                    out[n] = _cut(n, w)
        if not first:
            w += 8
        first = False


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


def layout(
    nodes: Iterable[str],
    edges: Iterable[tuple[str, str]],
    *,
    shown: Mapping[str, str] | None = None,
) -> Layout:
    """Place ``nodes`` left to right by longest path from the sources; ``shown``: each
    node's label (its name cut by :func:`labels` when not given)."""
    names = list(dict.fromkeys(nodes))
    shown = shown if shown is not None else labels(names)
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

    widths = {n: max(64.0, len(shown.get(n, n)) * _CHAR_W + 24) for n in names}
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
    failed: Iterable[str] = (),
) -> str:
    """A standalone SVG of the graph; each node is a ``<g class="node" data-task=…
    data-state=…>`` with a ``<rect>`` filled by its state's colour. The ``failed`` tasks
    (those that failed the flow) stand out: their own fill and border, a mark before their
    name, ``data-failed="true"``. Long names are cut in the middle, no two labels alike
    (the whole name is in the node's ``<title>``)."""
    nodes = list(dict.fromkeys(nodes))
    failed = {n for n in failed if n in set(nodes)}
    text = labels(nodes)
    for n in failed:
        text[n] = f"{FAILED_MARK} {text[n]}"
    lay = layout(nodes, edges, shown=text)
    states = states or {}
    present = set(states.values())
    shown = [n for n in STATE_COLOURS if n in present or n == "PENDING"]
    keys = [n.lower() for n in shown] + ([f"{FAILED_MARK} failed the flow"] if failed else [])
    fills = [STATE_COLOURS[n][0] for n in shown] + ([FAILED_COLOURS[0]] if failed else [])
    steps = [16 + len(k) * 6.6 + 14 for k in keys]
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
        stroke, width, extra, cls, weight = "#555", "1", "", "", ""
        tip = escape(state)
        if box.name in failed:
            fill, ink, stroke = FAILED_COLOURS
            width, extra, cls = "2.5", ' data-failed="true"', " failed"
            weight = ' font-weight="700"'
            tip = f"failed the flow; now {tip}"
        name = escape(box.name)
        out.append(
            f'<g class="node state-{escape(state)}{cls}" data-task="{name}" '
            f'data-state="{escape(state)}"{extra}>'
            f"<title>{name}: {tip}</title>"
            f'<rect x="{_fmt(box.x)}" y="{_fmt(box.y)}" width="{_fmt(box.w)}" '
            f'height="{_fmt(box.h)}" rx="5" fill="{fill}" stroke="{stroke}" '
            f'stroke-width="{width}"/>'
            f'<text x="{_fmt(box.x + box.w / 2)}" y="{_fmt(box.y + box.h / 2 + 4)}" '
            f'text-anchor="middle" fill="{ink}"{weight}>'
            f"{escape(text[box.name])}</text></g>"
        )
    out.append("</g>")
    if legend_h:
        x = float(_MARGIN)
        y = lay.height + 4
        out.append('<g class="legend" font-size="11">')
        for key, fill, step in zip(keys, fills, steps, strict=True):
            out.append(
                f'<rect x="{_fmt(x)}" y="{_fmt(y)}" width="12" height="12" rx="2" '
                f'fill="{fill}" stroke="#555"/>'
                f'<text x="{_fmt(x + 16)}" y="{_fmt(y + 10)}" fill="#333">{escape(key)}</text>'
            )
            x += step
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
