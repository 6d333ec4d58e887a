// The feature page's panels: density, activation examples with per-token shading, logit lens, neighbours with
// similarity bars, the origin as a path picture, and the inline steering box. Each panel is a <section
// data-panel="…"> with data-has-data="true" once it shows real data (the browser tests read these).
import { ApiError, apiKey, explain, request } from "../api";
import { featureLink, fmt, h, notice } from "../dom";
import type { FeaturePageQuery } from "../gql/graphql";
import { Steer } from "../queries";
import { hbar, histogram, s } from "../svg";

export type FeatureT = Extract<FeaturePageQuery["feature"], { __typename?: "Feature" }>;
export type PageT = NonNullable<FeatureT["page"]>;
export type OriginT = Extract<FeaturePageQuery["origin"], { __typename?: "Origin" }>;

export function panel(name: string, title: string, hasData: boolean, ...body: (Node | string | null | false)[]): HTMLElement {
  return h("section", { class: `panel panel-${name}`, "data-panel": name, "data-has-data": String(hasData) }, h("h3", null, title), ...body);
}

const NO_PAGE = "Page data (density, examples, logit lens) is computed once after training: `atlas demo` does it; for your own atlas run the pages step (docs/dashboards.md).";

export type SaeDensityT = { log10BinEdges: number[]; counts: number[]; dead: number } | null | undefined;

/** Activation density: the feature's non-zero activations (log counts) and where its firing density sits among its SAE's. */
export function densityPanel(f: FeatureT, d: SaeDensityT): HTMLElement {
  const p = f.page;
  if (!p) return panel("density", "Activation density", false, notice("empty", "No page data for this feature.", NO_PAGE));
  const pct = 100 * p.density;
  const body = h("div", { class: "panel-row" });
  const out = panel("density", "Activation density", p.firingTokens > 0,
    h("p", { class: "density-line", "data-testid": "density" }, `Fires on ${p.firingTokens.toLocaleString("en")} of ${p.heldoutTokens.toLocaleString("en")} held-out tokens (density ${pct < 0.01 ? pct.toExponential(2) : pct.toFixed(3)}%, log10 ${p.density > 0 ? Math.log10(p.density).toFixed(2) : "–∞"}).`),
    body);
  if (p.activationHistogram.counts.length) {
    body.append(h("figure", null, histogram({ edges: p.activationHistogram.binEdges, counts: p.activationHistogram.counts, logY: true, label: `non-zero activations of ${f.uid}`, xTitle: "activation", yTitle: "tokens", testid: "activation-histogram" }),
      h("figcaption", null, "Its non-zero activations over the held-out tokens (bar height: log of the count).")));
  }
  if (d) {
    const key = `${f.atlas}/${f.layer}-${f.module.toLowerCase()}`;
    body.append(h("figure", { class: "sae-density" }, histogram({ edges: d.log10BinEdges, counts: d.counts, label: `log10 firing density of the features of ${key}`, xTitle: "log10 firing density", yTitle: "features", pattern: "hatch", marker: p.density > 0 ? { x: Math.log10(p.density), text: "this feature" } : undefined, testid: "sae-density-histogram" }),
      h("figcaption", null, `All ${d.counts.reduce((a, b) => a + b, 0) + d.dead} features of ${key} by log10 firing density (${d.dead} never fired); the dashed line is this feature.`)));
  }
  return out;
}

/** Token shading: background opacity ∝ activation / the group's max (a luminance cue, readable in greyscale); the
 * value is in each token's title; the token the example was picked for is boxed and bold. */
export function shadedTokens(tokens: string[], acts: number[], maxIndex: number, scale: number): HTMLElement {
  const line = h("span", { class: "tokens" });
  tokens.forEach((t, i) => {
    const a = acts[i] ?? 0;
    const alpha = scale > 0 ? Math.max(0, Math.min(1, a / scale)) : 0;
    const el = h("span", { class: `tok${i === maxIndex ? " max" : ""}${a > 0 ? " on" : ""}`, title: `${JSON.stringify(t)}: activation ${a}`, "data-act": a, style: `background: rgba(230, 110, 0, ${alpha.toFixed(2)})` }, t.replace(/ /g, "\u00a0") || "\u200b");
    line.append(el);
  });
  return line;
}

const GROUP_TITLES: Record<string, string> = { top: "Top activations" };

