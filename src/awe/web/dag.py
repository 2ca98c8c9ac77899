"""A run's DAG laid out for an inline SVG: layers by longest path, order in each layer by
barycenters (a few sweeps down and up), curved edges from each step to the steps that need it.

Our own few lines instead of Graphviz (a binary) or a GPL library; good for the few hundred
steps a page draws (bigger runs show a table first).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

NODE_WIDTH = 168
NODE_HEIGHT = 44
LAYER_GAP = 64
ROW_GAP = 18
MARGIN = 8
SWEEPS = 4
#: Above this many steps the run page shows a table and draws the graph on request.
DRAW_AT_MOST = 150


@dataclass(frozen=True)
class Node:
    """A step's box."""

    key: str
    x: int
    y: int
    layer: int


@dataclass(frozen=True)
class Edge:
    """A curve from a step to one that needs it."""

    source: str
    target: str
    path: str


@dataclass(frozen=True)
class Layout:
    """Where everything goes."""

    width: int
    height: int
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    def node(self, key: str) -> Node:
        """The box of ``key``."""
        return next(n for n in self.nodes if n.key == key)


def layers(needs: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Each step's layer: 0 without needs, else one past its deepest need (longest path).

    Needs naming no step are ignored; a cycle (which validation refuses) cannot loop here.
    """
    found: dict[str, int] = {}
    for start in needs:
        if start in found:
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        visiting = {start}
        while stack:
            key, index = stack[-1]
            parents = [p for p in needs.get(key, ()) if p in needs]
            if index < len(parents):
                stack[-1] = (key, index + 1)
                parent = parents[index]
                if parent not in found and parent not in visiting:
                    visiting.add(parent)
                    stack.append((parent, 0))
                continue
            stack.pop()
            visiting.discard(key)
            found[key] = 1 + max((found.get(p, -1) for p in parents), default=-1)
    return found


def _order(rows: list[list[str]], needs: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Reorder each layer by the mean position of its neighbours, sweeping down then up."""
    children: dict[str, list[str]] = {k: [] for k in needs}
    for key, parents in needs.items():
        for parent in parents:
            if parent in children:
                children[parent].append(key)
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        position = {k: i for row in rows for i, k in enumerate(row)}
        span = range(1, len(rows)) if downward else range(len(rows) - 2, -1, -1)
        linked: Mapping[str, Sequence[str]] = needs if downward else children
        for index in span:
            row = rows[index]
            centres = {}
            for place, key in enumerate(row):
                near = [position[k] for k in linked.get(key, ()) if k in position]
                centres[key] = sum(near) / len(near) if near else float(place)
            rows[index] = sorted(row, key=centres.__getitem__)  # stable: ties keep their order
            position.update({k: i for i, k in enumerate(rows[index])})
    return rows


def layout(needs: Mapping[str, Sequence[str]]) -> Layout:
    """Lay out steps given as ``{key: keys it needs}`` (in the workflow's order)."""
    depth = layers(needs)
    rows: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for key in needs:  # the workflow's order is the starting order
        rows[depth[key]].append(key)
    rows = _order(rows, needs)
    tallest = max((len(r) for r in rows), default=0)
    height = MARGIN * 2 + tallest * NODE_HEIGHT + max(0, tallest - 1) * ROW_GAP
    nodes: dict[str, Node] = {}
    for layer, row in enumerate(rows):
        used = len(row) * NODE_HEIGHT + max(0, len(row) - 1) * ROW_GAP
        top = (height - used) // 2
        for index, key in enumerate(row):
            nodes[key] = Node(
                key,
                MARGIN + layer * (NODE_WIDTH + LAYER_GAP),
                top + index * (NODE_HEIGHT + ROW_GAP),
                layer,
            )
    edges = []
    for key, parents in needs.items():
        for parent in parents:
            if parent in nodes:
                edges.append(Edge(parent, key, _curve(nodes[parent], nodes[key])))
    width = MARGIN * 2 + len(rows) * NODE_WIDTH + max(0, len(rows) - 1) * LAYER_GAP
    return Layout(width, height, tuple(nodes[k] for k in needs), tuple(edges))


def _curve(source: Node, target: Node) -> str:
    x1, y1 = source.x + NODE_WIDTH, source.y + NODE_HEIGHT // 2
    x2, y2 = target.x, target.y + NODE_HEIGHT // 2
    bend = max(24, (x2 - x1) // 2)
    return f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}"
