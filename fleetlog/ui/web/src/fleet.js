// The fleet now: points per second, running runs, runs gone silent, ranks falling behind.
import { api, enc } from "./api.js";
import { timeChart } from "./chart.js";
import { h, fmtDuration, fmtNum, table, section, errorBox } from "./dom.js";

export function fleetView(root, ctx) {
  root.append(h("h1", {}, "Fleet"));
  const chartBox = h("div", { className: "chart-body", id: "throughput" });
  const active = h("div", {});
  const lost = h("div", {});
  const stragglers = h("div", {});
  const status = h("div", {});
  root.append(status, section("Throughput (points/s, last 10 min)", chartBox), section("Running runs", active), section("Lost runs (silent)", lost), section("Stragglers", stragglers));
  const plot = timeChart(chartBox, "points/s");
  ctx.onDispose(() => plot.destroy());
  ctx.onResize(() => plot.setSize({ width: chartBox.clientWidth || 600, height: 180 }));
  const link = (r) => h("a", { href: `#/run/${enc(r.run_id)}` }, r.name || r.run_id);

  async function load() {
    let body;
    try {
      body = await api("/api/fleet");
      status.replaceChildren();
    } catch (err) {
      status.replaceChildren(errorBox(err));
      return;
    }
    plot.setData([body.throughput.map((p) => Date.parse(p.time) / 1000), body.throughput.map((p) => p.points_per_second)]);
    chartBox.dataset.points = String(body.throughput.length);
    const cols = [
      { key: "run_id", label: "run", render: link },
      { key: "experiment" },
      { key: "world_size", label: "ranks" },
      { key: "step", label: "latest step" },
      { key: "points_per_second", label: "points/s", render: (r) => fmtNum(Math.round(r.points_per_second)) },
      { key: "silent_seconds", label: "silent for", render: (r) => fmtDuration(r.silent_seconds) },
    ];
    active.replaceChildren(body.active.length ? table(cols, body.active) : h("p", { className: "muted" }, "Nothing running."));
    lost.replaceChildren(body.lost.length ? table(cols, body.lost) : h("p", { className: "muted" }, "None."));
    stragglers.replaceChildren(
      body.stragglers.length
        ? table([{ key: "run_id", label: "run", render: link }, { key: "rank" }, { key: "step" }, { key: "lead_step", label: "leading step" }, { key: "behind", label: "steps behind" }], body.stragglers)
        : h("p", { className: "muted" }, "None."),
    );
    ctx.setLive(body.active.length > 0);
  }
  load();
  ctx.every(3000, load);
}
