// The feature page's and overview's pictures and helpers in jsdom: SVG charts, token shading, word diff, families.
import { describe, expect, it } from "vitest";
import { collapse, conceptFamilies } from "../src/families";
import { edgeMethods } from "../src/flowgraph";
import { histogram, layerChart, stackedBars } from "../src/svg";
import { neighbourUid } from "../src/views/feature";
import { changedWords, examplesPanel, type FeatureT, logitPanel, shadedTokens, steerabilityPanel } from "../src/views/feature_panels";
import { collapsedSet } from "../src/views/graph";

describe("svg charts", () => {
  it("draw one bar per bin with its count in the title, log scale keeps small bins visible", () => {
    const svg = histogram({ edges: [0, 1, 2, 3], counts: [1000, 10, 0], logY: true, label: "x", xTitle: "a", yTitle: "n", marker: { x: 1.5, text: "this" } });
    const bars = [...svg.querySelectorAll("rect.bar")];
    expect(bars.map((b) => b.getAttribute("data-count"))).toEqual(["1000", "10", "0"]);
    expect(bars[0].querySelector("title")!.textContent).toBe("0 – 1: 1000");
    expect(Number(bars[1].getAttribute("height"))).toBeGreaterThan(0.3 * Number(bars[0].getAttribute("height")));
    expect(svg.textContent).toContain("this");
  });
  it("layer chart: a point per layer, a hatched null band and the ceiling", () => {
    const svg = layerChart({ layers: [8, 9, 10], series: [{ name: "sRes", values: [null, 0.46, 0.47], marker: "circle", band: [null, [0.13, 0.2], [0.13, 0.21]] }], ceiling: [null, 0.5, 0.51], label: "l", yTitle: "cos" });
    expect(svg.querySelectorAll(".point")).toHaveLength(2);
    expect(svg.querySelectorAll("rect.null-band")).toHaveLength(2);
    expect(svg.querySelector("rect.null-band")!.getAttribute("fill")).toMatch(/url\(#p\d+-hatch\)/);
    expect(svg.querySelectorAll("line.ceiling")).toHaveLength(2);
  });
  it("stacked shares use a pattern per category", () => {
    const svg = stackedBars({ rows: [{ label: "9", parts: [0.5, 0.5] }], names: ["a", "b"], patterns: ["solid", "hatch"], colours: ["#111", "#222"], label: "c", xTitle: "layer" });
    const fills = [...svg.querySelectorAll("rect.bar")].map((r) => r.getAttribute("fill"));
    expect(fills[0]).toBe("#111");
    expect(fills[1]).toMatch(/hatch/);
  });
});

describe("feature panels", () => {
  it("shade every token by its activation, value in the title, the picked token boxed", () => {
    const el = shadedTokens(["a", " b", " c"], [0, 2, 4], 2, 4);
    const toks = [...el.querySelectorAll(".tok")] as HTMLElement[];
    expect(toks.map((t) => t.getAttribute("data-act"))).toEqual(["0", "2", "4"]);
    expect(toks[1].style.background).toContain("0.5");
    expect(toks[2].classList.contains("max")).toBe(true);
    expect(toks[1].title).toBe('" b": activation 2');
  });
  it("mark the words of the steered text that differ from the baseline", () => {
    expect([...changedWords(["I", " ", "think", " ", "so"], ["I", " ", "love", " ", "so"])]).toEqual([2]);
  });
  const f = {
    __typename: "Feature", uid: "a/1-res/2", atlas: "a", layer: 1, module: "RES", index: 2, predecessors: [], successors: [],
    page: { heldoutTokens: 100, firingTokens: 3, density: 0.03, activationHistogram: { binEdges: [0, 1], counts: [3] },
      exampleGroups: [{ name: "top", minActivation: 1, maxActivation: 2, examples: [{ tokens: ["x", "y"], activations: [0, 2], maxIndex: 1 }] },
        { name: "q1", minActivation: 0.1, maxActivation: 0.5, examples: [{ tokens: ["z"], activations: [0.1], maxIndex: 0 }] }],
      logitLens: { positive: [{ token: " up", weight: 1.5 }], negative: [{ token: " down", weight: -1 }], histogram: { binEdges: [-1, 0, 1.5], counts: [3, 4] } } },
  } as unknown as FeatureT;
  it("show each example group and say which have data", () => {
    const el = examplesPanel(f);
    expect(el.dataset.hasData).toBe("true");
    expect([...el.querySelectorAll(".example-group")].map((g) => g.getAttribute("data-group"))).toEqual(["top", "q1"]);
    expect(el.querySelector("[data-group=q1] h4")!.textContent).toContain("Quantile 1 of 1");
  });
  it("list promoted and suppressed tokens with bars", () => {
    const el = logitPanel(f);
    expect(el.querySelector("[data-sign=positive] code")!.textContent).toBe('" up"');
    expect(el.querySelector("[data-sign=negative] svg")!.getAttribute("aria-label")).toBe("-1.000");
  });
  it("show steerability with its promoted tokens, and the benchmark's gain only where it was measured", () => {
    expect(steerabilityPanel(f).dataset.hasData).toBe("false");
    const st = { kl: 0.0123, tokens: [" wed", " bride"], tokenGains: [0.8, 0.2], benchGain: 0.06, benchN: 20, benchAlpha: 0.6, benchConcept: "weddings" };
    const el = steerabilityPanel({ ...f, steerability: st } as unknown as FeatureT);
    expect(el.dataset.hasData).toBe("true");
    expect(el.querySelector("[data-testid=steer-kl]")!.textContent).toContain("0.0123 nats");
    expect([...el.querySelectorAll("code")].map((c) => c.textContent)).toEqual(['" wed"', '" bride"']);
    expect(el.querySelector("[data-testid=steer-bench]")!.textContent).toContain("+0.060 over unsteered on 20 test generations at α 0.6");
    const unbenched = steerabilityPanel({ ...f, steerability: { ...st, benchGain: null, benchN: null } } as unknown as FeatureT);
    expect(unbenched.querySelector("[data-testid=steer-bench]")).toBeNull();
  });
  it("step to the neighbouring feature index within the SAE", () => {
    expect(neighbourUid("a/1-res/2", 1, 4)).toBe("a/1-res/3");
    expect(neighbourUid("a/1-res/3", 1, 4)).toBeNull();
    expect(neighbourUid("a/1-res/0", -1, 4)).toBeNull();
  });
});

describe("concept families", () => {
  const n = (uid: string, layer: number, label: string) => ({ uid, layer, module: "RES", index: 0, label });
  const g = {
    nodes: [n("a/1-res/1", 1, "wedding · bride"), n("a/2-res/1", 2, "wedding"), n("a/1-res/5", 1, "bride · wedding"), n("a/2-res/5", 2, "bride"), n("a/2-res/9", 2, "python · code")],
    edges: [
      { source: "a/1-res/1", target: "a/2-res/1", similarity: 0.8 },
      { source: "a/1-res/5", target: "a/2-res/5", similarity: 0.7, methods: ["cosine", "pearson"] },
      { source: "a/2-res/5", target: "a/2-res/9", similarity: 0.2 },
    ],
  };
  it("are components at the threshold, merged when their labels are alike", () => {
    const fams = conceptFamilies(g, 0.5, 0.5);
    expect(fams).toHaveLength(1);
    expect(fams[0].members).toEqual(["a/1-res/1", "a/1-res/5", "a/2-res/1", "a/2-res/5"]);
    expect(fams[0].name.split(" · ").sort()).toEqual(["bride", "wedding"]);
    expect(conceptFamilies(g, 0.5, 1.01)).toHaveLength(2); // no label merge: the two chains stay apart
  });
  it("collapse into one node with re-pointed edges that keep every matcher", () => {
    const fams = conceptFamilies(g, 0.5, 0.5);
    const c = collapse(g, fams, collapsedSet(fams, "all"));
    expect(c.nodes.map((x) => x.uid).sort()).toEqual(["a/2-res/9", fams[0].id].sort());
    expect(c.edges).toEqual([{ source: fams[0].id, target: "a/2-res/9", similarity: 0.2, methods: ["cosine"] }]);
    expect(edgeMethods(g)).toEqual(["cosine", "pearson"]);
  });
});

describe("value bars", () => {
  it("draw a negative value (a bad SAE's EV) as no bar, never a negative height", async () => {
    const { valueBars } = await import("../src/svg");
    const svg = valueBars({ items: [{ label: "8-res", value: -0.4 }, { label: "9-res", value: 0.8 }], label: "ev", yTitle: "EV", yMax: 1, fmt: (v) => v.toFixed(2) });
    const heights = [...svg.querySelectorAll("rect.bar")].map((r) => Number(r.getAttribute("height")));
    expect(heights[0]).toBe(0);
    expect(heights[1]).toBeGreaterThan(0);
    expect(svg.textContent).toContain("-0.40");
  });
});
