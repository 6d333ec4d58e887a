// Draws a FlowGraph (nodes + edges as the API returns them) with Cytoscape.js on a preset layered layout.
// Cytoscape renders to canvas, so a 500-node graph stays interactive (pan, zoom, hover, click).
import cytoscape from "cytoscape";
import { h } from "./dom";
import { CATEGORY_COLOURS, edgeStyle, layoutFlowGraph, MODULE_COLOURS } from "./layout";

export interface GNode { uid: string; layer: number; module: string; index: number; category?: string | null; label?: string | null; sRes?: number | null; sAtt?: number | null; sMlp?: number | null; family?: { id: string; size: number; name: string } }
export interface GEdge { source: string; target: string; similarity: number; methods?: string[] | null }
export interface GGraph { nodes: GNode[]; edges: GEdge[]; seeds?: string[] }

export interface Drawn { cy: cytoscape.Core; ms: number; painted: Promise<number>; destroy: () => void }

/** The distinct matchers of a graph's edges (`cosine` where an edge names none). */
export function edgeMethods(g: GGraph): string[] {
  return [...new Set(g.edges.flatMap((e) => e.methods?.length ? e.methods : ["cosine"]))].sort();
}

export function drawFlowGraph(container: HTMLElement, g: GGraph, onOpen: (uid: string) => void): Drawn {
  const showMethods = edgeMethods(g).length > 1;
  const t0 = performance.now();
  const pos = layoutFlowGraph(g.nodes, g.edges);
  const seeds = new Set(g.seeds ?? []);
  const elements: cytoscape.ElementDefinition[] = [
    ...g.nodes.map((n) => ({
      group: "nodes" as const,
      data: { id: n.uid, short: n.family ? `⊞ ${n.family.name} (${n.family.size})` : `${n.layer}/${n.module.toLowerCase()}/${n.index}`, colour: n.family ? "#fff" : n.module === "RES" ? CATEGORY_COLOURS[n.category ?? "NONE"] ?? CATEGORY_COLOURS.NONE : MODULE_COLOURS[n.module] ?? "#888", seed: seeds.has(n.uid) ? 1 : 0 },
      position: pos.get(n.uid),
      classes: n.family ? "family" : undefined,
    })),
    ...g.edges.map((e) => {
      const s = edgeStyle(e.similarity);
      const methods = (e.methods?.length ? e.methods : ["cosine"]).join("+");
      return { group: "edges" as const, data: { id: `${e.source}->${e.target}`, source: e.source, target: e.target, w: s.width, c: s.color, sim: e.similarity, methods, mlabel: showMethods ? methods : "" } };
    }),
  ];
  // Row labels (layers) and column headers, as locked, unselectable nodes of class "axis".
  const ys = new Map<number, number>();
  const xs = new Map<string, number[]>();
  for (const n of g.nodes) {
    const p = pos.get(n.uid)!;
    ys.set(n.layer, p.y);
    (xs.get(n.module) ?? xs.set(n.module, []).get(n.module)!).push(p.x);
  }
  const left = Math.min(...[...pos.values()].map((p) => p.x)) - 90;
  const top = Math.min(...[...pos.values()].map((p) => p.y)) - 60;
  for (const [layer, y] of ys) elements.push({ group: "nodes", data: { id: `axis:layer:${layer}`, text: `layer ${layer}` }, position: { x: left, y }, classes: "axis", locked: true, selectable: false, grabbable: false });
  for (const [m, list] of xs) elements.push({ group: "nodes", data: { id: `axis:module:${m}`, text: m.toLowerCase() }, position: { x: (Math.min(...list) + Math.max(...list)) / 2, y: top }, classes: "axis", locked: true, selectable: false, grabbable: false });
  const cy = cytoscape({
    container, elements, layout: { name: "preset", fit: true, padding: 30 }, minZoom: 0.05, maxZoom: 1.6, wheelSensitivity: 0.3,
    style: [
      { selector: "node", style: { "background-color": "data(colour)", label: "data(short)", "font-size": 9, "text-valign": "top", "text-halign": "right", "text-margin-x": -4, "text-margin-y": 2, width: 18, height: 18, color: "#333", "text-background-color": "#fff", "text-background-opacity": 0.85, "text-background-padding": "1px", "min-zoomed-font-size": 7 } },
      { selector: "node[seed = 1]", style: { "border-width": 3, "border-color": "#111", width: 26, height: 26 } },
      { selector: "edge", style: { width: "data(w)", "line-color": "data(c)", "target-arrow-color": "data(c)", "target-arrow-shape": "triangle", "curve-style": "straight", "arrow-scale": 0.6, opacity: 0.85 } },
      { selector: "node:active, node.hover", style: { "overlay-opacity": 0.15 } },
      { selector: "node.family", style: { shape: "round-rectangle", width: 34, height: 22, "border-width": 2, "border-style": "double", "border-color": "#111", "font-weight": "bold", "font-size": 10 } },
      { selector: "edge[mlabel != '']", style: { label: "data(mlabel)", "font-size": 8, color: "#333", "text-background-color": "#fff", "text-background-opacity": 0.9, "text-rotation": "autorotate" } },
      { selector: "node.axis", style: { "background-opacity": 0, label: "data(text)", "text-valign": "center", "font-size": 13, color: "#777", "font-weight": "bold", events: "no" } },
    ],
  });
  cy.maxZoom(4);
  const byUid = new Map(g.nodes.map((n) => [n.uid, n]));
  const tip = h("div", { class: "tooltip", role: "tooltip", hidden: true });
  container.append(tip);
  cy.on("mouseover", "node[!text]", (ev) => {
    const n = byUid.get(ev.target.id());
    if (!n) return;
    const s = (x?: number | null) => (x === null || x === undefined ? "–" : x.toFixed(2));
    if (n.family) {
      tip.replaceChildren(h("strong", null, `concept family: ${n.family.name}`), h("div", null, `${n.family.size} features; click to expand`));
    } else tip.replaceChildren(h("strong", null, n.uid), h("div", null, n.label || "(no label)"), h("div", null, `${n.category?.toLowerCase() ?? n.module.toLowerCase()} · sRes ${s(n.sRes)} sAtt ${s(n.sAtt)} sMlp ${s(n.sMlp)}`));
    const p = ev.target.renderedPosition();
    tip.style.left = `${p.x + 14}px`;
    tip.style.top = `${p.y + 10}px`;
    tip.hidden = false;
  });
  cy.on("mouseout", "node", () => (tip.hidden = true));
  cy.on("mouseover", "edge", (ev) => {
    const p = ev.renderedPosition;
    tip.replaceChildren(h("div", null, `similarity ${Number(ev.target.data("sim")).toFixed(3)}`), h("div", null, `found by: ${ev.target.data("methods")}`));
    tip.style.left = `${p.x + 10}px`;
    tip.style.top = `${p.y + 10}px`;
    tip.hidden = false;
  });
  cy.on("mouseout", "edge", () => (tip.hidden = true));
  cy.on("tap", "node[!text]", (ev) => onOpen(ev.target.id()));
  const ms = performance.now() - t0;
  // What was actually drawn, for the browser tests (and a reader's console): node ids and edge pairs.
  (window as unknown as Record<string, unknown>).__atlasLastDrawn = {
    nodes: cy.nodes().filter((n) => !n.hasClass("axis")).map((n) => n.id()), edges: cy.edges().map((e) => [e.source().id(), e.target().id()]),
  };
  container.dataset.nodes = String(g.nodes.length);
  container.dataset.edges = String(g.edges.length);
  // Resolves with the time from the start of the layout to the first painted frame.
  const painted = new Promise<number>((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now() - t0))));
  return { cy, ms, painted, destroy: () => cy.destroy() };
}