export function examplesPanel(f: FeatureT): HTMLElement {
  const p = f.page;
  if (!p) {
    const ctx = f.topContexts?.length ? h("p", null, "Only the labelling pass's contexts are stored (see the label).") : null;
    return panel("examples", "Activation examples", false, notice("empty", "No activation examples stored.", NO_PAGE), ctx);
  }
  const scale = p.exampleGroups[0]?.maxActivation ?? 1;
  const groups = p.exampleGroups.map((g) => {
    const title = GROUP_TITLES[g.name] ?? `Quantile ${g.name.slice(1)} of ${p.exampleGroups.length - 1} (activations ${fmt(g.minActivation, 3)} – ${fmt(g.maxActivation, 3)})`;
    return h("div", { class: "example-group", "data-group": g.name },
      h("h4", null, g.name === "top" ? `${title} (${fmt(g.minActivation, 3)} – ${fmt(g.maxActivation, 3)})` : title),
      h("ol", { class: "examples" }, ...g.examples.map((e) => h("li", null, h("span", { class: "ex-value" }, fmt(e.activations[e.maxIndex], 2)), shadedTokens(e.tokens, e.activations, e.maxIndex, scale)))));
  });
  const n = p.exampleGroups.reduce((a, g) => a + g.examples.length, 0);
  return panel("examples", "Activation examples", n > 0,
    h("p", { class: "hint" }, "Shading: darker = stronger activation (relative to the strongest); hover a token for its value; the boxed token is the one each example was picked for."),
    ...groups);
}

export function logitPanel(f: FeatureT): HTMLElement {
  const lens = f.page?.logitLens;
  if (!lens) return panel("logits", "Logit lens", false, notice("empty", f.page ? "No logit lens for this SAE (its space is not d_model)." : "No logit lens stored.", f.page ? "" : NO_PAGE));
  const max = Math.max(...lens.positive.map((t) => Math.abs(t.weight)), ...lens.negative.map((t) => Math.abs(t.weight)), 1e-9);
  const list = (title: string, items: { token: string; weight: number }[], neg: boolean) => h("div", { class: "logit-list", "data-sign": neg ? "negative" : "positive" },
    h("h4", null, title),
    h("table", { class: "logits" }, h("tbody", null, ...items.map((t) => h("tr", null, h("td", { class: "token" }, h("code", null, JSON.stringify(t.token))), h("td", null, hbar(t.weight, max, t.weight.toFixed(3), 150, neg)))))));
  return panel("logits", "Logit lens", lens.positive.length > 0,
    h("p", { class: "hint" }, "W_U · (final-norm weight ⊙ d) for the unit decoder direction d: the tokens this direction promotes and suppresses when added to the residual stream (up to the norm's positive scale)."),
    h("div", { class: "panel-row" }, list("Promoted (top 10)", lens.positive, false), list("Suppressed (bottom 10)", lens.negative, true),
      h("figure", null, histogram({ edges: lens.histogram.binEdges, counts: lens.histogram.counts, logY: true, label: "all vocabulary logit weights", xTitle: "logit weight", yTitle: "tokens", pattern: "dots", testid: "logit-histogram" }),
        h("figcaption", null, `All ${lens.histogram.counts.reduce((a, b) => a + b, 0).toLocaleString("en")} vocabulary logit weights.`))));
}

/** Steering this feature alone (`atlas steerability`): next-token KL and the tokens it promotes at the atlas's
 * standard α, and the steering benchmark's gain where it tested the feature. */
export function steerabilityPanel(f: FeatureT): HTMLElement {
  const st = f.steerability;
  if (!st) return panel("steerability", "Steerability", false, notice("empty", "Not screened yet.", "Run `atlas steerability ATLAS` (docs/steering.md): it measures every feature at one α."));
  const max = Math.max(...st.tokenGains.map((g) => Math.abs(g)), 1e-9);
  return panel("steerability", "Steerability", true,
    h("p", { class: "hint" }, "Added alone at the last position of 8 neutral prompts (units ALPHA, the atlas's standard α; the prefix is not steered): how far the next-token distribution moves, and towards which tokens."),
    h("p", { "data-testid": "steer-kl" }, `Next-token KL to the unsteered model: ${st.kl.toFixed(4)} nats (mean over prompts).`),
    h("table", { class: "logits" }, h("tbody", null, ...st.tokens.map((t, i) => h("tr", null, h("td", { class: "token" }, h("code", null, JSON.stringify(t))), h("td", null, hbar(st.tokenGains[i], max, `+${st.tokenGains[i].toFixed(3)}`, 150, false)))))),
    st.benchGain != null
      ? h("p", { "data-testid": "steer-bench" }, `Steering benchmark (concept "${st.benchConcept}"): harmonic-mean gain ${st.benchGain >= 0 ? "+" : ""}${st.benchGain.toFixed(3)} over unsteered on ${st.benchN} test generations at α ${st.benchAlpha} (a point estimate; see docs/reproduction/steering-bench.md).`)
      : null);
}

