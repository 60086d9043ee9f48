// The dashboard's router: #/ runs, #/run/<id>, #/compare?run=a&run=b, #/fleet.
// Each view gets a context that owns its timers and listeners; leaving a view ends them.
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { runsView } from "./runs.js";
import { runView } from "./run.js";
import { compareView } from "./compare.js";
import { fleetView } from "./fleet.js";

let current = null;

function context(hashParams) {
  const disposers = [];
  const resizers = [];
  let disposed = false;
  return {
    params: hashParams,
    get disposed() {
      return disposed;
    },
    every(ms, fn) {
      let stopped = false;
      let timer = null;
      const tick = async () => {
        try {
          await fn();
        } catch (err) {
          console.warn(err);
        }
        if (!stopped) timer = setTimeout(tick, ms);
      };
      timer = setTimeout(tick, ms);
      disposers.push(() => ((stopped = true), clearTimeout(timer)));
    },
    onDispose: (fn) => disposers.push(fn),
    onResize: (fn) => resizers.push(fn),
    resize: () => resizers.forEach((fn) => fn()),
    setLive(on) {
      const el = document.getElementById("live");
      el.textContent = on ? "● live" : "";
      el.classList.toggle("on", on);
    },
    reload: () => route(),
    dispose() {
      disposed = true;
      disposers.forEach((fn) => fn());
    },
  };
}

async function route() {
  current?.dispose();
  const view = document.getElementById("view");
  view.replaceChildren();
  const raw = location.hash.slice(1) || "/";
  const [path, query = ""] = raw.split("?");
  const ctx = context(new URLSearchParams(query));
  current = ctx;
  ctx.setLive(false);
  const section = path.startsWith("/run/") ? "runs" : path.slice(1) || "runs";
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === section));
  if (path.startsWith("/run/")) await runView(view, ctx, decodeURIComponent(path.slice(5)));
  else if (path === "/compare") await compareView(view, ctx);
  else if (path === "/fleet") fleetView(view, ctx);
  else runsView(view, ctx);
  view.dataset.view = section;
}

let resizing = null;
window.addEventListener("resize", () => {
  clearTimeout(resizing);
  resizing = setTimeout(() => current?.resize(), 150);
});
window.addEventListener("hashchange", route);
route();
