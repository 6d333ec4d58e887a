// Flow graph: `lineage` drawn with layers as rows and res/att/mlp as columns; the sliders refetch in place
// (the URL follows, so the view can be pasted); downloads use the documented /export/lineage endpoint.
import { download, request, saveBlob } from "../api";
import { h, notice } from "../dom";
import { collapse, conceptFamilies, type Family } from "../families";
import { drawFlowGraph, type Drawn, edgeMethods, type GGraph, graphToSvg } from "../flowgraph";
import type { LineageDirection } from "../gql/graphql";
import { CATEGORY_COLOURS, MODULE_COLOURS } from "../layout";
import { Lineage } from "../queries";
import { formatHash, num } from "../router";
import type { ViewContext } from "./types";

export interface GraphParams { direction: LineageDirection; depth: number | null; minSimilarity: number; moduleMinSimilarity: number; topK: number; familyMin?: number; collapsed?: string | null }

export function graphParams(p: URLSearchParams): GraphParams {
  const d = (p.get("direction") ?? "upstream").toUpperCase();
  return {
    direction: (["UPSTREAM", "DOWNSTREAM", "BOTH"].includes(d) ? d : "UPSTREAM") as LineageDirection,
    depth: p.get("depth") ? num(p, "depth", 6) : null,
    minSimilarity: num(p, "minSimilarity", 0.5),
    moduleMinSimilarity: num(p, "moduleMinSimilarity", 0.15),
    topK: num(p, "topK", 1),
    ...(p.get("familyMin") ? { familyMin: num(p, "familyMin", 0.5) } : {}),
    ...(p.get("collapsed") ? { collapsed: p.get("collapsed") } : {}),
  };
}

export function paramsToQuery(g: GraphParams): Record<string, string | number | null> {
  return { direction: g.direction.toLowerCase(), depth: g.depth, minSimilarity: g.minSimilarity, moduleMinSimilarity: g.moduleMinSimilarity, topK: g.topK };
}

/** The view's URL: the lineage parameters plus the family state (threshold, which families are collapsed). */
export function viewQuery(g: GraphParams): Record<string, string | number | null> {
  return { ...paramsToQuery(g), familyMin: g.familyMin ?? null, collapsed: g.collapsed || null };
}

/** `collapsed` in the URL: "all", or the indices (in the family list's order) of the collapsed families. */
export function collapsedSet(families: Family[], collapsed: string | null | undefined): Set<string> {
  if (!collapsed) return new Set();
  if (collapsed === "all") return new Set(families.map((f) => f.id));
  const idx = new Set(collapsed.split(",").map(Number));
  return new Set(families.filter((_, i) => idx.has(i)).map((f) => f.id));
}

export function exportHref(uid: string, g: GraphParams, format: "json" | "circuit-tracer"): string {
  const q = new URLSearchParams({ uid, format });
  for (const [k, v] of Object.entries(paramsToQuery(g))) if (v !== null) q.set(k, String(v));
  return `/export/lineage?${q}`;
}

export function legend(): HTMLElement {
  return h("div", { class: "legend" },
    ...Object.entries(CATEGORY_COLOURS).map(([k, c]) => h("span", null, h("i", { style: `background:${c}` }), k === "NONE" ? "res (no category)" : `res ${k.toLowerCase()}`)),
    ...Object.entries(MODULE_COLOURS).filter(([k]) => k !== "RES").map(([k, c]) => h("span", null, h("i", { style: `background:${c}` }), k.toLowerCase())),
    h("span", null, "edges: wider and darker = more similar; rows = layers (later on top); columns = att | res | mlp"));
}

