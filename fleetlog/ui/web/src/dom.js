// Small DOM and formatting helpers: h() builds elements, fmt* turn values into short text.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "className") el.className = value;
    // Through CSSOM: the Content-Security-Policy blocks style attributes, not el.style.
    else if (key === "style") {
      for (const decl of String(value).split(";")) {
        const at = decl.indexOf(":");
        if (at > 0) el.style.setProperty(decl.slice(0, at).trim(), decl.slice(at + 1).trim());
      }
    }
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

export function fmtNum(v) {
  if (v === null || v === undefined || v === "") return "";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return v.toLocaleString();
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : v.toPrecision(4).replace(/\.?0+$/, "");
}

// Axis ticks: short enough for a 64px gutter (1.2k, 3.4M, 5e-4).
export function fmtAxis(v) {
  if (v === null || v === undefined) return "";
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 1e4) {
    const [d, u] = a >= 1e12 ? [1e12, "T"] : a >= 1e9 ? [1e9, "G"] : a >= 1e6 ? [1e6, "M"] : [1e3, "k"];
    return `${+(v / d).toPrecision(3)}${u}`;
  }
  if (a < 1e-2) return v.toExponential(1).replace(".0e", "e");
  return String(+v.toPrecision(3));
}

export function statusBadge(status) {
  return h("span", { className: `status status-${(status || "").toLowerCase()}` }, status || "?");
}

export function table(columns, rows, { onSort, sort } = {}) {
  const head = h(
    "tr",
    {},
    columns.map((c) =>
      h(
        "th",
        { className: onSort && c.sortable !== false ? "sortable" : "", onclick: onSort && c.sortable !== false ? () => onSort(c.key) : null },
        c.label ?? c.key,
        sort && sort.key === c.key ? (sort.dir > 0 ? " ▲" : " ▼") : "",
      ),
    ),
  );
  const body = rows.map((row) => h("tr", {}, columns.map((c) => h("td", { className: c.className || "" }, c.render ? c.render(row) : fmtNum(row[c.key])))));
  return h("table", { className: "grid" }, h("thead", {}, head), h("tbody", {}, body));
}

export function section(title, ...children) {
  return h("section", { className: "panel" }, h("h2", {}, title), ...children);
}

export function errorBox(err) {
  return h("div", { className: "error", role: "alert" }, String(err.message || err));
}
