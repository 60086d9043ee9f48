// A grid of metric charts, grouped by name prefix ("train/loss" -> train), drawn when
// scrolled into view and a few at a time, so a run with hundreds of metrics opens fast.
import { MetricChart } from "./chart.js";
import { h } from "./dom.js";

const SYSTEM = "sys";
const FIRST = ["metrics", "train", "eval", "val", "valid", "test"];

export class ChartGrid {
  constructor(container, { runs, metrics, labels = null, filter = "", rank = null }) {
    this.charts = [];
    this.queue = [];
    this.active = 0;
    this.observer = new IntersectionObserver((entries) => {
      for (const e of entries) {
        if (!e.isIntersecting) continue;
        this.observer.unobserve(e.target);
        this.enqueue(e.target.chart);
      }
    }, { rootMargin: "200px" });
    const groups = new Map();
    for (const m of metrics) {
      const i = m.indexOf("/");
      const g = i > 0 ? m.slice(0, i) : "metrics";
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g).push(m);
    }
    // Training curves first, system telemetry last, the rest by name.
    const weight = (g) => (g === SYSTEM ? 2 : FIRST.includes(g) ? 0 : 1);
    const order = [...groups.keys()].sort((a, b) => weight(a) - weight(b) || a.localeCompare(b));
    for (const g of order) {
      const grid = h("div", { className: "chart-grid" });
      container.append(h("h3", { className: "group" }, g === SYSTEM ? "System telemetry" : g), grid);
      for (const m of groups.get(g)) {
        const chart = new MetricChart(grid, { runs, metric: m, labels, rank });
        chart.el.chart = chart;
        chart.el.hidden = filter && !m.includes(filter);
        this.charts.push(chart);
        this.observer.observe(chart.el);
      }
    }
  }

  enqueue(chart) {
    this.queue.push(chart);
    this.pump();
  }

  pump() {
    while (this.active < 4 && this.queue.length) {
      const chart = this.queue.shift();
      this.active += 1;
      chart.drawn = true;
      chart.load().finally(() => {
        this.active -= 1;
        this.pump();
      });
    }
  }

  filter(text) {
    for (const c of this.charts) c.el.hidden = Boolean(text) && !c.metric.toLowerCase().includes(text.toLowerCase());
  }

  refresh() {
    for (const c of this.charts) if (c.drawn && !c.range && !c.el.hidden) this.enqueue(c);
  }

  resize() {
    for (const c of this.charts) c.resize();
  }

  destroy() {
    this.observer.disconnect();
    for (const c of this.charts) c.destroy();
  }
}