export async function graphView(root: HTMLElement, ctx: ViewContext, uid: string, p: URLSearchParams): Promise<void> {
  const g = graphParams(p);
  const status = h("div", { class: "graph-status", "aria-live": "polite" });
  const canvas = h("div", { class: "cy", "data-testid": "flow-graph", "data-fetches": "0" });
  const dl = h("span", { class: "downloads" });
  const slider = (key: "minSimilarity" | "moduleMinSimilarity", label: string) => {
    const out = h("output", null, g[key].toFixed(2));
    const input = h("input", { type: "range", name: key, min: "0", max: "1", step: "0.05", value: g[key] });
    input.addEventListener("input", () => (out.textContent = Number(input.value).toFixed(2)));
    input.addEventListener("change", () => update({ [key]: Number(input.value) }));
    return h("label", null, label, input, out);
  };
  const numberInput = (key: "topK" | "depth", label: string, min: number, max: number) => {
    const input = h("input", { type: "number", name: key, min: String(min), max: String(max), value: g[key] ?? "", placeholder: key === "depth" ? "all" : "", style: "width:4.5em" });
    input.addEventListener("change", () => update({ [key]: input.value === "" ? null : Number(input.value) }));
    return h("label", null, label, input);
  };
  const dir = h("select", { name: "direction" }, ...["UPSTREAM", "DOWNSTREAM", "BOTH"].map((d) => h("option", { value: d, selected: d === g.direction }, d.toLowerCase())));
  dir.addEventListener("change", () => update({ direction: dir.value as LineageDirection }));
  root.append(
    h("h2", null, "Flow graph of ", h("a", { href: `#/feature/${encodeURIComponent(uid)}` }, uid)),
    h("form", { class: "controls", onsubmit: (e: Event) => e.preventDefault() },
      h("label", null, "direction", dir), numberInput("depth", "depth", 1, 64), slider("minSimilarity", "minSimilarity"), slider("moduleMinSimilarity", "moduleMinSimilarity"), numberInput("topK", "topK", 1, 8), dl),
    status, canvas, legend());
  const methodsNote = h("p", { class: "hint methods-note" });
  const famBox = h("details", { class: "families", "data-testid": "families", open: true });
  root.append(methodsNote, famBox);
  let drawn: Drawn | null = null;
  ctx.cleanups.push(() => drawn?.destroy());
  let fetches = 0;
  let full: GGraph | null = null;
  let families: Family[] = [];

  const exporter = (format: "svg" | "png") => h("a", { href: "#", "data-format": format, role: "button", onclick: (ev: Event) => {
    ev.preventDefault();
    if (!drawn) return;
    const name = `${uid.replaceAll("/", "_")}.flow-graph.${format}`;
    if (format === "svg") saveBlob(new Blob([graphToSvg(drawn.cy, `flow graph of ${uid}`)], { type: "image/svg+xml" }), name);
    else saveBlob(drawn.cy.png({ output: "blob", full: true, scale: 2, bg: "#ffffff" }) as unknown as Blob, name);
  } }, format === "svg" ? "⬇ SVG" : "⬇ PNG");

  function redraw(): void {
    if (!full) return;
    const shown = collapse(full, families, collapsedSet(families, g.collapsed));
    drawn?.destroy();
    canvas.replaceChildren();
    drawn = drawFlowGraph(canvas, shown, (u) => {
      if (u.startsWith("family:")) {
        const i = families.findIndex((f) => f.id === u);
        toggle(i, false);
      } else ctx.navigate(`#/feature/${encodeURIComponent(u)}`);
    });
    const d = drawn;
    const w = window as unknown as Record<string, unknown>;
    w.__atlasGraphSvg = () => graphToSvg(d.cy, `flow graph of ${uid}`);
    w.__atlasGraphPng = () => d.cy.png({ full: true, scale: 2, bg: "#ffffff" });
    canvas.dataset.families = String(families.length);
    canvas.dataset.collapsed = String(collapsedSet(families, g.collapsed).size);
    renderFamilies();
  }

  function setCollapsed(ids: Set<string>): void {
    g.collapsed = ids.size === 0 ? null : ids.size === families.length ? "all" : families.map((f, i) => (ids.has(f.id) ? i : -1)).filter((i) => i >= 0).join(",");
    history.replaceState(null, "", formatHash("graph", uid, viewQuery(g)));
    redraw();
  }

  function toggle(i: number, collapseIt: boolean): void {
    if (i < 0) return;
    const ids = collapsedSet(families, g.collapsed);
    if (collapseIt) ids.add(families[i].id); else ids.delete(families[i].id);
    setCollapsed(ids);
  }

  function renderFamilies(): void {
    const ids = collapsedSet(families, g.collapsed);
    const thr = h("input", { type: "range", name: "familyMin", min: "0", max: "1", step: "0.05", value: g.familyMin ?? 0.5 });
    thr.addEventListener("change", () => { g.familyMin = Number(thr.value); g.collapsed = null; history.replaceState(null, "", formatHash("graph", uid, viewQuery(g))); families = full ? conceptFamilies(full, g.familyMin, 0.5) : []; redraw(); });
    famBox.replaceChildren(h("summary", null, h("h3", null, `Concept families (${families.length})`)),
      h("p", { class: "hint" }, "A family is a connected component of the links at or above the threshold, merged with other components whose labels are alike (cosine ≥ 0.5 of their bag-of-words label embeddings). Collapse one to draw it as a single node; click a collapsed node to expand it."),
      h("div", { class: "family-controls" }, h("label", null, "family link threshold ", thr, ` ${(g.familyMin ?? 0.5).toFixed(2)}`), " ",
        h("button", { type: "button", "data-key": "c", onclick: () => setCollapsed(new Set(families.map((f) => f.id))) }, "collapse all (c)"), " ",
        h("button", { type: "button", "data-key": "e", onclick: () => setCollapsed(new Set()) }, "expand all (e)")),
      families.length ? h("ul", { class: "family-list" }, ...families.map((f, i) => {
        const box = h("input", { type: "checkbox", checked: ids.has(f.id), "aria-label": `collapse family ${f.name}` });
        box.addEventListener("change", () => toggle(i, box.checked));
        return h("li", { "data-family": f.id }, h("label", null, box, ` ${f.name} — ${f.size} features, around layer ${f.layer}`));
      })) : h("p", null, h("em", null, "No family of two or more features at this threshold.")));
  }

  async function load(): Promise<void> {
    status.replaceChildren(notice("loading", "Loading the flow graph…"));
    canvas.setAttribute("aria-busy", "true");
    try {
      const data = await request(Lineage, { uid, ...g }, { signal: ctx.signal });
      const lin = data.lineage;
      fetches += 1;
      full = { ...lin, nodes: lin.nodes.map((n) => ({ ...n })) };
      families = conceptFamilies(full, g.familyMin ?? 0.5, 0.5);
      redraw();
      const methods = edgeMethods(full);
      methodsNote.textContent = methods.length > 1 ? `Links found by ${methods.join(", ")}: each link is labelled with the matchers that found it.` : `Every link here was found by the ${methods[0] ?? "cosine"} matcher (hover a link to see it).`;
      canvas.dataset.fetches = String(fetches);
      status.replaceChildren(h("span", null, `${lin.nodes.length} features, ${lin.edges.length} links, layers ${lin.lStart ?? "?"}–${lin.lEnd ?? "?"}. Click a feature to open it; hover for its label and scores.`),
        lin.truncated ? notice("info", "Truncated: the graph hit the server's node cap.", "Raise minSimilarity or lower depth/topK.") : "",
        lin.nodes.length <= 1 ? notice("empty", "No links at these thresholds.", "Lower minSimilarity (0 disables the cut) or pick direction both.") : "");
      const link = (format: "json" | "circuit-tracer", text: string) => {
        const href = exportHref(uid, g, format);
        const name = `${uid.replaceAll("/", "_")}${format === "json" ? "" : ".circuit-tracer"}.json`;
        return h("a", { href, download: name, "data-format": format, onclick: (ev: Event) => {
          ev.preventDefault();
          download(href, name).catch((e) => ctx.showError(status, e));
        } }, text);
      };
      dl.replaceChildren(link("json", "⬇ JSON"), " ", link("circuit-tracer", "⬇ circuit-tracer JSON"), " ", exporter("svg"), " ", exporter("png"), " ",
        h("a", { href: formatHash("steer", null, { atlas: uid.split("/")[0], seeds: `${uid}:4`, ...paramsToQuery(g) }) }, "steer with this graph"));
    } catch (e) {
      if ((e as Error).name === "AbortError") return;
      ctx.showError(status, e);
    } finally {
      canvas.removeAttribute("aria-busy");
    }
  }

  function update(change: Partial<GraphParams>): void {
    Object.assign(g, change);
    g.collapsed = null; // another graph: the family indices change
    history.replaceState(null, "", formatHash("graph", uid, viewQuery(g)));
    void load();
  }
  await load();
}
