// A tiny DOM builder: the views are plain TypeScript (no framework) to keep the bundle small and the
// example easy to copy.
type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | EventListener | null | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs | null, ...children: (Child | Child[])[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "value" && "value" in el) (el as HTMLInputElement).value = String(v);
    else if (k === "checked" && "checked" in el) (el as HTMLInputElement).checked = Boolean(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export function clear(el: Element): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

export function fmt(x: number | null | undefined, digits = 3): string {
  return x === null || x === undefined ? "–" : x.toFixed(digits);
}

/** A box that tells the user what happened and what to do. */
export function notice(kind: "error" | "empty" | "loading" | "info", title: string, ...body: (Child | Child[])[]): HTMLElement {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status", "data-state": kind }, h("strong", null, title), ...body.map((b) => h("div", null, b)));
}

export function featureLink(uid: string, text?: string): HTMLAnchorElement {
  return h("a", { href: `#/feature/${encodeURIComponent(uid)}`, class: "uid" }, text ?? uid);
}

/** "…the «cat» sat…" → the text with the activating token in <mark>. */
export function highlightContext(ctx: string): HTMLElement {
  const out = h("span", { class: "context" });
  const re = /«([^»]*)»/g;
  let last = 0;
  for (let m = re.exec(ctx); m; m = re.exec(ctx)) {
    out.append(ctx.slice(last, m.index), h("mark", null, m[1]));
    last = m.index + m[0].length;
  }
  out.append(ctx.slice(last));
  return out;
}
