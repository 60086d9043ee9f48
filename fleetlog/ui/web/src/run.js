// One run: its record, params and tags, metric charts, logs, tables, images, files and alerts.
import { api, enc, runPath } from "./api.js";
import { ChartGrid } from "./charts.js";
import { h, fmtTime, fmtDuration, fmtNum, statusBadge, table, section, errorBox } from "./dom.js";

export async function runView(root, ctx, runId) {
  let run;
  try {
    run = await api(runPath(runId));
  } catch (err) {
    if (!ctx.disposed) root.append(h("p", {}, h("a", { href: "#/" }, "← runs")), errorBox(err));
    return;
  }
  if (ctx.disposed) return;
  const header = h("div", { className: "run-head" });
  root.append(h("p", { className: "crumbs" }, h("a", { href: "#/" }, "runs"), " / ", h("a", { href: `#/?experiment=${enc(run.experiment)}` }, run.experiment)), header);
  renderHeader(header, run);

  const side = h("div", { className: "side" });
  const main = h("div", { className: "main" });
  root.append(h("div", { className: "run-body" }, main, side));
  side.append(section("Params", kv(run.params)), section("Tags", kv(run.tags)));

  const filter = h("input", { type: "search", placeholder: "filter metrics", oninput: () => grid.filter(filter.value) });
  const chartsBox = h("div", { id: "charts" });
  const names = run.metrics.map((m) => m.metric);
  main.append(section(`Metrics (${names.length})`, names.length ? filter : h("p", { className: "muted" }, "No metrics logged yet."), chartsBox));
  const grid = new ChartGrid(chartsBox, { runs: [runId], metrics: names });
  ctx.onDispose(() => grid.destroy());
  ctx.onResize(() => grid.resize());

  const logs = new LogPanel(runId);
  main.append(logs.el);
  const extras = h("div", {});
  main.append(extras);
  await Promise.all([logs.load(), renderExtras(extras, runId), renderAlerts(side, runId), renderModels(side, runId)]);

  const live = run.status === "Running";
  ctx.setLive(live);
  if (live) {
    ctx.every(3000, async () => {
      const now = await api(runPath(runId));
      renderHeader(header, now);
      const known = new Set(names);
      const fresh = now.metrics.map((m) => m.metric).filter((m) => !known.has(m));
      if (fresh.length) return ctx.reload();
      grid.refresh();
      await logs.load();
      if (now.status !== "Running") ctx.reload();
    });
  }
}

function renderHeader(el, run) {
  const facts = [
    ["status", statusBadge(run.status)],
    ["experiment", run.experiment],
    ["started", fmtTime(run.start_time)],
    ["duration", fmtDuration(durationOf(run))],
    ["host", run.host],
    ["world size", run.world_size],
  ];
  el.replaceChildren(
    h("h1", {}, run.name || run.run_id, " ", h("code", { className: "muted" }, run.run_id)),
    h("div", { className: "facts" }, facts.map(([k, v]) => h("div", {}, h("span", { className: "k" }, k), h("span", {}, v)))),
  );
  if (run.error_message || run.error_type) {
    el.append(h("details", { className: "error" }, h("summary", {}, `${run.error_type}: ${run.error_message}`), h("pre", {}, run.error_traceback || "")));
  }
  el.dataset.status = run.status;
}

function durationOf(run) {
  const end = run.end_time ? new Date(run.end_time) : new Date();
  return (end - new Date(run.start_time)) / 1000;
}

function kv(map) {
  const keys = Object.keys(map || {}).sort();
  if (!keys.length) return h("p", { className: "muted" }, "none");
  return h("table", { className: "kv" }, keys.map((k) => h("tr", {}, h("th", {}, k), h("td", {}, fmtNum(map[k])))));
}

class LogPanel {
  constructor(runId) {
    this.runId = runId;
    this.since = null;
    this.pre = h("pre", { className: "logs", id: "logs" });
    this.el = section("Logs", this.pre);
    this.el.hidden = true;
  }

