// Hash routes, so every view has a URL that survives reload and can be pasted in a ticket, and the server
// needs no fallback route: #/atlases, #/search?q=..., #/feature/<uid>, #/graph/<uid>?..., #/path?uids=..., #/steer?...
export type View = "atlases" | "search" | "feature" | "graph" | "path" | "steer";
export interface Route {
  view: View;
  arg: string | null; // the uid for feature/graph
  params: URLSearchParams;
}

const VIEWS: readonly View[] = ["atlases", "search", "feature", "graph", "path", "steer"];

export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#\/?/, "");
  const q = raw.indexOf("?");
  const path = q >= 0 ? raw.slice(0, q) : raw;
  const params = new URLSearchParams(q >= 0 ? raw.slice(q + 1) : "");
  const [head, ...rest] = path.split("/");
  const view = (VIEWS as readonly string[]).includes(head) ? (head as View) : "atlases";
  const arg = rest.length ? decodeURIComponent(rest.join("/")) : null;
  return { view, arg, params };
}

export function formatHash(view: View, arg?: string | null, params?: Record<string, string | number | null | undefined> | URLSearchParams): string {
  let s = `#/${view}`;
  if (arg) s += `/${encodeURIComponent(arg)}`;
  const p = params instanceof URLSearchParams ? params : new URLSearchParams();
  if (!(params instanceof URLSearchParams)) {
    for (const [k, v] of Object.entries(params ?? {})) if (v !== null && v !== undefined && v !== "") p.set(k, String(v));
  }
  const qs = p.toString();
  return qs ? `${s}?${qs}` : s;
}

export function num(p: URLSearchParams, key: string, fallback: number): number {
  const v = p.get(key);
  if (v === null || v === "") return fallback;
  const x = Number(v);
  return Number.isFinite(x) ? x : fallback;
}
