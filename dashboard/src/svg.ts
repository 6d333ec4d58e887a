// SVG pictures for the feature page and the atlas overview: plain SVG elements (no canvas), readable without
// colour — every series has its own pattern, dash or marker shape and a text label, and every bar a <title>.
const NS = "http://www.w3.org/2000/svg";
type A = Record<string, string | number | null | undefined | false>;

export function s<K extends keyof SVGElementTagNameMap>(tag: K, attrs?: A | null, ...children: (Node | string | null | undefined | false)[]): SVGElementTagNameMap[K] {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs ?? {})) if (v !== null && v !== undefined && v !== false) el.setAttribute(k, String(v));
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : document.createTextNode(c));
  return el;
}

let uniq = 0;
/** Fill patterns that stay distinct in greyscale: solid, diagonal hatch, dots, cross-hatch, horizontal lines. */
export const PATTERNS = ["solid", "hatch", "dots", "cross", "lines"] as const;
export type Pattern = (typeof PATTERNS)[number];

function defs(prefix: string): SVGDefsElement {
  const p = (name: string, ...kids: SVGElement[]) => s("pattern", { id: `${prefix}-${name}`, width: 6, height: 6, patternUnits: "userSpaceOnUse" }, ...kids);
  return s("defs", null,
    p("hatch", s("rect", { width: 6, height: 6, fill: "#fff" }), s("path", { d: "M0,6 L6,0", stroke: "#333", "stroke-width": 1.2 })),
    p("dots", s("rect", { width: 6, height: 6, fill: "#fff" }), s("circle", { cx: 3, cy: 3, r: 1.3, fill: "#333" })),
    p("cross", s("rect", { width: 6, height: 6, fill: "#fff" }), s("path", { d: "M0,6 L6,0 M0,0 L6,6", stroke: "#333", "stroke-width": 0.9 })),
    p("lines", s("rect", { width: 6, height: 6, fill: "#fff" }), s("path", { d: "M0,3 L6,3", stroke: "#333", "stroke-width": 1.2 })));
}

function fillOf(prefix: string, pat: Pattern, colour: string): string {
  return pat === "solid" ? colour : `url(#${prefix}-${pat})`;
}

export interface Frame { svg: SVGSVGElement; x0: number; y0: number; w: number; h: number; prefix: string }

/** An SVG with margins, axis titles and a caption (role img + aria-label for screen readers). */
export function frame(width: number, height: number, label: string, xTitle?: string, yTitle?: string): Frame {
  const prefix = `p${++uniq}`;
  const m = { l: 44, r: 10, t: 8, b: xTitle ? 34 : 20 };
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": label, class: "chart", "font-size": 10, "font-family": "system-ui, sans-serif" }, defs(prefix));
  if (xTitle) svg.append(s("text", { x: m.l + (width - m.l - m.r) / 2, y: height - 4, "text-anchor": "middle", fill: "#444" }, xTitle));
  if (yTitle) svg.append(s("text", { x: 10, y: m.t + (height - m.t - m.b) / 2, "text-anchor": "middle", fill: "#444", transform: `rotate(-90 10 ${m.t + (height - m.t - m.b) / 2})` }, yTitle));
  return { svg, x0: m.l, y0: m.t, w: width - m.l - m.r, h: height - m.t - m.b, prefix };
}

function yAxis(f: Frame, max: number, ticks: number[], fmtTick: (v: number) => string, scale: (v: number) => number): void {
  f.svg.append(s("line", { x1: f.x0, y1: f.y0, x2: f.x0, y2: f.y0 + f.h, stroke: "#999" }), s("line", { x1: f.x0, y1: f.y0 + f.h, x2: f.x0 + f.w, y2: f.y0 + f.h, stroke: "#999" }));
  for (const t of ticks) {
    if (t > max) continue;
    const y = f.y0 + f.h - scale(t) * f.h;
    f.svg.append(s("line", { x1: f.x0 - 3, y1: y, x2: f.x0, y2: y, stroke: "#999" }), s("text", { x: f.x0 - 5, y: y + 3, "text-anchor": "end", fill: "#555" }, fmtTick(t)));
  }
}

export function short(x: number): string {
  const a = Math.abs(x);
  if (a === 0) return "0";
  if (Number.isInteger(x) && a < 1000) return String(x);
  if (a >= 1000) return x.toExponential(0);
  if (a >= 10) return x.toFixed(0);
  if (a >= 1) return x.toFixed(1);
  return x.toPrecision(2);
}

