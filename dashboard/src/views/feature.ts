// Feature page: label, contexts (activating token highlighted), scores, neighbours, and where it was born.
import { request } from "../api";
import { fmt, h, highlightContext, notice } from "../dom";
import { FeaturePage, SaeDensity } from "../queries";
import { formatHash } from "../router";
import { densityPanel, examplesPanel, logitPanel, neighboursPanel, originPicture, type OriginT, panel, steerabilityPanel, steeringPanel } from "./feature_panels";
import type { ViewContext } from "./types";

const MODULE_NAMES: Record<string, string> = { RES: "the residual stream", ATT: "attention", MLP: "the MLP" };

/** The API's `origin` told as one sentence. */
export function originSentence(uid: string, o: OriginT): string {
  const hops = o.chain.length - 1;
  const carried = hops > 0 ? `, then was carried through ${hops} residual link${hops > 1 ? "s" : ""} to ${uid}` : "";
  if (o.module === "RES") {
    const why = o.layer === 0 || o.bornAs.category === null ? "" : " (no attention or MLP feature explains it)";
    return `${uid} was born in the residual stream at layer ${o.layer} as ${o.bornAs.uid}${why}${carried}.`;
  }
  const src = o.source ? `${o.source.uid}${o.source.label ? ` “${o.source.label}”` : ""}` : "a feature";
  return `${uid} was born at layer ${o.layer} in ${MODULE_NAMES[o.module]}: ${src} (similarity ${fmt(o.sourceSimilarity, 2)}) became ${o.bornAs.uid}${carried}.`;
}

/** A search that browses where the uid points (its atlas, layer and module), for a uid that does not exist. */
export function searchNear(uid: string): string {
  const m = /^([^/]+)\/(\d+)-(res|att|mlp)\/\d+$/.exec(uid);
  return m ? formatHash("search", null, { atlas: m[1], layer: m[2], module: m[3] }) : formatHash("search");
}

/** Features picked for Path / circuit in this tab (the path view stores its uids here). */
export const PICKS = "atlas.pathPicks";

function pathLink(uid: string): HTMLAnchorElement {
  let picks: string[] = [];
  try {
    picks = (JSON.parse(sessionStorage.getItem(PICKS) ?? "[]") as string[]).filter((u) => u !== uid);
  } catch {
    picks = [];
  }
  const uids = [...picks, uid].slice(-8);
  const text = picks.length ? `Path / circuit with ${picks.length} picked` : "Path / circuit from here";
  return h("a", { class: "button", href: formatHash("path", null, { uids: uids.join(",") }), title: uids.join("\n") }, text);
}

/** The uid of the feature `delta` indices away in the same SAE (keyboard j/k), or null outside [0, dSae). */
export function neighbourUid(uid: string, delta: number, dSae?: number | null): string | null {
  const m = /^(.*\/\d+-(?:res|att|mlp))\/(\d+)$/.exec(uid);
  if (!m) return null;
  const i = Number(m[2]) + delta;
  return i < 0 || (dSae !== null && dSae !== undefined && i >= dSae) ? null : `${m[1]}/${i}`;
}

export async function featureView(root: HTMLElement, ctx: ViewContext, uid: string, params: URLSearchParams = new URLSearchParams()): Promise<void> {
  // The SAE's density histogram in the same round trip (another request in parallel): nothing waits for a second turn.
  const atlas = uid.split("/")[0];
  const [data, dens] = await ctx.load(Promise.all([request(FeaturePage, { uid }), uid.includes("/") ? request(SaeDensity, { atlas }).catch(() => null) : Promise.resolve(null)]));
  const f = data.feature;
  if (f.__typename === "FeatureNotFound" || f.__typename === "InvalidInput") {
    root.append(notice("error", f.__typename === "FeatureNotFound" ? `No feature ${uid}.` : f.message,
      f.__typename === "FeatureNotFound" ? "Check the uid (atlas/layer-module/index), or " : "Give a uid like smollm2-demo/11-res/119, or ",
      h("a", { href: searchNear(uid) }, "search for the feature"), "."));
    return;
  }
  if (f.__typename !== "Feature") return;
  const prev = neighbourUid(f.uid, -1, f.dSae);
  const next = neighbourUid(f.uid, 1, f.dSae);
  const actions = h("p", { class: "actions" },
    h("a", { class: "button", href: formatHash("graph", f.uid, { direction: "both" }), "data-key": "f" }, "Flow graph"), " ",
    pathLink(f.uid), " ",
    h("a", { class: "button", href: formatHash("steer", null, { atlas: f.atlas, seeds: `${f.uid}:4` }) }, "Steering playground"), " ",
    prev ? h("a", { href: formatHash("feature", prev), rel: "prev", "data-key": "k", title: "previous feature of this SAE (k)" }, "← previous") : "", " ",
    next ? h("a", { href: formatHash("feature", next), rel: "next", "data-key": "j", title: "next feature of this SAE (j)" }, "next →") : "");
  root.append(
    h("h2", null, f.uid),
    h("p", { class: "label" }, f.label ? h("q", null, f.label) : h("em", null, "no label (label with `atlas train` or the setLabel mutation)")),
    actions,
    h("dl", { class: "facts" },
      ...([["layer", f.layer], ["module", f.module.toLowerCase()], ["index", f.index], ["category", f.category?.toLowerCase() ?? "– (att/mlp features have none)"],
        ["sRes", fmt(f.sRes)], ["sAtt", fmt(f.sAtt)], ["sMlp", fmt(f.sMlp)], ["frequency", f.frequency === null || f.frequency === undefined ? "–" : f.frequency.toExponential(2)],
        ["max activation", fmt(f.maxActivation, 2)], ["decoder norm", fmt(f.decoderNorm)], ["SAE width", f.dSae ?? "–"]] as [string, string | number][])
        .flatMap(([k, v]) => [h("dt", null, k), h("dd", null, v)])),
  );
  const o = data.origin;
  const grid = h("div", { class: "panels" });
  root.append(grid);
  const saeKey = `${f.atlas}/${f.layer}-${f.module.toLowerCase()}`;
  grid.append(densityPanel(f, dens?.atlases[0]?.saes.find((x) => x.key === saeKey)?.densityHistogram), logitPanel(f), steerabilityPanel(f), examplesPanel(f));
  grid.append(o.__typename === "Origin"
    ? panel("origin", "Origin", true, h("p", { class: "origin", "data-testid": "origin" }, originSentence(f.uid, o)), originPicture(f, o))
    : panel("origin", "Origin", false, notice("info", "No origin.", o.__typename === "FeatureNotFound" || o.__typename === "InvalidInput" ? o.message : "")));
  grid.append(neighboursPanel(f));
  grid.append(panel("contexts", "Top contexts (labelling pass)", !!f.topContexts?.length, f.topContexts?.length
    ? h("ol", { class: "contexts" }, ...f.topContexts.map((c) => h("li", null, highlightContext(c))))
    : notice("empty", "No contexts stored for this feature.", "Contexts come from the labelling pass (`atlas train` labels every feature).")));
  grid.append(steeringPanel(f, params, (prompt, strength) => history.replaceState(null, "", formatHash("feature", f.uid, { prompt, strength }))));
}
