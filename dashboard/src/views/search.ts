// Search: full-text (labels + top contexts, `search`) narrowed by filters and paged with `featuresConnection`.
// With text, the best 1000 full-text hits become a `uid: {in: [...]}` filter; without text, filters alone.
import { request } from "../api";
import { fmt, featureLink, h, notice } from "../dom";
import type { FeatureWhere } from "../gql/graphql";
import { AtlasNames, FeaturesPage, SearchText } from "../queries";
import { formatHash, num } from "../router";
import type { ViewContext } from "./types";

export const PAGE = 25;
const TEXT_HITS = 1000;

export function buildWhere(p: URLSearchParams, uids: string[] | null): FeatureWhere {
  const and: FeatureWhere[] = [];
  if (p.get("atlas")) and.push({ atlas: { eq: p.get("atlas")! } });
  if (p.get("layer")) and.push({ layer: { eq: num(p, "layer", 0) } });
  if (p.get("module")) and.push({ module: { eq: p.get("module")!.toUpperCase() as "RES" | "ATT" | "MLP" } });
  if (p.get("category")) and.push({ category: { eq: p.get("category")!.toUpperCase() as "TRANSLATED" | "PROCESSED" | "NEWBORN" | "UNEXPLAINED" } });
  for (const s of ["sRes", "sAtt", "sMlp"] as const) {
    if (p.get(`${s}Min`)) and.push({ [s]: { gte: num(p, `${s}Min`, 0) } });
    if (p.get(`${s}Max`)) and.push({ [s]: { lte: num(p, `${s}Max`, 1) } });
  }
  if (uids) and.push({ uid: { in: uids } });
  return { AND: and };
}

export async function searchView(root: HTMLElement, ctx: ViewContext, p: URLSearchParams): Promise<void> {
  const names = await ctx.load(request(AtlasNames, {}));
  const field = (_name: string, label: string, input: HTMLElement) => h("label", null, label, input);
  const inp = (name: string, attrs: Record<string, string> = {}) => h("input", { name, value: p.get(name) ?? "", ...attrs });
  const sel = (name: string, options: string[]) => h("select", { name }, h("option", { value: "" }, "any"), ...options.map((o) => h("option", { value: o, selected: p.get(name) === o }, o)));
  const form = h("form", { class: "search", role: "search" },
    field("q", "Text", inp("q", { placeholder: "a word from a label or context", type: "search", autofocus: "true" })),
    field("atlas", "Atlas", sel("atlas", names.atlases.map((a) => a.name))),
    field("layer", "Layer", inp("layer", { type: "number", min: "0", style: "width:5em" })),
    field("module", "Module", sel("module", ["res", "att", "mlp"])),
    field("category", "Category", sel("category", ["translated", "processed", "newborn", "unexplained"])),
    ...(["sRes", "sAtt", "sMlp"] as const).map((s) => field(`${s}Min`, `${s} ≥`, inp(`${s}Min`, { type: "number", step: "0.05", min: "-1", max: "1", style: "width:5em" }))),
    h("button", { type: "submit" }, "Search"),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const fd = new FormData(form);
    const q: Record<string, string> = {};
    for (const [k, v] of fd.entries()) if (String(v).trim()) q[k] = String(v).trim();
    ctx.navigate(formatHash("search", null, q));
  });
  root.append(h("h2", null, "Search features"), form);
  if (!names.atlases.length) {
    root.append(notice("empty", "No atlas yet.", "Build one with `atlas demo --profile tiny --no-serve` or `atlas ingest atlas.toml`."));
    return;
  }
  const text = p.get("q")?.trim() ?? "";
  if (!text && ![...p.keys()].some((k) => k !== "after")) {
    root.append(notice("info", "Type a word (e.g. a token the feature fires on) or pick filters, then Search."));
    return;
  }
  let uids: string[] | null = null;
  if (text) {
    const hits = await ctx.load(request(SearchText, { text, atlas: p.get("atlas") || null, limit: TEXT_HITS }));
    uids = hits.search.map((x) => x.feature.uid);
    if (!uids.length) {
      root.append(notice("empty", `No feature's label or contexts match “${text}”.`, "Try another word, or clear the text and browse with filters."));
      return;
    }
  }
  const page = await ctx.load(request(FeaturesPage, { first: PAGE, after: p.get("after") || null, where: buildWhere(p, uids), sort: [{ layer: "ASC" }, { module: "ASC" }, { index: "ASC" }] }));
  const conn = page.featuresConnection;
  if (!conn.edges.length) {
    root.append(notice("empty", "No features match these filters.", "Loosen a filter (score ranges, layer, category)."));
    return;
  }
  root.append(
    h("p", { class: "count" }, `${conn.totalCount.toLocaleString("en")} features match${uids ? ` (of the best ${TEXT_HITS} text hits)` : ""}.`),
    h("table", { class: "results" },
      h("thead", null, h("tr", null, ...["feature", "label", "category", "sRes", "sAtt", "sMlp", "frequency"].map((c) => h("th", null, c)))),
      h("tbody", null, ...conn.edges.map(({ node: f }) => h("tr", null, h("td", null, featureLink(f.uid)), h("td", null, f.label ?? ""), h("td", null, f.category?.toLowerCase() ?? f.module.toLowerCase()),
        h("td", null, fmt(f.sRes, 2)), h("td", null, fmt(f.sAtt, 2)), h("td", null, fmt(f.sMlp, 2)), h("td", null, f.frequency === null || f.frequency === undefined ? "–" : f.frequency.toExponential(1)))))),
  );
  const nav = h("div", { class: "pager" });
  if (p.get("after")) nav.append(h("button", { onclick: () => history.back() }, "← previous"));
  if (conn.pageInfo.hasNextPage && conn.pageInfo.endCursor) {
    const next = new URLSearchParams(p);
    next.set("after", conn.pageInfo.endCursor);
    nav.append(h("a", { href: formatHash("search", null, next), class: "button", rel: "next" }, "next page →"));
  }
  root.append(nav);
}
