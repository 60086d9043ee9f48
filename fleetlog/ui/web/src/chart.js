// A metric chart: one line per run (the bucket mean) inside its min/max envelope.
// The server picks the resolution for the range shown (raw points, a rollup, or
// downsampling); dragging a range zooms and refetches that range at a finer
// resolution, a double click goes back to the whole series.
import uPlot from "uplot";
import { api } from "./api.js";
import { h, fmtAxis, fmtNum } from "./dom.js";

export const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];

function caption(res, series) {
  const bad = series.reduce((n, s) => n + s.nonfinite, 0);
  const raw = `${fmtNum(res.raw_points)} points`;
  const how =
    res.source === "raw"
      ? "raw"
      : res.source === "rollup"
        ? `rollup ${res.rollup_resolution} → 1 per ${fmtNum(res.bucket)} steps`
        : `downsampled, 1 per ${fmtNum(res.bucket)} steps`;
  return `${how} · ${raw}${bad ? ` · ${bad} NaN/inf` : ""}`;
}

export class MetricChart {
  constructor(container, { runs, metric, rank = null, height = 200, labels = null }) {
    this.runs = runs;
    this.metric = metric;
    this.rank = rank;
    this.height = height;
    this.labels = labels || {};
    this.range = null; // [start, end] steps while zoomed
    this.loads = 0;
    this.plot = null;
    this.info = h("span", { className: "chart-info" }, "loading…");
    this.legend = h("span", { className: "chart-legend" });
    this.body = h("div", { className: "chart-body" });
    this.el = h(
      "div",
      { className: "chart", dataset: { metric } },
      h("div", { className: "chart-head" }, h("strong", { className: "chart-title" }, metric), this.legend, this.info),
      this.body,
    );
    container.append(this.el);
    this.timer = null;
  }

  async load() {
    const width = this.body.clientWidth || 600;
    const [start, end] = this.range || [null, null];
    let body;
    try {
      body = await api("/api/series", {
        run: this.runs,
        metric: this.metric,
        points: Math.round(Math.min(2000, Math.max(200, width))),
        start: start === null ? null : Math.floor(start),
        end: end === null ? null : Math.ceil(end),
        rank: this.rank,
      });
    } catch (err) {
      this.info.textContent = `error: ${err.message}`;
      this.el.dataset.error = err.message;
      return;
    }
    this.draw(body);
  }

  draw(body) {
    const series = body.series;
    const tables = series.map((s) => [s.step, s.value, s.min, s.max]);
    const data = tables.length ? (tables.length === 1 ? tables[0] : uPlot.join(tables)) : [[], []];
    this.loads += 1;
    Object.assign(this.el.dataset, {
      points: String(data[0].length),
      series: String(series.length),
      source: body.resolution.source,
      bucket: String(body.resolution.bucket ?? 1),
      loads: String(this.loads),
    });
    this.info.textContent = caption(body.resolution, series);
    this.legend.replaceChildren(
      ...series.map((s, i) =>
        h("span", { className: "swatch", style: `--c:${this.color(s, i)}` }, this.label(s, series.length)),
      ),
    );
    if (this.plot && this.plot.series.length === 1 + 3 * series.length) {
      this.plot.setData(data, this.range === null);
      if (this.range) this.plot.setScale("x", { min: this.range[0], max: this.range[1] });
      return;
    }
    this.plot?.destroy();
    this.plot = new uPlot(this.options(series), data, this.body);
    this.plot.over.addEventListener("dblclick", () => {
      this.range = null;
      this.load();
    });
  }

  // Runs keep their colour across charts (their place in the run list); one run's ranks take turns.
  color(s, i) {
    const k = this.runs.length > 1 ? this.runs.indexOf(s.run_id) : i;
    return COLORS[(k < 0 ? i : k) % COLORS.length];
  }

  label(s, n) {
    const name = this.labels[s.run_id] || s.run_id;
    return n > 1 && this.runs.length === 1 ? `rank ${s.rank}` : s.rank ? `${name} (rank ${s.rank})` : name;
  }

  options(series) {
    const lines = [{}];
    const bands = [];
    series.forEach((s, i) => {
      const color = this.color(s, i);
      const base = 1 + 3 * i;
      lines.push({ label: this.label(s, series.length), stroke: color, width: 1.5, spanGaps: true, points: { show: false } });
      lines.push({ label: "min", stroke: "transparent", spanGaps: true, points: { show: false } });
      lines.push({ label: "max", stroke: "transparent", spanGaps: true, points: { show: false } });
      bands.push({ series: [base + 2, base + 1], fill: `${color}26` });
    });
    return {
      width: this.body.clientWidth || 600,
      height: this.height,
      legend: { show: false },
      scales: { x: { time: false } },
      axes: [{ label: "step", size: 36 }, { size: 64, values: (u, ticks) => ticks.map(fmtAxis) }],
      cursor: { drag: { x: true, y: false }, bind: { dblclick: () => null } },
      series: lines,
      bands,
      hooks: {
        // A drag selects a step range: uPlot zooms at once, then the range is refetched finer.
        setSelect: [
          (u) => {
            if (u.select.width < 2) return;
            const lo = u.posToVal(u.select.left, "x");
            const hi = u.posToVal(u.select.left + u.select.width, "x");
            this.range = [lo, hi];
            clearTimeout(this.timer);
            this.timer = setTimeout(() => this.load(), 100);
          },
        ],
      },
    };
  }

  resize() {
    if (this.plot) this.plot.setSize({ width: this.body.clientWidth || 600, height: this.height });
  }

  destroy() {
    clearTimeout(this.timer);
    this.plot?.destroy();
    this.el.remove();
  }
}

// A small time chart (fleet throughput): x is unix seconds.
export function timeChart(container, label, height = 180) {
  const plot = new uPlot(
    {
      width: container.clientWidth || 600,
      height,
      legend: { show: false },
      series: [{}, { label, stroke: COLORS[0], width: 1.5, fill: `${COLORS[0]}1a`, points: { show: false } }],
      axes: [{}, { size: 64, values: (u, ticks) => ticks.map(fmtAxis) }],
    },
    [[], []],
    container,
  );
  return plot;
}