  async load() {
    const body = await api(`${runPath(this.runId)}/logs`, { since: this.since, limit: 500 }).catch(() => null);
    if (!body || !body.available || !body.lines.length) return;
    this.el.hidden = false;
    const stick = this.pre.scrollTop + this.pre.clientHeight >= this.pre.scrollHeight - 4;
    for (const line of body.lines) {
      const text = line.message ?? line.line ?? JSON.stringify(line);
      const time = (line.ts || "").slice(11, 23);
      this.pre.append(h("span", { className: `log-${line.stream || ""} lvl-${(line.level || "").toLowerCase()}` }, `${time} ${line.rank ? `[${line.rank}] ` : ""}${text}\n`));
      this.since = line.ts || this.since;
    }
    if (stick) this.pre.scrollTop = this.pre.scrollHeight;
  }
}

async function renderExtras(el, runId) {
  const [tables, artifacts] = await Promise.all([
    api(`${runPath(runId)}/tables`).catch(() => ({ tables: [] })),
    api(`${runPath(runId)}/artifacts`).catch(() => ({ artifacts: [] })),
  ]);
  if (tables.tables.length) {
    const shown = h("div", { className: "table-view" });
    const open = async (name) => {
      const t = await api(`${runPath(runId)}/table/${enc(name)}`);
      shown.replaceChildren(h("h3", {}, name), table(t.columns.map((c, i) => ({ key: i, label: c })), t.rows));
    };
    el.append(
      section(
        "Tables",
        h("ul", { className: "links" }, tables.tables.map((t) => h("li", {}, h("a", { href: "#", onclick: (e) => (e.preventDefault(), open(t.name)) }, t.name), ` ${t.type}${t.records > 1 ? ` · ${t.records} rows` : ""}`))),
        shown,
      ),
    );
  }
  const images = artifacts.artifacts.filter((a) => a.kind === "image");
  const files = artifacts.artifacts.filter((a) => a.kind !== "image");
  const href = (a) => `${runPath(runId)}/artifact/${enc(a.name)}`;
  if (images.length) {
    el.append(section("Images", h("div", { className: "images" }, images.map((a) => h("figure", {}, h("img", { src: href(a), alt: a.name, loading: "lazy" }), h("figcaption", {}, a.name))))));
  }
  if (files.length) {
    el.append(section("Files", h("ul", { className: "links" }, files.map((a) => h("li", {}, h("a", { href: href(a), download: a.name.split("/").pop() }, a.name), ` ${fmtNum(a.size)} bytes`)))));
  }
}

async function renderAlerts(el, runId) {
  const body = await api(`${runPath(runId)}/alerts`).catch(() => null);
  if (!body || !body.available) return;
  const list = body.alerts.length
    ? h("ul", { className: "alerts" }, body.alerts.map((a) => h("li", {}, h("strong", {}, a.rule || a.name || a.kind || "alert"), " ", a.message || a.detail || "", h("div", { className: "muted" }, fmtTime(a.ts || a.time || a.raised_at)))))
    : h("p", { className: "muted" }, "none");
  el.append(section("Alerts", list));
}

// The models this run registered, and for each model every version with the run that registered it.
async function renderModels(el, runId) {
  const own = await api("/api/models", { run: runId }).catch(() => null);
  if (!own || !own.models.length) return;
  const names = [...new Set(own.models.map((m) => m.name))];
  const all = await Promise.all(names.map((name) => api("/api/models", { name }).catch(() => ({ models: [] }))));
  const versions = (list) =>
    h("ul", { className: "links" }, list.map((m) => h("li", {}, `v${m.version} `, m.run_id === runId ? h("strong", {}, "this run") : h("a", { href: `#/run/${enc(m.run_id)}` }, m.run_id), h("span", { className: "muted" }, ` ${fmtTime(m.ts)}`))));
  el.append(section("Models", names.map((name, i) => h("div", { className: "model", dataset: { model: name } }, h("h3", {}, name), versions(all[i].models)))));
}
