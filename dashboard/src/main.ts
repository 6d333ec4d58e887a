// Entry point: the header (navigation, API-key field), the hash router, and the error boundary every view shares.
import { apiKey, explain } from "./api";
import { clear, h, notice } from "./dom";
import { drawFlowGraph, syntheticGraph } from "./flowgraph";
import { parseHash, type Route } from "./router";
import "./style.css";
import { atlasesView } from "./views/atlases";
import { featureView } from "./views/feature";
import { graphView } from "./views/graph";
import { pathView } from "./views/path";
import { searchView } from "./views/search";
import { steerView } from "./views/steer";
import type { ViewContext } from "./views/types";

function showError(into: HTMLElement, e: unknown): void {
  const { title, hint } = explain(e);
  into.replaceChildren(notice("error", title, hint));
}

function header(): HTMLElement {
  const key = h("input", { type: "password", placeholder: "API key (for steering)", value: apiKey.get(), "aria-label": "API key", autocomplete: "off", size: "18" });
  key.addEventListener("change", () => apiKey.set(key.value.trim()));
  const links: [string, string][] = [["#/atlases", "Atlases"], ["#/search", "Search"], ["#/path", "Path / circuit"], ["#/steer", "Steering"]];
  return h("header", null, h("a", { href: "#/atlases", class: "brand" }, "Feature Atlas"),
    h("nav", null, ...links.map(([href, t]) => h("a", { href, "data-nav": href.slice(2) }, t))),
    h("span", { class: "spacer" }), h("span", { class: "key-hint", title: "keyboard shortcuts" }, "press ? for keys"), key, h("a", { href: "/graphql", class: "api" }, "GraphQL API"));
}

let current: { ctl: AbortController; ctx: ViewContext } | null = null;
let renders = 0;

async function render(main: HTMLElement, route: Route): Promise<void> {
  if (current) {
    current.ctl.abort();
    current.ctx.cleanups.forEach((f) => f());
    current.ctx.charts.forEach((c) => c.destroy());
  }
  const ctl = new AbortController();
  const ctx: ViewContext = {
    load: (p) => p, charts: [], cleanups: [], signal: ctl.signal, showError,
    navigate: (hash) => { location.hash = hash; },
  };
  current = { ctl, ctx };
  const id = ++renders;
  clear(main);
  main.dataset.view = route.view;
  main.setAttribute("aria-busy", "true");
  document.querySelectorAll("header nav a").forEach((a) => a.classList.toggle("active", (a as HTMLElement).dataset.nav === route.view));
  const t0 = performance.now();
  const view = h("div", { class: `view ${route.view}` });
  main.append(view);
  try {
    switch (route.view) {
      case "atlases": await atlasesView(view, ctx, route.params); break;
      case "search": await searchView(view, ctx, route.params); break;
      case "feature": route.arg ? await featureView(view, ctx, route.arg, route.params) : view.append(notice("info", "No feature given.", "Open one from Search.")); break;
      case "graph": route.arg ? await graphView(view, ctx, route.arg, route.params) : view.append(notice("info", "No feature given.", "Open a feature and use “Flow graph”.")); break;
      case "path": await pathView(view, ctx, route.params); break;
      case "steer": await steerView(view, ctx, route.params); break;
    }
  } catch (e) {
    if ((e as Error).name === "AbortError") return;
    if (id === renders) {
      const box = h("div");
      view.append(box);
      showError(box, e);
    }
  } finally {
    if (id === renders) {
      main.removeAttribute("aria-busy");
      main.dataset.ready = String(id);
      main.dataset.renderMs = String(Math.round(performance.now() - t0));
      main.dataset.readyAt = String(Math.round(performance.now()));
    }
  }
}

// Keyboard navigation: global keys go to the views; a view offers its own keys by marking a link or button with
// data-key="x" (pressing x activates it). Keys are ignored while typing in a field or with a modifier held.
export const GLOBAL_KEYS: [string, string, string][] = [
  ["a", "#/atlases", "atlas overview"], ["s", "#/search", "search"], ["p", "#/path", "path / circuit"], ["t", "#/steer", "steering playground"],
];
const VIEW_KEYS: [string, string][] = [["/", "focus the search box"], ["j / k", "next / previous feature of the SAE (feature page)"], ["f", "flow graph of this feature (feature page)"],
  ["c / e", "collapse / expand all concept families (flow graph)"], ["?", "this help"], ["Esc", "close this help"]];

function keyHelp(): HTMLElement {
  return h("div", { class: "key-help", role: "dialog", "aria-label": "keyboard shortcuts", hidden: true, "data-testid": "key-help" },
    h("h3", null, "Keyboard"), h("table", null, h("tbody", null, ...GLOBAL_KEYS.map(([k, , what]) => h("tr", null, h("td", null, h("kbd", null, k)), h("td", null, what))),
      ...VIEW_KEYS.map(([k, what]) => h("tr", null, h("td", null, h("kbd", null, k)), h("td", null, what))))));
}

function onKey(ev: KeyboardEvent, help: HTMLElement): void {
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const t = ev.target as HTMLElement | null;
  if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) {
    if (ev.key === "Escape") t.blur();
    return;
  }
  if (ev.key === "Escape") { help.hidden = true; return; }
  if (ev.key === "?") { help.hidden = !help.hidden; ev.preventDefault(); return; }
  if (ev.key === "/") {
    ev.preventDefault();
    const q = document.querySelector<HTMLInputElement>("input[name=q]");
    if (q) q.focus(); else location.hash = "#/search?focus=1";
    return;
  }
  const own = document.querySelector<HTMLElement>(`main [data-key="${CSS.escape(ev.key)}"]`);
  if (own) { ev.preventDefault(); own.click(); return; }
  const global = GLOBAL_KEYS.find(([k]) => k === ev.key);
  if (global) { ev.preventDefault(); location.hash = global[1]; }
}

function boot(): void {
  const app = document.getElementById("app")!;
  const main = h("main", { id: "main" });
  const help = keyHelp();
  app.replaceChildren(header(), main, help);
  const go = () => void render(main, parseHash(location.hash));
  window.addEventListener("hashchange", go);
  document.addEventListener("keydown", (ev) => onKey(ev, help));
  go();
}

// For the browser benchmark (bench/results/dashboard.json, graph500_render_ms): lay out and draw a synthetic
// flow graph of n nodes in an off-screen box with the same code the flow-graph view uses.
(window as unknown as Record<string, unknown>).__atlasBench = {
  async renderGraph(n: number): Promise<{ ms: number; layoutMs: number; nodes: number }> {
    const box = h("div", { style: "position:absolute;left:0;top:0;width:1200px;height:800px" });
    document.body.append(box);
    const g = syntheticGraph(n);
    const d = drawFlowGraph(box, g, () => undefined);
    const ms = await d.painted;
    d.destroy();
    box.remove();
    return { ms, layoutMs: d.ms, nodes: g.nodes.length };
  },
};

boot();
