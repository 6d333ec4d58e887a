// View components rendered in jsdom against canned API answers (fetch stubbed): the empty and error states.
import { afterEach, describe, expect, it, vi } from "vitest";
import { atlasesView } from "../src/views/atlases";
import { featureView } from "../src/views/feature";
import type { ViewContext } from "../src/views/types";

function ctx(): ViewContext {
  return { load: (p) => p, charts: [], cleanups: [], navigate: () => undefined, signal: new AbortController().signal, showError: () => undefined };
}

function answer(data: unknown): void {
  vi.stubGlobal("fetch", async () => new Response(JSON.stringify({ data }), { status: 200, headers: { "content-type": "application/json" } }));
}

afterEach(() => vi.unstubAllGlobals());

describe("atlases view", () => {
  it("without any atlas tells the command that builds one", async () => {
    answer({ atlases: [] });
    const root = document.createElement("div");
    await atlasesView(root, ctx(), new URLSearchParams());
    expect(root.querySelector(".notice.empty")!.textContent).toContain("atlas demo --profile tiny");
  });
  it("shows an incomplete atlas as still being ingested", async () => {
    answer({ atlases: [{ name: "a", model: "m", dModel: 8, complete: false, minLayer: 0, maxLayer: 1, nLayers: 2, nSaes: 0, nFeatures: 0, saes: [], layerCategories: [], scoreHistograms: [] }] });
    const root = document.createElement("div");
    await atlasesView(root, ctx(), new URLSearchParams());
    expect(root.querySelector(".badge.warn")!.textContent).toContain("being ingested");
  });
});

describe("feature view", () => {
  it("answers an unknown uid with not found and a search link", async () => {
    answer({ feature: { __typename: "FeatureNotFound", uid: "a/1-res/9", message: "feature a/1-res/9 does not exist" }, origin: { __typename: "FeatureNotFound", message: "x" } });
    const root = document.createElement("div");
    await featureView(root, ctx(), "a/1-res/9");
    const box = root.querySelector(".notice.error")!;
    expect(box.textContent).toContain("No feature a/1-res/9");
    expect(box.querySelector("a")!.getAttribute("href")).toBe("#/search?atlas=a&layer=1&module=res");
  });
});
