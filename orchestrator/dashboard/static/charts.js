// Small SVG charts for the Spillway dashboard: no library, no network.
// Every function draws into a container element, replacing what was there.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(name, attrs, text) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = Math.pow(10, Math.floor(Math.log10(value)));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function frame(container, width, height) {
  container.replaceChildren();
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  container.appendChild(svg);
  return svg;
}

function emptyNote(container, message) {
  container.replaceChildren();
  const note = document.createElement("p");
  note.className = "empty";
  note.textContent = message || "No data in this range.";
  container.appendChild(note);
}

// xs: numbers (e.g. epoch ms or thresholds); series: [{name, values, color, dash}]
// options: {yFormat, xFormat, markers: [{x, label, color}], yMax, height}
function lineChart(container, xs, series, options) {
  const opts = options || {};
  if (!xs.length) return emptyNote(container);
  const W = 640, H = opts.height || 220, L = 64, R = 12, T = 12, B = 28;
  const svg = frame(container, W, H);
  const xMin = Math.min(...xs), xMax = Math.max(...xs);
  const all = series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined));
  const yMax = opts.yMax || niceMax(Math.max(0, ...all));
  const x = (v) => L + (xMax === xMin ? (W - L - R) / 2 : ((v - xMin) / (xMax - xMin)) * (W - L - R));
  const y = (v) => H - B - (v / yMax) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const value = (yMax * i) / 4;
    svg.appendChild(svgEl("line", { x1: L, x2: W - R, y1: y(value), y2: y(value), class: "grid" }));
    svg.appendChild(svgEl("text", { x: L - 6, y: y(value) + 4, class: "tick", "text-anchor": "end" },
      (opts.yFormat || String)(value)));
  }
  const ticks = Math.min(6, xs.length);
  for (let i = 0; i < ticks; i++) {
    const value = xs[Math.round((i * (xs.length - 1)) / Math.max(1, ticks - 1))];
    const anchor = ticks > 1 && i === 0 ? "start" : ticks > 1 && i === ticks - 1 ? "end" : "middle";
    svg.appendChild(svgEl("text", { x: x(value), y: H - 8, class: "tick", "text-anchor": anchor },
      (opts.xFormat || String)(value)));
  }
  for (const marker of opts.markers || []) {
    svg.appendChild(svgEl("line", { x1: x(marker.x), x2: x(marker.x), y1: T, y2: H - B,
      class: "marker", stroke: marker.color || "#c0392b" }));
    svg.appendChild(svgEl("text", { x: x(marker.x) + 4, y: T + 10, class: "tick", fill: marker.color || "#c0392b" }, marker.label));
  }
  for (const s of series) {
    const points = xs.map((xv, i) => [xv, s.values[i]]).filter(([, v]) => v !== null && v !== undefined);
    const path = points.map(([xv, v], i) => `${i ? "L" : "M"}${x(xv).toFixed(1)},${y(v).toFixed(1)}`).join("");
    svg.appendChild(svgEl("path", { d: path, fill: "none", stroke: s.color, "stroke-width": 2,
      "stroke-dasharray": s.dash ? "5 4" : "none", "data-series": s.name }));
    for (const [xv, v] of points.length <= 60 ? points : []) {
      const dot = svgEl("circle", { cx: x(xv), cy: y(v), r: 3, fill: s.color });
      dot.appendChild(svgEl("title", {}, `${s.name}: ${(opts.yFormat || String)(v)} at ${(opts.xFormat || String)(xv)}`));
      svg.appendChild(dot);
    }
  }
  legend(container, series);
}

function legend(container, series) {
  const box = document.createElement("div");
  box.className = "legend";
  for (const s of series) {
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = s.color;
    item.append(swatch, s.name);
    box.appendChild(item);
  }
  container.appendChild(box);
}

// bins: counts per confidence bin (width 1/bins.length); escalated: the escalated part.
function histogram(container, bins, escalated, threshold) {
  const W = 300, H = 120, L = 28, R = 6, T = 8, B = 20;
  const svg = frame(container, W, H);
  const top = niceMax(Math.max(1, ...bins));
  const barW = (W - L - R) / bins.length;
  const y = (v) => H - B - (v / top) * (H - T - B);
  bins.forEach((count, i) => {
    if (!count) return;
    const esc = escalated[i] || 0;
    const bar = svgEl("rect", { x: L + i * barW, y: y(count), width: Math.max(1, barW - 0.5),
      height: y(esc) - y(count), class: "bar-accepted" });
    bar.appendChild(svgEl("title", {}, `${(i / bins.length).toFixed(2)}–${((i + 1) / bins.length).toFixed(2)}: ${count} (${esc} escalated)`));
    svg.appendChild(bar);
    if (esc) svg.appendChild(svgEl("rect", { x: L + i * barW, y: y(esc), width: Math.max(1, barW - 0.5),
      height: H - B - y(esc), class: "bar-escalated" }));
  });
  svg.appendChild(svgEl("text", { x: L - 4, y: T + 8, class: "tick", "text-anchor": "end" }, String(top)));
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    svg.appendChild(svgEl("text", { x: L + t * (W - L - R), y: H - 6, class: "tick", "text-anchor": "middle" }, String(t)));
  }
  if (threshold !== null && threshold !== undefined) {
    const tx = L + threshold * (W - L - R);
    svg.appendChild(svgEl("line", { x1: tx, x2: tx, y1: T, y2: H - B, class: "threshold" }));
    svg.appendChild(svgEl("text", { x: tx + 3, y: T + 8, class: "tick threshold-label" }, `threshold ${threshold}`));
  }
}

// rows: [{label, value, note}] drawn as horizontal bars of value in [0, 1].
function shareBars(container, rows) {
  if (!rows.length) return emptyNote(container);
  container.replaceChildren();
  for (const row of rows) {
    const line = document.createElement("div");
    line.className = "share";
    const name = document.createElement("span");
    name.textContent = row.label;
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.style.width = `${Math.round((row.value || 0) * 1000) / 10}%`;
    track.appendChild(fill);
    const note = document.createElement("span");
    note.textContent = row.note;
    line.append(name, track, note);
    container.appendChild(line);
  }
}

window.SpillwayCharts = { lineChart, histogram, shareBars, emptyNote };
