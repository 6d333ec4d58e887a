// Steering playground: seeds (from a flow graph or typed), strategy, schedule, strength, prompt; baseline and
// steered text side by side, the features used with their coefficients, and the atlas's past runs.
import { apiKey, request } from "../api";
import { fmt, featureLink, h, notice } from "../dom";
import type { SteerInput } from "../gql/graphql";
import { AtlasNames, Steer, SteeringRuns } from "../queries";
import { num } from "../router";
import type { ViewContext } from "./types";

/** "uid:strength" per line (or comma) → seeds; a bad strength is reported, not guessed. */
export function parseSeeds(s: string): { uid: string; strength: number }[] {
  return s.split(/[\n,]+/).map((x) => x.trim()).filter(Boolean).map((line) => {
    const i = line.lastIndexOf(":");
    const uid = i > 0 ? line.slice(0, i).trim() : line;
    const strength = i > 0 ? Number(line.slice(i + 1)) : 4;
    if (!Number.isFinite(strength)) throw new Error(`strength of ${uid} is not a number: write uid:strength, e.g. ${uid}:4`);
    return { uid, strength };
  });
}

export async function steerView(root: HTMLElement, ctx: ViewContext, p: URLSearchParams): Promise<void> {
  const names = await ctx.load(request(AtlasNames, {}));
  if (!names.atlases.length) {
    root.append(h("h2", null, "Steering"), notice("empty", "No atlas yet.", "Build one with `atlas demo --profile tiny --no-serve`, then reload."));
    return;
  }
  const atlas = p.get("atlas") ?? names.atlases[0].name;
  const sel = (name: string, opts: string[], cur: string) => h("select", { name }, ...opts.map((o) => h("option", { value: o, selected: o === cur }, o.toLowerCase())));
  const form = h("form", { class: "steer" },
    h("label", null, "atlas", h("select", { name: "atlas" }, ...names.atlases.map((a) => h("option", { value: a.name, selected: a.name === atlas }, a.name)))),
    h("label", { class: "wide" }, "seeds (uid:strength, one per line)", h("textarea", { name: "seeds", rows: "3", cols: "50" }, (p.get("seeds") ?? "").split(",").join("\n"))),
    h("label", null, "strategy", sel("strategy", ["SEEDS", "SINGLE", "CUMULATIVE"], (p.get("strategy") ?? "CUMULATIVE").toUpperCase())),
    h("label", null, "schedule", sel("schedule", ["CONSTANT", "EXPONENTIAL", "LINEAR"], (p.get("schedule") ?? "CONSTANT").toUpperCase())),
    h("label", null, "mode", sel("mode", ["ADD", "RESCALE"], "ADD")),
    h("label", { class: "wide" }, "prompt", h("input", { name: "prompt", value: p.get("prompt") ?? "I think ", size: "50" })),
    h("label", null, "tokens", h("input", { name: "maxNewTokens", type: "number", min: "1", max: "512", value: num(p, "tokens", 24), style: "width:5em" })),
    h("label", null, "seed", h("input", { name: "seed", type: "number", value: num(p, "seed", 0), style: "width:5em" })),
    h("label", null, "temperature", h("input", { name: "temperature", type: "number", step: "0.1", min: "0", value: num(p, "temperature", 0), style: "width:5em" })),
    h("label", null, "graph minSimilarity", h("input", { name: "minSimilarity", type: "number", step: "0.05", value: num(p, "minSimilarity", 0.5), style: "width:5em" })),
    h("label", null, "moduleMinSimilarity", h("input", { name: "moduleMinSimilarity", type: "number", step: "0.05", value: num(p, "moduleMinSimilarity", 0.15), style: "width:5em" })),
    h("button", { type: "submit" }, "Steer"));
  const result = h("div", { class: "steer-result", "aria-live": "polite" });
  const runs = h("div", { class: "runs" });
  root.append(h("h2", null, "Steering playground"),
    h("p", { class: "hint" }, "Seeds come from a flow graph (“steer with this graph”) or typed uids. ", apiKey.get() ? "" : "If the server needs an API key, enter it in the key field at the top right."),
    form, result, h("h3", null, `Past runs of ${atlas}`), runs);

  const showRuns = async () => {
    try {
      const r = await request(SteeringRuns, { atlas }, { signal: ctx.signal });
      runs.replaceChildren(r.steeringRuns.length
        ? h("table", { class: "runs" }, h("thead", null, h("tr", null, ...["when", "strategy", "seeds", "prompt", "baseline", "steered", "features"].map((c) => h("th", null, c)))),
          h("tbody", null, ...r.steeringRuns.map((x) => h("tr", null, h("td", null, (x.createdAt ?? "").slice(0, 19).replace("T", " ")), h("td", null, `${x.strategy ?? ""} ${x.schedule ?? ""}`),
            h("td", null, ...x.seeds.map((s, i) => h("div", null, featureLink(s), ` ×${x.seedStrengths[i] ?? ""}`))), h("td", null, x.prompts[0] ?? ""), h("td", null, x.baseline[0] ?? ""), h("td", null, x.steered[0] ?? ""), h("td", null, String(x.features.length))))))
        : h("p", null, h("em", null, "No stored runs yet: steer once and it appears here.")));
    } catch (e) {
      if ((e as Error).name !== "AbortError") ctx.showError(runs, e);
    }
  };
  void showRuns();

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const fd = new FormData(form);
    let seeds: { uid: string; strength: number }[];
    try {
      seeds = parseSeeds(String(fd.get("seeds") ?? ""));
      if (!seeds.length) throw new Error("give at least one seed feature as uid:strength (open a feature and use “Steer with it”)");
    } catch (e) {
      result.replaceChildren(notice("error", (e as Error).message));
      return;
    }
    const input: SteerInput = {
      atlas: String(fd.get("atlas")), prompt: String(fd.get("prompt")), seeds,
      strategy: String(fd.get("strategy")) as SteerInput["strategy"], schedule: String(fd.get("schedule")) as SteerInput["schedule"], mode: String(fd.get("mode")) as SteerInput["mode"],
      maxNewTokens: Number(fd.get("maxNewTokens")), seed: Number(fd.get("seed")), temperature: Number(fd.get("temperature")),
      graph: { minSimilarity: Number(fd.get("minSimilarity")), moduleMinSimilarity: Number(fd.get("moduleMinSimilarity")), topK: num(p, "topK", 1), depth: p.get("depth") ? num(p, "depth", 6) : null },
    };
    const button = form.querySelector("button")!;
    button.disabled = true;
    result.replaceChildren(notice("loading", "Generating baseline and steered text…", "The model runs on the server (the first run also loads it); this can take a while on a CPU."));
    result.setAttribute("aria-busy", "true");
    try {
      const r = (await request(Steer, { input })).steer;
      if (r.__typename === "SteerSuccess") {
        result.replaceChildren(
          h("div", { class: "side-by-side" }, ...r.generations.map((g) => [
            h("div", { class: "gen baseline" }, h("h4", null, "baseline"), h("p", null, h("span", { class: "prompt" }, g.prompt), g.baseline)),
            h("div", { class: "gen steered" }, h("h4", null, "steered"), h("p", null, h("span", { class: "prompt" }, g.prompt), g.steered))]).flat()),
          h("p", null, `model ${r.model}; graph layers ${r.lStart ?? "?"}–${r.lEnd ?? "?"}; ${r.features.length} features; ${fmt(r.steeredTokensPerSecond, 1)} tokens/s steered vs ${fmt(r.baselineTokensPerSecond, 1)} baseline.${r.runId ? ` Stored as ${r.runId}.` : ""}`),
          h("table", { class: "coefs" }, h("thead", null, h("tr", null, h("th", null, "feature"), h("th", null, "coefficient"), h("th", null, "mode"))),
            h("tbody", null, ...r.features.map((f) => h("tr", null, h("td", null, featureLink(f.uid)), h("td", null, fmt(f.coefficient)), h("td", null, f.mode.toLowerCase()))))));
        void showRuns();
      } else if (r.__typename === "FeatureNotFound") {
        result.replaceChildren(notice("error", `Feature not found: ${r.uid}`, r.message, " Check the uid or find it with Search."));
      } else if (r.__typename === "InvalidInput") {
        result.replaceChildren(notice("error", "Invalid input", r.message));
      } else if (r.__typename === "ModelUnavailable") {
        result.replaceChildren(notice("error", "The model could not be loaded", r.message));
      }
    } catch (e) {
      ctx.showError(result, e);
    } finally {
      button.disabled = false;
      result.removeAttribute("aria-busy");
    }
  });
}
