// Flow graph: `lineage` drawn with layers as rows and res/att/mlp as columns; the sliders refetch in place
// (the URL follows, so the view can be pasted); downloads use the documented /export/lineage endpoint.
import { download, request } from "../api";
import { h, notice } from "../dom";
import { drawFlowGraph, type Drawn } from "../flowgraph";
import type { LineageDirection } from "../gql/graphql";
import { CATEGORY_COLOURS, MODULE_COLOURS } from "../layout";
import { Lineage } from "../queries";
import { formatHash, num } from "../router";
import type { ViewContext } from "./types";

export interface GraphParams { direction: LineageDirection; depth: number | null; minSimilarity: number; moduleMinSimilarity: number; topK: number }

export function graphParams(p: URLSearchParams): GraphParams {
  const d = (p.get("direction") ?? "upstream").toUpperCase();
  return {
    direction: (["UPSTREAM", "DOWNSTREAM", "BOTH"].includes(d) ? d : "UPSTREAM") as LineageDirection,
    depth: p.get("depth") ? num(p, "depth", 6) : null,
    minSimilarity: num(p, "minSimilarity", 0.5),
    moduleMinSimilarity: num(p, "moduleMinSimilarity", 0.15),
    topK: num(p, "topK", 1),
  };
}

export function paramsToQuery(g: GraphParams): Record<string, string | number | null> {
  return { direction: g.direction.toLowerCase(), depth: g.depth, minSimilarity: g.minSimilarity, moduleMinSimilarity: g.moduleMinSimilarity, topK: g.topK };
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
  let drawn: Drawn | null = null;
  ctx.cleanups.push(() => drawn?.destroy());
  let fetches = 0;

  async function load(): Promise<void> {
    status.replaceChildren(notice("loading", "Loading the flow graph…"));
    canvas.setAttribute("aria-busy", "true");
    try {
      const data = await request(Lineage, { uid, ...g }, { signal: ctx.signal });
      const lin = data.lineage;
      fetches += 1;
      drawn?.destroy();
      canvas.replaceChildren();
      drawn = drawFlowGraph(canvas, { ...lin, nodes: lin.nodes.map((n) => ({ ...n })) }, (u) => ctx.navigate(`#/feature/${encodeURIComponent(u)}`));
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
      dl.replaceChildren(link("json", "⬇ JSON"), " ", link("circuit-tracer", "⬇ circuit-tracer JSON"), " ",
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
    history.replaceState(null, "", formatHash("graph", uid, paramsToQuery(g)));
    void load();
  }
  await load();
}
