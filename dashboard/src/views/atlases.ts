// Atlases overview: each atlas with, as SVG pictures readable without colour: per-layer medians of sRes/sAtt/sMlp
// against their null band and the seed ceiling (the flow table `atlas demo` prints), category shares per layer
// (the paper's Fig. 2/3 view), EV / L0 / dead per SAE, the sRes/sAtt/sMlp histograms, and its largest lineages as
// entry points.
import { request } from "../api";
import { featureLink, fmt, h, notice } from "../dom";
import type { AtlasesOverviewQuery } from "../gql/graphql";
import { CATEGORY_COLOURS } from "../layout";
import { AtlasesOverview, AtlasNames } from "../queries";
import { formatHash } from "../router";
import { histogram, layerChart, legendSvg, type Pattern, stackedBars, valueBars } from "../svg";
import type { ViewContext } from "./types";

const CATS = ["translated", "processed", "newborn", "unexplained"] as const;
const CAT_PATTERNS: Pattern[] = ["solid", "hatch", "dots", "cross", "lines"];
type AtlasT = AtlasesOverviewQuery["atlases"][number];

function fig(panelName: string, hasData: boolean, picture: Node, caption: string, legend?: Node): HTMLElement {
  return h("figure", { "data-panel": panelName, "data-has-data": String(hasData) }, picture, legend ?? "", h("figcaption", null, caption));
}

/** Per layer, the median top-1 cosine of the res SAE against each predecessor with its null band, plus the ceiling. */
export function flowFigures(a: AtlasT): HTMLElement[] {
  const res = a.saes.filter((x) => x.module === "RES").sort((x, y) => x.layer - y.layer);
  const layers = res.map((x) => x.layer);
  const out: HTMLElement[] = [];
  const spec: [string, "RES" | "ATT" | "MLP", "circle" | "square" | "triangle", string | undefined][] = [
    ["sRes (vs res(L-1))", "RES", "circle", undefined], ["sAtt (vs att(L))", "ATT", "square", "5 3"], ["sMlp (vs mlp(L))", "MLP", "triangle", "2 2"]];
  for (const [name, pred, marker, dash] of spec) {
    const ctl = res.map((x) => x.controls.find((c) => c.predecessor === pred) ?? null);
    if (!ctl.some((c) => c?.scoreMedian !== null && c?.scoreMedian !== undefined)) continue;
    const values = ctl.map((c) => c?.scoreMedian ?? null);
    const band = ctl.map((c) => (c && c.nullMedian !== null && c.nullMedian !== undefined && c.nullP999 !== null && c.nullP999 !== undefined ? ([c.nullMedian, c.nullP999] as [number, number]) : null));
    const ceiling = pred === "RES" ? res.map((x) => x.ceilingMedian ?? null) : undefined;
    const items = [{ name: `median ${name.split(" ")[0]}`, marker, dash }, { name: "null: median – p99.9", band: true }, ...(ceiling?.some((c) => c !== null) ? [{ name: "seed ceiling (median)", ceiling: true }] : [])];
    out.push(fig(`flow-${pred.toLowerCase()}`, true,
      layerChart({ layers, series: [{ name, values, marker, dash, band }], ceiling, label: `median ${name} per layer of ${a.name}`, yTitle: "top-1 cosine", testid: `flow-chart-${pred.toLowerCase()}` }),
      `Median ${name} of the residual features per layer, against a randomly rotated predecessor decoder (the null band)${pred === "RES" ? " and a second seed of the same hook (the ceiling: what these SAEs can show)" : ""}.`,
      legendSvg(items)));
  }
  return out;
}

export function entryPoints(a: AtlasT): HTMLElement {
  const rows = a.entryPoints ?? [];
  return h("div", { "data-panel": "entry-points", "data-has-data": String(rows.length > 0) }, h("h3", null, "Largest lineages (entry points)"),
    rows.length ? h("table", { class: "entry-points" }, h("thead", null, h("tr", null, ...["feature", "label", "features in its graph", "residual layers", ""].map((c) => h("th", null, c)))),
      h("tbody", null, ...rows.map((e) => h("tr", null, h("td", null, featureLink(e.uid)), h("td", null, e.feature?.label ?? ""), h("td", null, e.size), h("td", null, e.length),
        h("td", null, h("a", { href: formatHash("graph", e.uid, { direction: "upstream" }) }, "flow graph"))))))
      : h("p", null, h("em", null, "Not computed yet (stored with the feature pages: `atlas demo` does it).")));
}