/** A synthetic flow graph of about n nodes (a residual chain per column with att/mlp leaves) for the render benchmark. */
export function syntheticGraph(n: number, layers = 26): GGraph {
  const nodes: GNode[] = [];
  const edges: GEdge[] = [];
  const chains = Math.max(1, Math.ceil(n / (layers * 3)));
  let made = 0;
  for (let c = 0; c < chains && made < n; c++) {
    for (let l = 0; l < layers && made < n; l++) {
      const r = `bench/${l}-res/${c}`;
      nodes.push({ uid: r, layer: l, module: "RES", index: c, category: "TRANSLATED" });
      made++;
      if (l > 0) edges.push({ source: `bench/${l - 1}-res/${c}`, target: r, similarity: 0.5 + ((c * 7 + l) % 10) / 20 });
      for (const m of ["ATT", "MLP"]) {
        if (made >= n) break;
        const u = `bench/${l}-${m.toLowerCase()}/${c}`;
        nodes.push({ uid: u, layer: l, module: m, index: c });
        edges.push({ source: u, target: r, similarity: 0.2 + ((c + l) % 5) / 10 });
        made++;
      }
    }
  }
  return { nodes, edges, seeds: [] };
}

function esc(t: string): string {
  return t.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** The drawn graph as a standalone SVG document (positions as laid out; node shapes and edge dashes say what colour
 * says on screen: squares are att, diamonds mlp, circles res, double boxes concept families). */
export function graphToSvg(cy: cytoscape.Core, title: string): string {
  const els = cy.elements().filter((e) => !e.hasClass("axis") || e.isNode());
  const bb = els.boundingBox({});
  const pad = 40;
  const w = Math.ceil(bb.w + 2 * pad);
  const hgt = Math.ceil(bb.h + 2 * pad + 20);
  const X = (x: number) => (x - bb.x1 + pad).toFixed(1);
  const Y = (y: number) => (y - bb.y1 + pad + 20).toFixed(1);
  const out: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${hgt}" viewBox="0 0 ${w} ${hgt}" font-family="system-ui, sans-serif" font-size="9">`,
    `<title>${esc(title)}</title>`, `<rect width="100%" height="100%" fill="#fff"/>`, `<text x="${pad}" y="16" font-size="12" font-weight="bold">${esc(title)}</text>`,
    `<defs><marker id="a" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="5" markerHeight="5" orient="auto"><path d="M0,0 L10,5 L0,10 Z" fill="#333"/></marker></defs>`];
  cy.edges().forEach((e) => {
    const a = e.source().position();
    const b = e.target().position();
    const dx = b.x - a.x;
    const dy = b.y - a.y;
    const len = Math.hypot(dx, dy) || 1;
    const r = 11;
    out.push(`<line x1="${X(a.x + (dx / len) * r)}" y1="${Y(a.y + (dy / len) * r)}" x2="${X(b.x - (dx / len) * r)}" y2="${Y(b.y - (dy / len) * r)}" stroke="${e.data("c")}" stroke-width="${e.data("w")}" marker-end="url(#a)"><title>${esc(`${e.data("source")} → ${e.data("target")}: ${Number(e.data("sim")).toFixed(3)} (${e.data("methods")})`)}</title></line>`);
    if (e.data("mlabel")) out.push(`<text x="${X((a.x + b.x) / 2)}" y="${Y((a.y + b.y) / 2)}" fill="#333">${esc(e.data("mlabel"))}</text>`);
  });
  cy.nodes().forEach((n) => {
    const p = n.position();
    if (n.hasClass("axis")) {
      out.push(`<text x="${X(p.x)}" y="${Y(p.y)}" text-anchor="middle" font-size="12" font-weight="bold" fill="#777">${esc(n.data("text"))}</text>`);
      return;
    }
    const id: string = n.id();
    const fill = n.data("colour");
    const stroke = n.data("seed") ? `stroke="#111" stroke-width="3"` : `stroke="#333" stroke-width="1"`;
    let shape: string;
    if (n.hasClass("family")) shape = `<rect x="${X(p.x - 17)}" y="${Y(p.y - 11)}" width="34" height="22" rx="5" fill="#fff" stroke="#111" stroke-width="3"/>`;
    else if (/-att\//.test(id)) shape = `<rect x="${X(p.x - 8)}" y="${Y(p.y - 8)}" width="16" height="16" fill="${fill}" ${stroke}/>`;
    else if (/-mlp\//.test(id)) shape = `<path d="M${X(p.x)},${Y(p.y - 10)} L${X(p.x + 10)},${Y(p.y)} L${X(p.x)},${Y(p.y + 10)} L${X(p.x - 10)},${Y(p.y)} Z" fill="${fill}" ${stroke}/>`;
    else shape = `<circle cx="${X(p.x)}" cy="${Y(p.y)}" r="9" fill="${fill}" ${stroke}/>`;
    out.push(`<g><title>${esc(id)}</title>${shape}<text x="${X(p.x + 11)}" y="${Y(p.y - 9)}" fill="#222">${esc(n.data("short"))}</text></g>`);
  });
  out.push("</svg>");
  return out.join("\n");
}
