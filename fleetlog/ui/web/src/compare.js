// Several runs overlaid: the params that differ, summaries, and one chart per chosen metric.
import { api, enc } from "./api.js";
import { ChartGrid } from "./charts.js";
import { COLORS } from "./chart.js";
import { h, fmtDuration, statusBadge, table, section, errorBox } from "./dom.js";

export async function compareView(root, ctx) {
  const runs = ctx.params.getAll("run");
  root.append(h("p", { className: "crumbs" }, h("a", { href: "#/" }, "runs"), " / compare"), h("h1", {}, `Comparing ${runs.length} runs`));
  let body;
  try {
    body = await api("/api/compare", { run: runs, metric: ctx.params.getAll("metric") });
  } catch (err) {
    if (!ctx.disposed) root.append(errorBox(err));
    return;
  }
  if (ctx.disposed) return;
  const labels = Object.fromEntries(body.runs.map((r) => [r.run_id, r.name || r.run_id]));
  const columns = body.columns
    .filter((c) => c !== "name" && !c.endsWith(".min") && !c.endsWith(".max"))
    .map((c) => ({
      key: c,
      label: c,
      render:
        c === "status"
          ? (r) => statusBadge(r.status)
          : c === "run_id"
            ? (r) => h("span", { className: "swatch", style: `--c:${COLORS[runs.indexOf(r.run_id) % COLORS.length]}` }, h("a", { href: `#/run/${enc(r.run_id)}` }, labels[r.run_id]))
            : c === "duration_seconds"
              ? (r) => fmtDuration(r.duration_seconds)
              : undefined,
    }));
  root.append(section("Runs", h("div", { className: "scroll" }, table(columns, body.runs))));

  const chosen = new Set(body.chosen);
  const picker = h(
    "div",
    { className: "picker" },
    body.metrics.map((m) =>
      h("label", {}, h("input", { type: "checkbox", checked: chosen.has(m), onchange: (e) => (e.target.checked ? chosen.add(m) : chosen.delete(m), draw()) }), m),
    ),
  );
  const charts = h("div", { id: "charts" });
  root.append(section("Metrics", picker, charts));
  let grid = null;
  const draw = () => {
    grid?.destroy();
    charts.replaceChildren();
    // Rank 0 of each run: one line per run keeps an overlay readable (a run page shows every rank).
    grid = new ChartGrid(charts, { runs, metrics: body.metrics.filter((m) => chosen.has(m)), labels, rank: 0 });
  };
  draw();
  ctx.onDispose(() => grid?.destroy());
  ctx.onResize(() => grid?.resize());
  const live = body.runs.some((r) => r.status === "Running");
  ctx.setLive(live);
  if (live) ctx.every(3000, () => grid.refresh());
}