export async function atlasesView(root: HTMLElement, ctx: ViewContext, p: URLSearchParams): Promise<void> {
  const only = p.get("atlas");
  const [names, data] = await ctx.load(Promise.all([request(AtlasNames, {}), request(AtlasesOverview, { bins: 20, name: only })]));
  if (names.atlases.length > 1 || only) {
    root.append(h("nav", { class: "atlas-list" }, "Atlases: ", h("a", { href: formatHash("atlases"), class: only ? "" : "active" }, "all"),
      ...names.atlases.map((a) => [" · ", h("a", { href: formatHash("atlases", null, { atlas: a.name }), class: a.name === only ? "active" : "" }, a.name)]).flat()));
  }
  if (only && !data.atlases.length) {
    root.append(notice("error", `No atlas named ${only}.`, "Pick one above, or build it with `atlas ingest atlas.toml`."));
    return;
  }
  if (!data.atlases.length) {
    root.append(notice("empty", "No atlas yet.", "Build one, then reload:", h("pre", null, "atlas demo --profile tiny --no-serve    # a one-minute atlas\natlas ingest path/to/atlas.toml         # or your own SAEs")));
    return;
  }
  for (const a of data.atlases) {
    const sec = h("section", { class: "atlas", "data-atlas": a.name },
      h("h2", null, h("a", { href: formatHash("atlases", null, { atlas: a.name }) }, a.name), " ", a.complete ? h("span", { class: "badge ok" }, "complete") : h("span", { class: "badge warn", title: "Still being ingested (or interrupted): counts are partial. Resume with `atlas ingest --resume`." }, "incomplete: being ingested")),
      h("p", null, `model ${a.model ?? "?"} · d_model ${a.dModel ?? "?"} · layers ${a.minLayer ?? "?"}–${a.maxLayer ?? "?"} · ${a.nSaes} SAEs · ${a.nFeatures.toLocaleString("en")} features · `,
        h("a", { href: formatHash("search", null, { atlas: a.name }) }, "browse features"), " · ", h("a", { href: formatHash("steer", null, { atlas: a.name }) }, "steer")),
    );
    const table = h("table", { class: "saes" },
      h("thead", null, h("tr", null, ...["SAE", "layer", "module", "width", "d_in", "EV", "L0", "dead", "source"].map((c) => h("th", null, c)))),
      h("tbody", null, ...a.saes.map((s) => h("tr", null, h("td", null, s.key), h("td", null, s.layer), h("td", null, s.module.toLowerCase()), h("td", null, s.dSae ?? "–"), h("td", null, s.dIn ?? "–"),
        h("td", null, fmt(s.explainedVariance)), h("td", null, fmt(s.l0, 1)), h("td", null, s.deadFraction === null || s.deadFraction === undefined ? "–" : `${(100 * s.deadFraction).toFixed(1)}%`), h("td", { class: "src" }, s.source ?? "–")))),
    );
    const charts = h("div", { class: "charts" });
    // Charts first; a long SAE table folds away (click to open).
    sec.append(entryPoints(a), charts, h("details", { open: a.saes.length <= 12 }, h("summary", null, h("h3", null, `SAEs (${a.saes.length}): explained variance, L0, dead fraction`)), table));
    root.append(sec);
    charts.append(...flowFigures(a));
    const rows = a.layerCategories;
    if (rows.length) {
      const names = [...CATS, "uncategorised"];
      charts.append(fig("categories", rows.some((r) => r.total > 0),
        stackedBars({ rows: rows.map((r) => ({ label: String(r.layer), parts: [...CATS.map((c) => (r.total ? r[c] / r.total : 0)), r.total ? r.uncategorised / r.total : 0] })), names, patterns: CAT_PATTERNS, colours: names.map((c) => CATEGORY_COLOURS[c === "uncategorised" ? "NONE" : c.toUpperCase()]), label: `category shares per layer of ${a.name}`, xTitle: "layer", testid: "category-chart" }),
        "Residual features per layer by category (share of the layer's features; uncategorised = no res(L-1) SAE, so no category).",
        legendSvg(names.map((n, i) => ({ name: n, pattern: CAT_PATTERNS[i], colour: CATEGORY_COLOURS[n === "uncategorised" ? "NONE" : n.toUpperCase()] })))));
    }
    const label = (x: AtlasT["saes"][number]) => `${x.layer}-${x.module.toLowerCase()}`;
    const has = (k: "explainedVariance" | "l0" | "deadFraction") => a.saes.some((x) => x[k] !== null && x[k] !== undefined);
    if (has("explainedVariance")) {
      charts.append(fig("sae-ev", true, valueBars({ items: a.saes.map((x) => ({ label: label(x), value: x.explainedVariance ?? null })), label: `held-out explained variance per SAE of ${a.name}`, yTitle: "EV", yMax: 1, fmt: (v) => v.toFixed(2), reference: { value: 0.7, text: "bar 0.7" }, testid: "ev-chart" }),
        "Held-out explained variance per SAE (the quality bar: ≥ 0.7)."));
    }
    if (has("l0")) {
      charts.append(fig("sae-l0", true, valueBars({ items: a.saes.map((x) => ({ label: label(x), value: x.l0 ?? null })), label: `L0 per SAE of ${a.name}`, yTitle: "L0", fmt: (v) => (v >= 10 ? v.toFixed(0) : v.toFixed(1)), testid: "l0-chart" }),
        "L0: active latents per held-out token (TopK SAEs: k)."));
    }
    if (has("deadFraction")) {
      charts.append(fig("sae-dead", true, valueBars({ items: a.saes.map((x) => ({ label: label(x), value: x.deadFraction ?? null })), label: `dead fraction per SAE of ${a.name}`, yTitle: "dead", yMax: Math.max(0.12, ...a.saes.map((x) => (x.deadFraction ?? 0) * 1.2)), fmt: (v) => `${(100 * v).toFixed(1)}%`, reference: { value: 0.1, text: "bar 10%" }, testid: "dead-chart" }),
        "Share of latents that never fired on the held-out tokens (bar ≤ 10%)."));
    }
    for (const hist of a.scoreHistograms) {
      if (!hist.counts.some((c) => c > 0)) continue;
      charts.append(fig(`hist-${hist.score}`, true, histogram({ edges: hist.binEdges, counts: hist.counts, label: `${hist.score} histogram of ${a.name}`, xTitle: "top-1 cosine", yTitle: "features" }),
        `${hist.score}: top-1 cosine with the ${({ sRes: "previous residual", sAtt: "attention", sMlp: "MLP" } as Record<string, string>)[hist.score] ?? ""} SAE (residual features, ${hist.counts.reduce((x, y) => x + y, 0)} with a score).`));
    }
  }
}