export function neighboursPanel(f: FeatureT): HTMLElement {
  const methods = new Set([...f.predecessors, ...f.successors].map((l) => l.method));
  const table = (title: string, list: FeatureT["predecessors"], rank: "targetRank" | "sourceRank") => h("div", { class: "links" }, h("h4", null, title),
    list.length ? h("table", null, h("thead", null, h("tr", null, h("th", null, "feature"), h("th", null, "label"), h("th", null, "similarity"), h("th", null, "rank"), methods.size > 1 ? h("th", null, "matcher") : null)),
      h("tbody", null, ...list.map((l) => h("tr", null, h("td", null, featureLink(l.feature.uid)), h("td", null, l.feature.label ?? ""), h("td", null, hbar(l.similarity, 1, l.similarity.toFixed(3))),
        h("td", null, ((l as Record<string, unknown>)[rank] as number | null) ?? "–"), methods.size > 1 ? h("td", null, l.method) : null))))
      : h("p", null, h("em", null, "none stored")));
  return panel("neighbours", "Flow neighbours", f.predecessors.length + f.successors.length > 0,
    h("div", { class: "neighbours" }, table("Predecessors (flow in)", f.predecessors, "targetRank"), table("Successors (flow out)", f.successors, "sourceRank")));
}

/** The origin as a small path picture: the residual chain from where the feature was born (left) to it (right),
 * links labelled with their similarity, and the att/mlp source above its birth layer. */
export function originPicture(f: FeatureT, o: OriginT): SVGSVGElement {
  const chain = [...o.chain].reverse(); // born first
  const step = 96;
  const width = Math.max(260, 60 + step * (chain.length - 1) + 80);
  const height = o.source ? 118 : 78;
  const y = height - 34;
  const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `origin path of ${f.uid}`, class: "origin-path", "data-testid": "origin-path", "font-size": 10, "font-family": "system-ui, sans-serif" },
    s("defs", null, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, markerUnits: "userSpaceOnUse", orient: "auto" }, s("path", { d: "M0,0 L10,5 L0,10 Z", fill: "#333" }))));
  const x = (i: number) => 40 + i * step;
  chain.forEach((c, i) => {
    if (i > 0) {
      const prev = chain[i - 1];
      svg.append(s("line", { x1: x(i - 1) + 11, y1: y, x2: x(i) - 11, y2: y, stroke: "#333", "stroke-width": 1 + 3 * (prev.similarity ?? 0), "marker-end": "url(#arrow)" }),
        s("text", { x: (x(i - 1) + x(i)) / 2, y: y - 6, "text-anchor": "middle", fill: "#222" }, fmt(prev.similarity, 2)));
    }
    const a = s("a", { href: `#/feature/${encodeURIComponent(c.feature.uid)}` },
      s("circle", { cx: x(i), cy: y, r: 10, fill: c.feature.uid === f.uid ? "#111" : "#fff", stroke: "#111", "stroke-width": 1.5 }, s("title", null, `${c.feature.uid}${c.feature.label ? ` “${c.feature.label}”` : ""}${c.category ? ` · ${c.category.toLowerCase()}` : ""}`)),
      s("text", { x: x(i), y: y + 22, "text-anchor": "middle", fill: "#222" }, `${c.feature.layer}/res/${c.feature.index}`));
    svg.append(a);
  });
  if (o.source) {
    const sx = x(0);
    svg.append(s("line", { x1: sx, y1: 30, x2: sx, y2: y - 11, stroke: "#333", "stroke-dasharray": "4 2", "stroke-width": 1 + 3 * (o.sourceSimilarity ?? 0), "marker-end": "url(#arrow)" }),
      s("text", { x: sx + 6, y: (30 + y) / 2 + 4, fill: "#222" }, fmt(o.sourceSimilarity, 2)),
      s("a", { href: `#/feature/${encodeURIComponent(o.source.uid)}` },
        s("rect", { x: sx - 12, y: 8, width: 24, height: 20, fill: "#fff", stroke: "#111", "stroke-width": 1.5 }, s("title", null, `${o.source.uid}${o.source.label ? ` “${o.source.label}”` : ""}`)),
        s("text", { x: sx + 16, y: 22, fill: "#222" }, `${o.source.layer}/${o.source.module.toLowerCase()}/${o.source.index} (${o.source.module === "ATT" ? "attention" : "MLP"})`)));
  }
  return svg;
}

/** Word-level diff: the indices of `b`'s words that are not in the longest common subsequence with `a`. */
export function changedWords(a: string[], b: string[]): Set<number> {
  const n = a.length;
  const m = b.length;
  const L: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) L[i][j] = a[i] === b[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const keep = new Set<number>();
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) { keep.add(j); i++; j++; } else if (L[i + 1][j] >= L[i][j + 1]) i++; else j++;
  }
  const out = new Set<number>();
  for (let k = 0; k < m; k++) if (!keep.has(k)) out.add(k);
  return out;
}

