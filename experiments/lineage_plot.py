"""A flow-graph figure of one feature in the style of the paper's Fig. 2: layers run down, the residual
stream in the middle column with attention to its left and MLP to its right, edges drawn from the earlier
feature to the later one with width and colour by their cosine similarity.

Every node and edge carries its identity as the SVG element id (matplotlib ``gid``): ``node:<uid>`` and
``edge:<source uid>-><target uid>``, so a test (or a script) can read back what was drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from queries.errors import InvalidInput
from queries.flow_graph import FlowGraph
from queries.ids import Module

COLUMN = {Module.ATT: 0.0, Module.RES: 1.0, Module.MLP: 2.0}
FORMATS = (".svg", ".png", ".pdf")


def _positions(fg: FlowGraph) -> dict[str, tuple[float, float]]:
    """x: module column (several features of one cell spread around it); y: the layer (drawn downwards)."""
    cells: dict[tuple[int, Module], list[str]] = {}
    for n in fg.nodes:
        cells.setdefault((n.layer, n.module), []).append(n.uid)
    pos = {}
    for (layer, mod), uids in cells.items():
        for k, uid in enumerate(sorted(uids)):
            pos[uid] = (COLUMN[mod] + (k - (len(uids) - 1) / 2) * 0.28, float(layer))
    return pos


def draw_lineage(fg: FlowGraph, seed: str, path: Path, *, title: str | None = None) -> dict[str, Any]:
    """Draw ``fg`` around ``seed`` into ``path`` (.svg, .png or .pdf); returns what was drawn."""
    if path.suffix.lower() not in FORMATS:
        raise InvalidInput(f"output {str(path)!r} has an unknown format (use a name ending in {', '.join(FORMATS)})")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import cm, colors

    pos = _positions(fg)
    layers = sorted({n.layer for n in fg.nodes})
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 1.1 * max(1, len(layers))))
    norm = colors.Normalize(vmin=0.0, vmax=1.0)
    cmap = matplotlib.colormaps["viridis"]
    for e in fg.edges:
        (x0, y0), (x1, y1) = pos[e.source], pos[e.target]
        (line,) = ax.plot(
            [x0, x1], [y0, y1], color=cmap(norm(e.similarity)), lw=0.8 + 4.0 * max(0.0, e.similarity), zorder=1
        )
        line.set_gid(f"edge:{e.source}->{e.target}")
        ax.annotate(f"{e.similarity:.2f}", ((x0 + x1) / 2, (y0 + y1) / 2), fontsize=6, color="0.3", ha="center")
    for n in fg.nodes:
        x, y = pos[n.uid]
        is_seed = n.uid == seed
        dot = ax.scatter(
            [x], [y], s=260 if is_seed else 140, c="tab:red" if is_seed else "white", edgecolors="black", zorder=2
        )
        dot.set_gid(f"node:{n.uid}")
        text = f"{n.module.value} {n.index}"
        if n.label:
            text += f"\n{n.label[:28]}"
        ax.annotate(text, (x, y), xytext=(0, -13), textcoords="offset points", fontsize=6, ha="center", va="top")
    ax.set_xticks(list(COLUMN.values()), [m.value for m in COLUMN])
    ax.set_yticks(layers, [f"layer {L}" for L in layers])
    ax.set_xlim(-0.7, 2.7)
    ax.set_ylim(max(layers) + 0.7, min(layers) - 0.6)  # layers run down
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="cosine similarity of decoder directions")
    ax.set_title(title or f"flow graph of {seed}", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", dpi=150)
    plt.close(fig)
    return {"path": str(path), "nodes": [n.uid for n in fg.nodes], "edges": [(e.source, e.target) for e in fg.edges]}