/** Bars of a histogram; `logY` draws counts on log10(1 + count) so rare bins stay visible. `marker` draws a
 * labelled vertical line at a value on the x axis (e.g. this feature among its SAE's features). */
export function histogram(opts: { edges: number[]; counts: number[]; label: string; xTitle: string; yTitle: string; logY?: boolean; width?: number; height?: number; marker?: { x: number; text: string }; pattern?: Pattern; testid?: string }): SVGSVGElement {
  const f = frame(opts.width ?? 380, opts.height ?? 160, opts.label, opts.xTitle, opts.yTitle + (opts.logY ? " (log)" : ""));
  const { edges, counts } = opts;
  if (opts.testid) f.svg.setAttribute("data-testid", opts.testid);
  const tr = (c: number) => (opts.logY ? Math.log10(1 + c) : c);
  const maxC = Math.max(1, ...counts);
  const scale = (c: number) => tr(c) / tr(maxC);
  const lo = edges[0] ?? 0;
  const hi = edges[edges.length - 1] ?? 1;
  const xs = (v: number) => f.x0 + ((v - lo) / (hi - lo || 1)) * f.w;
  const ticks = opts.logY ? [1, 10, 100, 1000, 10_000, 100_000].filter((t) => t <= maxC) : [0, maxC / 2, maxC].map(Math.round);
  yAxis(f, maxC, ticks, short, scale);
  counts.forEach((c, i) => {
    const x1 = xs(edges[i]);
    const x2 = xs(edges[i + 1]);
    const hgt = scale(c) * f.h;
    f.svg.append(s("rect", { x: x1, y: f.y0 + f.h - hgt, width: Math.max(0.5, x2 - x1 - 0.5), height: hgt, fill: fillOf(f.prefix, opts.pattern ?? "solid", "#4e79a7"), stroke: "#345", "stroke-width": 0.5, class: "bar", "data-count": c },
      s("title", null, `${short(edges[i])} – ${short(edges[i + 1])}: ${c}`)));
  });
  for (const v of [lo, (lo + hi) / 2, hi]) f.svg.append(s("text", { x: xs(v), y: f.y0 + f.h + 12, "text-anchor": "middle", fill: "#555" }, short(v)));
  if (opts.marker) {
    const x = xs(Math.max(lo, Math.min(hi, opts.marker.x)));
    f.svg.append(s("line", { x1: x, y1: f.y0, x2: x, y2: f.y0 + f.h, stroke: "#111", "stroke-width": 2, "stroke-dasharray": "4 2" }),
      s("text", { x: Math.min(x + 3, f.x0 + f.w - 60), y: f.y0 + 10, fill: "#111", "font-weight": "bold" }, opts.marker.text));
  }
  return f.svg;
}

/** A horizontal bar of `value` in [0, max] (similarity bars, logit weights), with its number written beside it. */
export function hbar(value: number, max: number, text: string, width = 120, negative = false): SVGSVGElement {
  const w = Math.max(0, Math.min(1, Math.abs(value) / (max || 1))) * (width - 44);
  return s("svg", { width, height: 12, viewBox: `0 0 ${width} 12`, role: "img", "aria-label": text, class: "hbar" },
    s("rect", { x: 0, y: 1, width: width - 44, height: 10, fill: "#eee" }),
    s("rect", { x: 0, y: 1, width: w, height: 10, fill: negative ? "#c44" : "#4e79a7", "fill-opacity": negative ? 0.55 : 0.85, stroke: "#333", "stroke-width": 0.5 }, s("title", null, text)),
    s("text", { x: width - 40, y: 10, "font-size": 10, fill: "#222" }, text));
}

export interface Series { name: string; values: (number | null)[]; dash?: string; marker: "circle" | "square" | "triangle"; band?: ([number, number] | null)[] }

function mark(kind: Series["marker"], x: number, y: number, title: string): SVGElement {
  const t = s("title", null, title);
  if (kind === "square") return s("rect", { x: x - 3.5, y: y - 3.5, width: 7, height: 7, fill: "#fff", stroke: "#111", "stroke-width": 1.4, class: "point" }, t);
  if (kind === "triangle") return s("path", { d: `M${x},${y - 4.5} L${x + 4.5},${y + 3.5} L${x - 4.5},${y + 3.5} Z`, fill: "#111", class: "point" }, t);
  return s("circle", { cx: x, cy: y, r: 3.5, fill: "#111", class: "point" }, t);
}

/** Values per layer (x = layer) on [0, yMax], each series with its own dash and marker; an optional hatched band per
 * layer (the null's median–p99.9) and a dashed reference line per layer (the seed ceiling). */
