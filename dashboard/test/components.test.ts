// Component tests in jsdom: the pieces of the views that turn API data into what the user reads.
import { describe, expect, it } from "vitest";
import { ApiError, explain, request } from "../src/api";
import { highlightContext } from "../src/dom";
import { AtlasNames } from "../src/queries";
import { originSentence } from "../src/views/feature";
import { exportHref, graphParams } from "../src/views/graph";
import { buildWhere } from "../src/views/search";
import { parseSeeds } from "../src/views/steer";

describe("contexts", () => {
  it("marks the activating token", () => {
    const el = highlightContext("…the «cat» sat…");
    expect(el.querySelector("mark")!.textContent).toBe("cat");
    expect(el.textContent).toBe("…the cat sat…");
  });
});

describe("origin sentence", () => {
  it("names the module, the source and the carried links", () => {
    const s = originSentence("a/5-res/1", {
      __typename: "Origin", layer: 3, module: "MLP", sourceSimilarity: 0.62,
      bornAs: { uid: "a/3-res/7", layer: 3, category: "NEWBORN" }, source: { uid: "a/3-mlp/2", layer: 3, module: "MLP", label: "wedding" },
      chain: [{ similarity: null, category: "TRANSLATED", feature: { uid: "a/5-res/1", layer: 5 } }, { similarity: 0.7, category: "TRANSLATED", feature: { uid: "a/4-res/3", layer: 4 } }, { similarity: 0.8, category: "NEWBORN", feature: { uid: "a/3-res/7", layer: 3 } }],
    });
    expect(s).toBe("a/5-res/1 was born at layer 3 in the MLP: a/3-mlp/2 “wedding” (similarity 0.62) became a/3-res/7, then was carried through 2 residual links to a/5-res/1.");
  });
});

describe("search filters", () => {
  it("compiles URL filters into a FeatureWhere", () => {
    const w = buildWhere(new URLSearchParams("atlas=x&layer=3&module=res&category=newborn&sMlpMin=0.5"), ["x/3-res/1"]);
    expect(w.AND).toEqual([{ atlas: { eq: "x" } }, { layer: { eq: 3 } }, { module: { eq: "RES" } }, { category: { eq: "NEWBORN" } }, { sMlp: { gte: 0.5 } }, { uid: { in: ["x/3-res/1"] } }]);
  });
});

describe("flow-graph controls", () => {
  it("default to the paper's thresholds and build the export link", () => {
    const g = graphParams(new URLSearchParams(""));
    expect(g).toEqual({ direction: "UPSTREAM", depth: null, minSimilarity: 0.5, moduleMinSimilarity: 0.15, topK: 1 });
    expect(exportHref("a/1-res/2", g, "circuit-tracer")).toBe("/export/lineage?uid=a%2F1-res%2F2&format=circuit-tracer&direction=upstream&minSimilarity=0.5&moduleMinSimilarity=0.15&topK=1");
  });
});

describe("steering seeds", () => {
  it("parses uid:strength and refuses a bad strength", () => {
    expect(parseSeeds("a/1-res/2:4\na/2-res/3:-1.5")).toEqual([{ uid: "a/1-res/2", strength: 4 }, { uid: "a/2-res/3", strength: -1.5 }]);
    expect(() => parseSeeds("a/1-res/2:lots")).toThrow(/not a number/);
  });
});

describe("api client", () => {
  const answer = (status: number, body: unknown): typeof fetch => async () => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
  it("returns data", async () => {
    const data = await request(AtlasNames, {}, { fetchImpl: answer(200, { data: { atlases: [] } }) });
    expect(data.atlases).toEqual([]);
  });
  it("keeps the API's error code and adds the fix", async () => {
    const p = request(AtlasNames, {}, { fetchImpl: answer(200, { data: null, errors: [{ message: "Neo4j is down", extensions: { code: "DATABASE_UNAVAILABLE" } }] }) });
    await expect(p).rejects.toMatchObject({ code: "DATABASE_UNAVAILABLE" });
    expect(explain(new ApiError("Neo4j is down", "DATABASE_UNAVAILABLE")).hint).toMatch(/atlas db start/);
  });
  it("says the API is unreachable when fetch fails", async () => {
    const p = request(AtlasNames, {}, { fetchImpl: async () => { throw new TypeError("Failed to fetch"); } });
    await expect(p).rejects.toMatchObject({ code: "UNREACHABLE" });
  });
});
