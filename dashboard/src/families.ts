// Concept families of a flow graph (supernodes), computed in the browser from the lineage the API returned:
// 1. connected components of the graph over the links with similarity ≥ `threshold` (union–find);
// 2. components whose labels are alike are merged: each component's label embedding is the bag of words of its
//    members' labels (lower-cased words of ≥ 3 letters, split on the " · " separators and spaces), and two
//    components merge when the cosine of their embeddings is ≥ `labelSimilarity` (transitively).
// A family of one feature is no family: it stays a plain node. The family's name is its most common label words.
import type { GEdge, GGraph, GNode } from "./flowgraph";

export interface Family { id: string; members: string[]; name: string; layer: number; size: number }

function words(label: string | null | undefined): string[] {
  return (label ?? "").toLowerCase().split(/[\s·,;:()[\]"'“”«»]+/).filter((w) => w.length >= 3 && /\p{L}/u.test(w));
}

function bag(labels: (string | null | undefined)[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const l of labels) for (const w of new Set(words(l))) m.set(w, (m.get(w) ?? 0) + 1);
  return m;
}

export function cosine(a: Map<string, number>, b: Map<string, number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (const [k, v] of a) { na += v * v; const w = b.get(k); if (w) dot += v * w; }
  for (const v of b.values()) nb += v * v;
  return na && nb ? dot / Math.sqrt(na * nb) : 0;
}

class UnionFind {
  parent = new Map<string, string>();
  find(x: string): string {
    let p = this.parent.get(x) ?? x;
    if (p !== x) { p = this.find(p); this.parent.set(x, p); }
    return p;
  }
  union(a: string, b: string): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra !== rb) this.parent.set(ra < rb ? rb : ra, ra < rb ? ra : rb);
  }
}

export function conceptFamilies(g: GGraph, threshold = 0.5, labelSimilarity = 0.5): Family[] {
  const uf = new UnionFind();
  for (const e of g.edges) if (e.similarity >= threshold) uf.union(e.source, e.target);
  const comps = new Map<string, GNode[]>();
  for (const n of g.nodes) (comps.get(uf.find(n.uid)) ?? comps.set(uf.find(n.uid), []).get(uf.find(n.uid))!).push(n);
  const list = [...comps.values()];
  const bags = list.map((c) => bag(c.map((n) => n.label)));
  const merge = new UnionFind();
  for (let i = 0; i < list.length; i++) for (let j = i + 1; j < list.length; j++) if (bags[i].size && cosine(bags[i], bags[j]) >= labelSimilarity) merge.union(String(i), String(j));
  const groups = new Map<string, GNode[]>();
  list.forEach((c, i) => { const r = merge.find(String(i)); groups.set(r, [...(groups.get(r) ?? []), ...c]); });
  const out: Family[] = [];
  for (const members of groups.values()) {
    if (members.length < 2) continue;
    const b = [...bag(members.map((n) => n.label)).entries()].sort((x, y) => y[1] - x[1] || x[0].localeCompare(y[0]));
    const layers = members.map((n) => n.layer).sort((x, y) => x - y);
    const uids = members.map((n) => n.uid).sort();
    out.push({ id: `family:${uids[0]}`, members: uids, name: b.slice(0, 3).map(([w]) => w).join(" · ") || "unlabelled", layer: layers[Math.floor(layers.length / 2)], size: members.length });
  }
  return out.sort((x, y) => y.size - x.size || x.id.localeCompare(y.id));
}

/** The graph with each collapsed family replaced by one supernode (edges re-pointed, inner edges dropped, parallel
 * edges merged keeping the strongest similarity and every matcher). */
export function collapse(g: GGraph, families: Family[], collapsed: Set<string>): GGraph {
  const into = new Map<string, Family>();
  for (const f of families) if (collapsed.has(f.id)) for (const m of f.members) into.set(m, f);
  const nodes: GNode[] = g.nodes.filter((n) => !into.has(n.uid));
  for (const f of families) if (collapsed.has(f.id)) nodes.push({ uid: f.id, layer: f.layer, module: "RES", index: -1, label: `${f.name} (${f.size} features)`, category: "FAMILY", family: f });
  const edges = new Map<string, GEdge>();
  for (const e of g.edges) {
    const s = into.get(e.source)?.id ?? e.source;
    const t = into.get(e.target)?.id ?? e.target;
    if (s === t) continue;
    const key = `${s}->${t}`;
    const old = edges.get(key);
    if (!old) edges.set(key, { ...e, source: s, target: t, methods: [...(e.methods ?? ["cosine"])] });
    else edges.set(key, { ...old, similarity: Math.max(old.similarity, e.similarity), methods: [...new Set([...(old.methods ?? []), ...(e.methods ?? ["cosine"])])] });
  }
  return { nodes, edges: [...edges.values()], seeds: g.seeds };
}
