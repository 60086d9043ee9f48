// The runs table: filter by experiment, status and text; sort by any column; pick runs to compare.
import { api, enc } from "./api.js";
import { h, fmtTime, fmtDuration, statusBadge, table, errorBox } from "./dom.js";

const STATUSES = ["", "Running", "Completed", "Failed", "Canceled"];

export function runsView(root, ctx) {
  const state = { experiment: ctx.params.get("experiment") || "", status: "", q: "", sort: { key: "start_time", dir: -1 } };
  const selected = new Set();
  const experiment = h("select", { id: "f-experiment", onchange: () => ((state.experiment = experiment.value), load()) });
  const status = h(
    "select",
    { id: "f-status", onchange: () => ((state.status = status.value), load()) },
    STATUSES.map((s) => h("option", { value: s }, s || "any status")),
  );
  let typing = null;
  const search = h("input", {
    id: "f-search",
    type: "search",
    placeholder: "search id, name, experiment",
    oninput: () => {
      clearTimeout(typing);
      typing = setTimeout(() => ((state.q = search.value), load()), 250);
    },
  });
  const compare = h("button", { id: "compare", disabled: true, onclick: () => (location.hash = compareHash([...selected])) }, "Compare");
  const count = h("span", { className: "muted" });
  const holder = h("div", { id: "runs-table" });
  root.append(h("div", { className: "toolbar" }, h("h1", {}, "Runs"), experiment, status, search, compare, count), holder);
  let data = { runs: [], params: [], tags: [], texts: [] };

  async function loadExperiments() {
    const { experiments } = await api("/api/experiments");
    experiment.replaceChildren(
      h("option", { value: "" }, "all experiments"),
      experiments.map((e) => h("option", { value: e.experiment, selected: e.experiment === state.experiment }, `${e.experiment} (${e.runs})`)),
    );
  }

  async function load() {
    try {
      data = await api("/api/runs", { experiment: state.experiment, status: state.status, q: state.q, limit: 500 });
      render();
      ctx.setLive(data.runs.some((r) => r.status === "Running"));
    } catch (err) {
      holder.replaceChildren(errorBox(err));
    }
  }

  function render() {
    const { key, dir } = state.sort;
    const rows = [...data.runs].sort((a, b) => cmp(a[key], b[key]) * dir);
    const columns = [
      {
        key: "_pick",
        label: "",
        sortable: false,
        render: (r) =>
          h("input", {
            type: "checkbox",
            className: "pick",
            dataset: { run: r.run_id },
            checked: selected.has(r.run_id),
            onchange: (e) => {
              e.target.checked ? selected.add(r.run_id) : selected.delete(r.run_id);
              compare.disabled = selected.size < 2;
            },
          }),
      },
      { key: "status", render: (r) => statusBadge(r.status) },
      { key: "run_id", label: "run", render: (r) => h("a", { href: `#/run/${enc(r.run_id)}`, className: "run-link" }, r.name && r.name !== r.run_id ? `${r.name} ` : "", h("code", {}, r.run_id)) },
      { key: "experiment" },
      { key: "start_time", label: "started", render: (r) => fmtTime(r.start_time) },
      { key: "duration_seconds", label: "duration", render: (r) => fmtDuration(r.duration_seconds) },
      ...data.params.slice(0, 8).map((p) => ({ key: `params.${p}`, label: p, className: "num" })),
      ...(data.texts || []).slice(0, 6).map((t) => ({ key: `text.${t}`, label: t })),
      { key: "_tags", label: "tags", sortable: false, render: (r) => data.tags.filter((t) => r[`tags.${t}`] !== null && r[`tags.${t}`] !== undefined).map((t) => h("span", { className: "chip" }, r[`tags.${t}`] ? `${t}=${r[`tags.${t}`]}` : t)) },
    ];
    count.textContent = `${rows.length} run${rows.length === 1 ? "" : "s"}`;
    holder.replaceChildren(
      rows.length
        ? table(columns, rows, { sort: state.sort, onSort: (k) => ((state.sort = { key: k, dir: state.sort.key === k ? -state.sort.dir : 1 }), render()) })
        : h("p", { className: "muted" }, "No runs yet. Log one with fleetlog.Experiment(...).start_logging()."),
    );
  }

  loadExperiments().catch((err) => holder.replaceChildren(errorBox(err)));
  load();
  ctx.every(5000, () => {
    loadExperiments().catch(() => {});
    return load();
  });
}

export function compareHash(ids) {
  return `#/compare?${ids.map((id) => `run=${enc(id)}`).join("&")}`;
}

function cmp(a, b) {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  return typeof a === "number" && typeof b === "number" ? a - b : String(a).localeCompare(String(b));
}