export function layerChart(opts: { layers: number[]; series: Series[]; label: string; yTitle: string; yMax?: number; ceiling?: (number | null)[]; width?: number; height?: number; testid?: string }): SVGSVGElement {
  const f = frame(opts.width ?? 380, opts.height ?? 190, opts.label, "layer", opts.yTitle);
  if (opts.testid) f.svg.setAttribute("data-testid", opts.testid);
  const yMax = opts.yMax ?? 1;
  const n = opts.layers.length;
  const xs = (i: number) => f.x0 + (n <= 1 ? f.w / 2 : 12 + (i / (n - 1)) * (f.w - 24));
  const ys = (v: number) => f.y0 + f.h - (Math.max(0, Math.min(yMax, v)) / yMax) * f.h;
  yAxis(f, yMax, [0, yMax / 4, yMax / 2, (3 * yMax) / 4, yMax], (v) => v.toFixed(2), (v) => v / yMax);
  opts.layers.forEach((l, i) => f.svg.append(s("text", { x: xs(i), y: f.y0 + f.h + 12, "text-anchor": "middle", fill: "#555" }, String(l))));
  for (const ser of opts.series) {
    (ser.band ?? []).forEach((b, i) => {
      if (!b) return;
      const w = n <= 1 ? 30 : Math.min(30, (f.w - 24) / (n - 1) - 4);
      f.svg.append(s("rect", { x: xs(i) - w / 2, y: ys(b[1]), width: w, height: Math.max(1, ys(b[0]) - ys(b[1])), fill: `url(#${f.prefix}-hatch)`, stroke: "#777", "stroke-width": 0.6, class: "null-band" },
        s("title", null, `layer ${opts.layers[i]}: ${ser.name} null median ${b[0].toFixed(3)} – p99.9 ${b[1].toFixed(3)}`)));
    });
  }
  (opts.ceiling ?? []).forEach((c, i) => {
    if (c === null || c === undefined) return;
    f.svg.append(s("line", { x1: xs(i) - 14, x2: xs(i) + 14, y1: ys(c), y2: ys(c), stroke: "#111", "stroke-width": 2.2, "stroke-dasharray": "2 2", class: "ceiling" }, s("title", null, `layer ${opts.layers[i]}: seed ceiling ${c.toFixed(3)}`)));
  });
  for (const ser of opts.series) {
    const pts = ser.values.map((v, i) => (v === null ? null : ([xs(i), ys(v)] as const)));
    const d = pts.reduce((acc, p, i) => (p ? `${acc}${acc && pts[i - 1] ? "L" : "M"}${p[0].toFixed(1)},${p[1].toFixed(1)}` : acc), "");
    if (d) f.svg.append(s("path", { d, fill: "none", stroke: "#111", "stroke-width": 1.4, "stroke-dasharray": ser.dash ?? null }));
    pts.forEach((p, i) => p && f.svg.append(mark(ser.marker, p[0], p[1], `layer ${opts.layers[i]}: ${ser.name} ${ser.values[i]!.toFixed(3)}`)));
  }
  return f.svg;
}

/** A legend row for layer charts and stacked bars (pattern swatches or marker + dash samples). */
export function legendSvg(items: { name: string; pattern?: Pattern; colour?: string; marker?: Series["marker"]; dash?: string; band?: boolean; ceiling?: boolean }[]): SVGSVGElement {
  const prefix = `p${++uniq}`;
  const width = items.reduce((a, it) => a + 34 + it.name.length * 6, 0);
  const svg = s("svg", { width, height: 16, viewBox: `0 0 ${width} 16`, class: "legend-svg", role: "img", "aria-label": `legend: ${items.map((i) => i.name).join(", ")}`, "font-size": 10 }, defs(prefix));
  let x = 0;
  for (const it of items) {
    if (it.marker) {
      svg.append(s("line", { x1: x, x2: x + 22, y1: 8, y2: 8, stroke: "#111", "stroke-dasharray": it.dash ?? null }), mark(it.marker, x + 11, 8, it.name));
    } else if (it.band) {
      svg.append(s("rect", { x, y: 3, width: 22, height: 10, fill: `url(#${prefix}-hatch)`, stroke: "#777" }));
    } else if (it.ceiling) {
      svg.append(s("line", { x1: x, x2: x + 22, y1: 8, y2: 8, stroke: "#111", "stroke-width": 2.2, "stroke-dasharray": "2 2" }));
    } else {
      svg.append(s("rect", { x, y: 3, width: 22, height: 10, fill: fillOf(prefix, it.pattern ?? "solid", it.colour ?? "#4e79a7"), stroke: "#333", "stroke-width": 0.6 }));
    }
    svg.append(s("text", { x: x + 26, y: 12, fill: "#222" }, it.name));
    x += 34 + it.name.length * 6;
  }
  return svg;
}

