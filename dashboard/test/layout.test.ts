import { describe, expect, it } from "vitest";
import { edgeStyle, layoutFlowGraph } from "../src/layout";

const n = (layer: number, module: string, index: number) => ({ uid: `a/${layer}-${module}/${index}`, layer, module: module.toUpperCase(), index });

describe("flow-graph layout", () => {
  it("puts layers in rows (later higher) and att | res | mlp in columns", () => {
    const nodes = [n(1, "res", 0), n(2, "res", 0), n(2, "att", 3), n(2, "mlp", 4)];
    const edges = [{ source: "a/1-res/0", target: "a/2-res/0" }, { source: "a/2-att/3", target: "a/2-res/0" }, { source: "a/2-mlp/4", target: "a/2-res/0" }];
    const p = layoutFlowGraph(nodes, edges);
    expect(p.get("a/2-res/0")!.y).toBeLessThan(p.get("a/1-res/0")!.y);
    expect(p.get("a/2-att/3")!.y).toBe(p.get("a/2-res/0")!.y);
    expect(p.get("a/2-att/3")!.x).toBeLessThan(p.get("a/2-res/0")!.x);
    expect(p.get("a/2-res/0")!.x).toBeLessThan(p.get("a/2-mlp/4")!.x);
  });
  it("orders a cell by its predecessors so chains do not cross", () => {
    const nodes = [n(0, "res", 0), n(0, "res", 1), n(1, "res", 5), n(1, "res", 2)];
    // 0/0 -> 1/5 and 0/1 -> 1/2: 1/5 must sit left of 1/2 although its index is larger.
    const p = layoutFlowGraph(nodes, [{ source: "a/0-res/0", target: "a/1-res/5" }, { source: "a/0-res/1", target: "a/1-res/2" }]);
    expect(p.get("a/0-res/0")!.x).toBeLessThan(p.get("a/0-res/1")!.x);
    expect(p.get("a/1-res/5")!.x).toBeLessThan(p.get("a/1-res/2")!.x);
  });
  it("gives every node a distinct position", () => {
    const nodes = Array.from({ length: 30 }, (_, i) => n(i % 3, ["res", "att", "mlp"][i % 3], i));
    const p = layoutFlowGraph(nodes, []);
    expect(new Set([...p.values()].map((q) => `${q.x},${q.y}`)).size).toBe(30);
  });
  it("makes stronger edges wider", () => {
    expect(edgeStyle(0.9).width).toBeGreaterThan(edgeStyle(0.2).width);
  });
});
