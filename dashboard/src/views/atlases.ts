// Atlases overview: each atlas, its SAEs, category shares per layer (stacked bars, the paper's Fig. 3) and
// the distributions of sRes/sAtt/sMlp (the paper's Fig. 5).
import { BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, Tooltip } from "chart.js";
import { request } from "../api";
import { fmt, h, notice } from "../dom";
import { CATEGORY_COLOURS } from "../layout";
import { AtlasesOverview, AtlasNames } from "../queries";
import { formatHash } from "../router";
import type { ViewContext } from "./types";

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Legend, Tooltip);

const CATS = ["translated", "processed", "newborn", "unexplained"] as const;

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
    sec.append(charts, h("details", { open: a.saes.length <= 12 }, h("summary", null, h("h3", null, `SAEs (${a.saes.length}): explained variance, L0, dead fraction`)), table));
    root.append(sec);
    const rows = a.layerCategories;
    if (rows.length) {
      const c1 = h("canvas", { "aria-label": `category shares per layer of ${a.name}` });
      charts.append(h("figure", null, c1, h("figcaption", null, "Residual features per layer by category (share of the layer's features; uncategorised = layer 0 or unscored).")));
      ctx.charts.push(new Chart(c1, {
        type: "bar",
        data: {
          labels: rows.map((r) => String(r.layer)),
          datasets: [...CATS.map((c) => ({ label: c, data: rows.map((r) => (r.total ? r[c] / r.total : 0)), backgroundColor: CATEGORY_COLOURS[c.toUpperCase()] })),
            { label: "uncategorised", data: rows.map((r) => (r.total ? r.uncategorised / r.total : 0)), backgroundColor: CATEGORY_COLOURS.NONE }],
        },
        options: { animation: false, responsive: true, scales: { x: { stacked: true, title: { display: true, text: "layer" } }, y: { stacked: true, max: 1, title: { display: true, text: "share" } } } },
      }));
    }
    for (const hist of a.scoreHistograms) {
      if (!hist.counts.some((c) => c > 0)) continue;
      const c2 = h("canvas", { "aria-label": `${hist.score} histogram of ${a.name}` });
      charts.append(h("figure", null, c2, h("figcaption", null, `${hist.score}: top-1 cosine with the ${({ sRes: "previous residual", sAtt: "attention", sMlp: "MLP" } as Record<string, string>)[hist.score] ?? ""} SAE (residual features, ${hist.counts.reduce((x, y) => x + y, 0)} with a score).`)));
      ctx.charts.push(new Chart(c2, {
        type: "bar",
        data: { labels: hist.counts.map((_, i) => hist.binEdges[i].toFixed(2)), datasets: [{ label: hist.score, data: hist.counts, backgroundColor: "#4e79a7", barPercentage: 1, categoryPercentage: 1 }] },
        options: { animation: false, plugins: { legend: { display: false } }, scales: { x: { title: { display: true, text: "cosine (bin start)" } }, y: { title: { display: true, text: "features" } } } },
      }));
    }
  }
}