/** Stacked shares per row (e.g. category shares per layer), each part with its own pattern and a <title>. */
export function stackedBars(opts: { rows: { label: string; parts: number[] }[]; names: string[]; patterns: Pattern[]; colours: string[]; label: string; xTitle: string; width?: number; height?: number; testid?: string }): SVGSVGElement {
  const f = frame(opts.width ?? 380, opts.height ?? 190, opts.label, opts.xTitle, "share");
  if (opts.testid) f.svg.setAttribute("data-testid", opts.testid);
  yAxis(f, 1, [0, 0.25, 0.5, 0.75, 1], (v) => `${Math.round(v * 100)}%`, (v) => v);
  const n = opts.rows.length;
  const bw = Math.min(40, f.w / Math.max(1, n) - 6);
  opts.rows.forEach((r, i) => {
    const x = f.x0 + (i + 0.5) * (f.w / n) - bw / 2;
    let acc = 0;
    r.parts.forEach((v, j) => {
      if (v <= 0) return;
      const y = f.y0 + f.h - (acc + v) * f.h;
      f.svg.append(s("rect", { x, y, width: bw, height: v * f.h, fill: fillOf(f.prefix, opts.patterns[j], opts.colours[j]), stroke: "#333", "stroke-width": 0.6, class: "bar" },
        s("title", null, `${opts.xTitle} ${r.label}: ${opts.names[j]} ${(100 * v).toFixed(1)}%`)));
      acc += v;
    });
    f.svg.append(s("text", { x: x + bw / 2, y: f.y0 + f.h + 12, "text-anchor": "middle", fill: "#555" }, r.label));
  });
  return f.svg;
}

/** One value per item as vertical bars with the value written on top (EV, L0, dead per SAE). */
export function valueBars(opts: { items: { label: string; value: number | null }[]; label: string; yTitle: string; yMax?: number; fmt: (v: number) => string; width?: number; height?: number; reference?: { value: number; text: string }; testid?: string }): SVGSVGElement {
  const f = frame(opts.width ?? 380, opts.height ?? 170, opts.label, undefined, opts.yTitle);
  f.h -= 16; // room for the slanted SAE names
  if (opts.testid) f.svg.setAttribute("data-testid", opts.testid);
  const vals = opts.items.map((i) => i.value ?? 0);
  const yMax = opts.yMax ?? Math.max(1e-9, ...vals) * 1.15;
  yAxis(f, yMax, [0, yMax / 2, yMax], short, (v) => v / yMax);
  const n = opts.items.length;
  const bw = Math.min(30, f.w / Math.max(1, n) - 4);
  opts.items.forEach((it, i) => {
    const x = f.x0 + (i + 0.5) * (f.w / n) - bw / 2;
    const v = it.value;
    if (v !== null) {
      const hgt = (Math.max(0, Math.min(v, yMax)) / yMax) * f.h; // a negative EV draws no bar; its value is still written
      f.svg.append(s("rect", { x, y: f.y0 + f.h - hgt, width: bw, height: hgt, fill: "#4e79a7", stroke: "#234", "stroke-width": 0.5, class: "bar" }, s("title", null, `${it.label}: ${opts.fmt(v)}`)));
      if (n <= 16) f.svg.append(s("text", { x: x + bw / 2, y: f.y0 + f.h - hgt - 2, "text-anchor": "middle", fill: "#222", "font-size": 8 }, opts.fmt(v)));
    }
    f.svg.append(s("text", { x: x + bw / 2, y: f.y0 + f.h + 11, "text-anchor": "end", fill: "#555", "font-size": 8, transform: `rotate(-30 ${x + bw / 2} ${f.y0 + f.h + 11})` }, it.label));
  });
  if (opts.reference) {
    const y = f.y0 + f.h - (opts.reference.value / yMax) * f.h;
    f.svg.append(s("line", { x1: f.x0, x2: f.x0 + f.w, y1: y, y2: y, stroke: "#111", "stroke-dasharray": "5 3" }), s("text", { x: f.x0 + f.w - 2, y: y - 3, "text-anchor": "end", fill: "#111" }, opts.reference.text));
  }
  return f.svg;
}
