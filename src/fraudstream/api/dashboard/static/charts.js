"use strict";
// A small SVG line chart: enough for the overview's time series, no library needed.
// series: [{name, cls, points: [[t_ms, value|null], ...]}]; gaps where value is null.
const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  return el;
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmtNum(v) {
  if (v === null || v === undefined) return "–";
  if (Number.isInteger(v) && Math.abs(v) < 1e4) return String(v);
  if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(0) + "k";
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

function lineChart(series, opts) {
  const W = 560, H = 170, L = 48, R = 8, T = 10, B = 22;
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" });
  const all = series.flatMap((s) => s.points);
  const ts = all.map((p) => p[0]);
  const vs = all.map((p) => p[1]).filter((v) => v !== null && v !== undefined);
  if (!ts.length) return svg;
  const t0 = Math.min(...ts), t1 = Math.max(...ts) || t0 + 1;
  const vmax = niceMax(Math.max(0, ...vs));
  const x = (t) => L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - v / vmax) * (H - T - B);
  for (const f of [0, 0.5, 1]) {
    svg.appendChild(svgEl("line", { x1: L, x2: W - R, y1: y(vmax * f), y2: y(vmax * f), class: "grid" }));
    const label = svgEl("text", { x: L - 6, y: y(vmax * f) + 4, class: "axis", "text-anchor": "end" });
    label.textContent = fmtNum(vmax * f);
    svg.appendChild(label);
  }
  const tl = (t) => new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  for (const [t, anchor] of [[t0, "start"], [t1, "end"]]) {
    const label = svgEl("text", { x: x(t), y: H - 6, class: "axis", "text-anchor": anchor });
    label.textContent = tl(t);
    svg.appendChild(label);
  }
  for (const s of series) {
    let d = "", pen = false;
    for (const [t, v] of s.points) {
      if (v === null || v === undefined) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    }
    if (d) svg.appendChild(svgEl("path", { d, class: `line ${s.cls || ""}` }));
  }
  if (opts && opts.title) {
    const title = svgEl("title", {});
    title.textContent = opts.title;
    svg.appendChild(title);
  }
  return svg;
}

window.fsCharts = { lineChart, fmtNum };