function markedText(words: string[], changed: Set<number>, tag: "ins" | "del"): HTMLElement {
  const p = h("p", { class: "gen-text" });
  words.forEach((w, i) => p.append(changed.has(i) && w.trim() ? h(tag, { title: tag === "ins" ? "differs from the baseline" : "differs from the steered text" }, w) : w));
  return p;
}

/** The inline steering box: this one feature, added at its own hook with a strength in units of its typical activation. */
export function steeringPanel(f: FeatureT, p: URLSearchParams, onChange: (prompt: string, strength: number) => void): HTMLElement {
  const prompt = h("input", { name: "steer-prompt", value: p.get("prompt") ?? "I think ", size: "40", "aria-label": "prompt" });
  const strength = h("input", { name: "steer-strength", type: "number", step: "0.5", value: p.get("strength") ?? "4", style: "width:5em", "aria-label": "strength" });
  const tokens = h("input", { name: "steer-tokens", type: "number", min: "1", max: "128", value: p.get("tokens") ?? "24", style: "width:4.5em", "aria-label": "new tokens" });
  const button = h("button", { type: "submit" }, "Steer");
  const result = h("div", { class: "steer-inline-result", "aria-live": "polite" });
  const form = h("form", { class: "steer inline" },
    h("label", { class: "wide" }, "prompt", prompt),
    h("label", null, "strength (× typical activation)", strength),
    h("label", null, "new tokens", tokens), button);
  const out = panel("steering", "Steer with this feature", false,
    h("p", { class: "hint" }, "Adds this feature's decoder direction at its own hook on every token, scaled by strength × its typical activation; baseline and steered text use the same seed (greedy). Uses the steer mutation with your API key."),
    form, result);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const s0 = Number(strength.value);
    if (!Number.isFinite(s0)) {
      result.replaceChildren(notice("error", "The strength is not a number.", "Write a number such as 4 or -2."));
      return;
    }
    onChange(prompt.value, s0);
    button.disabled = true;
    result.replaceChildren(notice("loading", "Generating baseline and steered text…", "The model runs on the server; the first run also loads it."));
    result.setAttribute("aria-busy", "true");
    try {
      const r = (await request(Steer, { input: { atlas: f.atlas, prompt: prompt.value, features: [{ uid: f.uid, strength: s0 }], maxNewTokens: Number(tokens.value) || 24, temperature: 0, seed: 0 } })).steer;
      if (r.__typename === "SteerSuccess") {
        const g = r.generations[0];
        const a = g.baseline.split(/(\s+)/).filter((x) => x !== "");
        const b = g.steered.split(/(\s+)/).filter((x) => x !== "");
        const changed = changedWords(a, b);
        const removed = changedWords(b, a);
        const nChanged = [...changed].filter((i) => b[i].trim()).length;
        const nWords = b.filter((w) => w.trim()).length;
        result.replaceChildren(h("div", { class: "side-by-side" },
          h("div", { class: "gen baseline" }, h("h4", null, "baseline"), h("p", { class: "prompt" }, g.prompt), markedText(a, removed, "del")),
          h("div", { class: "gen steered" }, h("h4", null, `steered (strength ${s0})`), h("p", { class: "prompt" }, g.prompt), markedText(b, changed, "ins"))),
        h("p", { class: "hint" }, `${nChanged} of ${nWords} steered words differ from the baseline (underlined; removed baseline words struck through).${r.runId ? ` Stored as ${r.runId}.` : ""}`));
        out.dataset.hasData = "true";
      } else if (r.__typename === "InvalidInput") {
        result.replaceChildren(notice("error", "Invalid input", r.message));
      } else if (r.__typename === "FeatureNotFound") {
        result.replaceChildren(notice("error", `Feature not found: ${r.uid}`, r.message));
      } else if (r.__typename === "ModelUnavailable") {
        result.replaceChildren(notice("error", "The model could not be loaded", r.message));
      }
    } catch (e) {
      if (e instanceof ApiError && (e.code === "UNAUTHENTICATED" || e.code === "FORBIDDEN")) {
        result.replaceChildren(notice("error", apiKey.get() ? "Steering refused: the server did not accept your API key for steering." : "Steering refused: this server needs an API key to steer.",
          apiKey.get() ? "Check the key in the key field (top right): it needs the steer role (`atlas keys create NAME --role steer`)." : "Enter a key with the steer role in the key field (top right), then press Steer again. Reading the atlas needs no key.",
          h("small", null, `(${e.code}: ${e.message})`)));
      } else {
        const { title, hint } = explain(e);
        result.replaceChildren(notice("error", title, hint));
      }
    } finally {
      button.disabled = false;
      result.removeAttribute("aria-busy");
    }
  });
  return out;
}
