// Path / circuit: the strongest path between two features (`path`) and the subgraph connecting two or more (`circuit`).
import { request } from "../api";
import { fmt, h, notice } from "../dom";
import { drawFlowGraph } from "../flowgraph";
import { CircuitQuery, PathQuery } from "../queries";
import { formatHash, num } from "../router";
import { PICKS } from "./feature";
import { legend } from "./graph";
import type { ViewContext } from "./types";

export function parseUids(s: string): string[] {
  return [...new Set(s.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean))];
}

/** Tall enough that every layer row stays readable (a path is one long column). */
function graphHeight(nodes: { layer: number }[]): number {
  return Math.max(320, Math.min(900, new Set(nodes.map((n) => n.layer)).size * 80 + 140));
}

export async function pathView(root: HTMLElement, ctx: ViewContext, p: URLSearchParams): Promise<void> {
  const uids = parseUids(p.get("uids") ?? "");
  sessionStorage.setItem(PICKS, JSON.stringify(uids));
  const minSimilarity = num(p, "minSimilarity", 0.3);
  const maxDepth = num(p, "maxDepth", 12);
  const ta = h("textarea", { name: "uids", rows: "3", cols: "60", placeholder: "two or more uids, e.g. smollm2-demo/8-res/3, smollm2-demo/11-res/119" }, uids.join("\n"));
  const form = h("form", { class: "controls" },
    h("label", null, "features", ta),
    h("label", null, "minSimilarity", h("input", { name: "minSimilarity", type: "number", step: "0.05", min: "-1", max: "1", value: minSimilarity, style: "width:5em" })),
    h("label", null, "maxDepth", h("input", { name: "maxDepth", type: "number", min: "1", max: "30", value: maxDepth, style: "width:4em" })),
    h("button", { type: "submit" }, "Find path / circuit"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const fd = new FormData(form);
    ctx.navigate(formatHash("path", null, { uids: parseUids(String(fd.get("uids"))).join(","), minSimilarity: String(fd.get("minSimilarity")), maxDepth: String(fd.get("maxDepth")) }));
  });
  root.append(h("h2", null, "Path and circuit"), form);
  if (uids.length < 2) {
    root.append(notice("info", "Give two or more features: type their uids, or open features one after another and use “Path / circuit” on each.", "Two features: the strongest path from the earlier to the later and their circuit; more: the circuit connecting them."));
    return;
  }
  const open = (u: string) => ctx.navigate(`#/feature/${encodeURIComponent(u)}`);
  if (uids.length === 2) {
    const data = await ctx.load(request(PathQuery, { from: uids[0], to: uids[1], minSimilarity, maxDepth }));
    const r = data.path;
    const sec = h("section", { class: "path" }, h("h3", null, "Strongest path"));
    root.append(sec);
    if (r.__typename === "Path") {
      sec.append(h("p", null, `score (product of similarities) ${fmt(r.score)}, weakest link ${fmt(r.weakestLink)}, ${r.graph.nodes.length} features.`));
      const c = h("div", { class: "cy small", "data-testid": "path-graph", style: `height:${graphHeight(r.graph.nodes)}px` });
      sec.append(c);
      const d = drawFlowGraph(c, r.graph, open);
      ctx.cleanups.push(d.destroy);
    } else if (r.__typename === "FeatureNotFound" || r.__typename === "InvalidInput") {
      sec.append(notice("error", r.message, r.__typename === "FeatureNotFound" ? "Check the uid or find it with Search." : "Lower minSimilarity or raise maxDepth; the path goes from an earlier layer to a later one."));
    }
  }
  const data = await ctx.load(request(CircuitQuery, { uids, minSimilarity, maxDepth }));
  const r = data.circuit;
  const sec = h("section", { class: "circuit" }, h("h3", null, "Circuit"));
  root.append(sec);
  if (r.__typename === "FlowGraph") {
    sec.append(h("p", null, `${r.nodes.length} features and ${r.edges.length} links on paths between the given features (links ≥ ${minSimilarity}).`));
    const c = h("div", { class: "cy", "data-testid": "circuit-graph", style: `height:${graphHeight(r.nodes)}px` });
    sec.append(c, legend());
    const d = drawFlowGraph(c, r, open);
    ctx.cleanups.push(d.destroy);
  } else if (r.__typename === "FeatureNotFound" || r.__typename === "InvalidInput") {
    sec.append(notice("error", r.message, "Check the uids, lower minSimilarity or raise maxDepth."));
  }
}
