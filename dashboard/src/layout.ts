// The flow-graph layout: layers are rows (later layers higher up), res/att/mlp are columns, so a reader sees
// at once which module a feature came from. A generic layered layout (dagre/ELK) ranks nodes by edges and
// would put att(L)/mlp(L) a rank below res(L); here the rows are the model's layers by definition.
// Within a cell, nodes are ordered by the mean x of their neighbours in earlier layers (barycentre), which
// keeps chains straight and crossings few.
export interface LNode { uid: string; layer: number; module: string }
export interface LEdge { source: string; target: string }
export interface Pos { x: number; y: number }

export const COLUMNS = ["att", "res", "mlp"] as const;
const GAP_X = 70;
const GAP_Y = 90;
const COL_GAP = 60;

export function layoutFlowGraph(nodes: LNode[], edges: LEdge[]): Map<string, Pos> {
  const pos = new Map<string, Pos>();
  if (!nodes.length) return pos;
  const cells = new Map<string, LNode[]>();
  for (const n of nodes) {
    const key = `${n.layer}|${n.module.toLowerCase()}`;
    (cells.get(key) ?? cells.set(key, []).get(key)!).push(n);
  }
  // Column widths: the widest cell of each module over all layers.
  const width: Record<string, number> = {};
  for (const [key, list] of cells) {
    const m = key.split("|")[1];
    width[m] = Math.max(width[m] ?? 0, list.length);
  }
  const cols = [...COLUMNS, ...Object.keys(width).filter((m) => !(COLUMNS as readonly string[]).includes(m)).sort()];
  const centre: Record<string, number> = {};
  let x0 = 0;
  for (const m of cols) {
    const w = (width[m] ?? 0) * GAP_X;
    if (!w) continue;
    centre[m] = x0 + w / 2;
    x0 += w + COL_GAP;
  }
  const preds = new Map<string, string[]>();
  for (const e of edges) (preds.get(e.target) ?? preds.set(e.target, []).get(e.target)!).push(e.source);
  const layers = [...new Set(nodes.map((n) => n.layer))].sort((a, b) => a - b);
  const maxLayer = layers[layers.length - 1];
  for (const layer of layers) {
    for (const m of cols) {
      const list = cells.get(`${layer}|${m}`);
      if (!list) continue;
      const bary = (n: LNode): number => {
        const xs = (preds.get(n.uid) ?? []).map((u) => pos.get(u)?.x).filter((x): x is number => x !== undefined);
        return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.POSITIVE_INFINITY;
      };
      const sorted = [...list].sort((a, b) => bary(a) - bary(b) || a.uid.localeCompare(b.uid, "en", { numeric: true }));
      sorted.forEach((n, i) => pos.set(n.uid, { x: centre[m] + (i - (sorted.length - 1) / 2) * GAP_X, y: (maxLayer - layer) * GAP_Y }));
    }
  }
  return pos;
}

/** Edge colour and width by similarity: weak links thin and grey, strong ones thick and dark blue. */
export function edgeStyle(sim: number): { width: number; color: string } {
  const s = Math.max(0, Math.min(1, sim));
  const light = Math.round(80 - 55 * s);
  return { width: 1 + 7 * s, color: `hsl(215, ${Math.round(20 + 70 * s)}%, ${light}%)` };
}

export const CATEGORY_COLOURS: Record<string, string> = {
  TRANSLATED: "#4e79a7", PROCESSED: "#59a14f", NEWBORN: "#f28e2b", UNEXPLAINED: "#9c755f", NONE: "#bab0ac",
};
export const MODULE_COLOURS: Record<string, string> = { RES: "#4e79a7", ATT: "#e15759", MLP: "#76b7b2" };
