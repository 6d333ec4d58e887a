import { describe, expect, it } from "vitest";
import { formatHash, parseHash } from "../src/router";

describe("hash routes", () => {
  it("round-trips a feature uid with slashes", () => {
    const hash = formatHash("feature", "smollm2-demo/11-res/119");
    expect(hash).toBe("#/feature/smollm2-demo%2F11-res%2F119");
    expect(parseHash(hash)).toMatchObject({ view: "feature", arg: "smollm2-demo/11-res/119" });
  });
  it("keeps the graph parameters", () => {
    const r = parseHash(formatHash("graph", "a/1-res/2", { direction: "both", minSimilarity: 0.3, depth: null }));
    expect(r.view).toBe("graph");
    expect(r.params.get("direction")).toBe("both");
    expect(r.params.get("minSimilarity")).toBe("0.3");
    expect(r.params.has("depth")).toBe(false);
  });
  it("falls back to the atlases overview", () => {
    expect(parseHash("").view).toBe("atlases");
    expect(parseHash("#/nonsense/x").view).toBe("atlases");
  });
});
