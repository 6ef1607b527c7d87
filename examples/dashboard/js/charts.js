// Time-series charts (uPlot). A chart keeps a bounded window of points and can take live
// points one at a time.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import {h} from "./dom.js";

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

/**
 * A line chart in a `<figure>` with a caption: `series` are `[{label, unit}]`; `points` are
 * `[unixSeconds, v1, v2, …]`. Returns `{el, push(point), set(points)}`.
 */
export function lineChart(title, series, {points = [], keep = 900, height = 180, yMin = 0} = {}) {
  const host = h("div", {class: "chart-body"});
  const figure = h("figure", {class: "chart", "aria-label": title},
    h("figcaption", {}, title), host);
  let data = toColumns(points, series.length);
  let plot = null;
  const opts = (width) => ({
    width,
    height,
    legend: {live: true},
    cursor: {drag: {x: false, y: false}},
    scales: {x: {time: true}, y: {range: (u, min, max) => [Math.min(yMin ?? min, min), max > 0 ? max * 1.1 : 1]}},
    axes: [{stroke: "currentColor", grid: {stroke: "rgba(127,127,127,0.2)"}},
      {stroke: "currentColor", grid: {stroke: "rgba(127,127,127,0.2)"}, size: 56, values: (u, vals) => vals.map(axisLabel)}],
    series: [{}, ...series.map((s, i) => ({
      label: s.unit ? `${s.label} (${s.unit})` : s.label,
      stroke: s.color || PALETTE[i % PALETTE.length],
      width: 2,
      spanGaps: false,
      dash: s.dash,
      value: (u, v) => (v === null || v === undefined ? "—" : fmt(v)),
    }))],
  });
  const mount = () => {
    const width = Math.max(240, host.clientWidth || 600);
    if (plot) { plot.setSize({width, height}); return; }
    plot = new uPlot(opts(width), data, host);
  };
  // Mount once the figure is in the page (its width is known then), and follow resizes.
  const ro = new ResizeObserver(() => { if (host.isConnected) mount(); });
  ro.observe(host);
  return {
    el: figure,
    push(point) {
      for (let i = 0; i < data.length; i++) data[i].push(point[i] ?? null);
      if (data[0].length > keep) for (const col of data) col.splice(0, col.length - keep);
      plot?.setData(data);
    },
    set(points) {
      data = toColumns(points, series.length);
      plot?.setData(data);
    },
    get length() { return data[0].length; },
  };
}

function toColumns(points, n) {
  const cols = Array.from({length: n + 1}, () => []);
  for (const p of points) for (let i = 0; i <= n; i++) cols[i].push(p[i] ?? null);
  return cols;
}

/** Axis labels short enough for the axis: 950, 1.5k, 2.3M, 4.1G. */
function axisLabel(v) {
  if (v === null || v === undefined) return "";
  const a = Math.abs(v);
  for (const [n, suffix] of [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]]) {
    if (a >= n) return `${+(v / n).toFixed(1)}${suffix}`;
  }
  return a >= 10 || a === 0 ? String(Math.round(v * 10) / 10) : String(+v.toPrecision(2));
}

function fmt(v) {
  const a = Math.abs(v);
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(2);
}
