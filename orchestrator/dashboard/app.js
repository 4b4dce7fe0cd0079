// raftflow dashboard: plain JavaScript over the orchestrator's own API (no build step, no library, no
// CDN). Two pages, by URL hash: #/ lists runs, #/runs/ID shows one run live. Every API call carries
// the bearer token the user entered once, kept in sessionStorage (this tab only, never in a URL).
// Text from the API is only ever set with textContent: samples are model output, not HTML.
"use strict";

const TOKEN_KEY = "raftflow-api-token";
const ACTIVE = new Set(["queued", "running", "awaiting_checkpoint"]);
const POLL_MS = 1000;
const app = document.getElementById("app");
let pollTimer = null;

// ---- API -------------------------------------------------------------------------------------------

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) throw new Unauthorized("the token was refused");
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = body && body.detail;
    throw new Error(typeof detail === "string" ? detail : `${response.status} ${JSON.stringify(detail)}`);
  }
  return body;
}

// ---- DOM helpers -----------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    // Through the CSSOM: the Content-Security-Policy refuses style attributes in markup.
    else if (key === "style") node.style.cssText = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const fmt = (v, digits = 3) => (v === undefined || v === null || Number.isNaN(v) ? "–" : Number(v).toFixed(digits));
const statusBadge = (status) => el("span", { class: `status ${status}`, "data-status": status }, status);
const bar = (percent) => el("div", { class: "bar", title: `${fmt(percent, 1)}%` }, el("span", { style: `width:${Math.max(0, Math.min(100, percent))}%` }));

// ---- token -----------------------------------------------------------------------------------------

function showLogin(message = "") {
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = message;
  document.getElementById("forget-token").hidden = true;
  document.getElementById("token-state").textContent = "no token";
  app.replaceChildren();
}

document.getElementById("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("token-input");
  sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  input.value = "";
  route();
});

document.getElementById("forget-token").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin();
});

function loggedIn() {
  document.getElementById("login").hidden = true;
  document.getElementById("forget-token").hidden = !sessionStorage.getItem(TOKEN_KEY);
  document.getElementById("token-state").textContent = sessionStorage.getItem(TOKEN_KEY) ? "token set" : "";
}

// ---- routing ---------------------------------------------------------------------------------------

async function route() {
  clearTimeout(pollTimer);
  const match = location.hash.match(/^#\/runs\/([^/]+)$/);
  try {
    if (match) await runPage(decodeURIComponent(match[1]));
    else await runsPage();
  } catch (error) {
    if (error instanceof Unauthorized) showLogin("The orchestrator refused the token: enter it again.");
    else app.replaceChildren(el("p", { class: "error" }, String(error.message || error)));
  }
}

window.addEventListener("hashchange", route);

// ---- runs list ---------------------------------------------------------------------------------------

function lastMetric(run, name) {
  const done = run.iterations.filter((it) => it.stage === "done");
  return done.length ? done[done.length - 1].metrics[name] : undefined;
}

async function runsPage() {
  const runs = await api("/iterations?limit=200");
  loggedIn();
  const rows = runs.map((run) =>
    el("tr", { "data-run": run.id },
      el("td", {}, el("a", { href: `#/runs/${encodeURIComponent(run.id)}` }, run.id)),
      el("td", {}, statusBadge(run.status)),
      el("td", {}, bar(run.percent_complete), el("span", { class: "muted" }, ` ${fmt(run.percent_complete, 0)}%`)),
      el("td", {}, `${run.iterations.filter((it) => it.stage === "done").length} / ${run.request.num_iterations}`),
      el("td", { class: "last-reward" }, fmt(lastMetric(run, "on_policy_reward"))),
      el("td", {}, run.stage || "–"),
      el("td", { class: "muted" }, new Date(run.created_at).toLocaleString()),
    ));
  app.replaceChildren(
    el("h1", {}, "Runs"),
    runs.length
      ? el("table", { id: "runs" },
          el("thead", {}, el("tr", {}, ["run", "status", "progress", "iterations", "last reward", "stage", "created"].map((h) => el("th", {}, h)))),
          el("tbody", {}, rows))
      : el("p", { class: "muted" }, "No runs yet: POST /iterations starts one."),
  );
  if (runs.some((run) => ACTIVE.has(run.status))) pollTimer = setTimeout(route, POLL_MS * 2);
}

// ---- charts ----------------------------------------------------------------------------------------

const COLORS = ["#2f6fde", "#1f8a4c", "#c2362f", "#b7791f", "#7c3aed", "#0e7490"];
const CHARTS = [
  { title: "Reward", series: [["on_policy_reward", "on-policy"], ["best_of_k_reward", "best-of-K"], ["selected_reward", "selected"], ["eval_reward", "held-out"], ["gold_on_policy_reward", "gold on-policy"], ["gold_eval_reward", "gold held-out"]] },
  { title: "KL", series: [["sample_kl", "sample KL"], ["selected_kl", "selected KL"], ["kl_to_initial", "KL to initial (held-out)"]] },
  { title: "Distinct-2", series: [["distinct_2", "distinct-2"]] },
  { title: "Mean length (tokens)", series: [["mean_length", "mean length"]] },
  { title: "Held-out perplexity", series: [["eval_ppl", "PPL"]] },
];

function lineChart(title, series, iterations) {
  const W = 400, H = 180, L = 44, R = 10, T = 10, B = 24;
  const present = series.filter(([key]) => iterations.some((it) => Number.isFinite(it.metrics[key])));
  if (!present.length) return null;
  const points = present.map(([key]) => iterations.filter((it) => Number.isFinite(it.metrics[key])).map((it) => [it.index, it.metrics[key]]));
  const xs = points.flat().map((p) => p[0]), ys = points.flat().map((p) => p[1]);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) { x0 -= 0.5; x1 += 0.5; }
  if (y0 === y1) { y0 -= Math.abs(y0) * 0.1 || 1; y1 += Math.abs(y1) * 0.1 || 1; }
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R), sy = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`); svg.setAttribute("width", W); svg.setAttribute("height", H);
  const add = (tag, attrs, text) => { const n = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v); if (text !== undefined) n.textContent = text; svg.append(n); return n; };
  add("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999" });
  add("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#999" });
  for (const y of [y0, (y0 + y1) / 2, y1]) add("text", { x: L - 4, y: sy(y) + 4, "text-anchor": "end", "font-size": 10, fill: "#666" }, Number(y.toPrecision(3)));
  for (const x of [...new Set(xs)]) add("text", { x: sx(x), y: H - 8, "text-anchor": "middle", "font-size": 10, fill: "#666" }, x);
  points.forEach((pts, i) => {
    const color = COLORS[i % COLORS.length];
    add("polyline", { points: pts.map(([x, y]) => `${sx(x)},${sy(y)}`).join(" "), fill: "none", stroke: color, "stroke-width": 2, "data-series": present[i][0] });
    for (const [x, y] of pts) add("circle", { cx: sx(x), cy: sy(y), r: 3, fill: color }).append(Object.assign(document.createElementNS(ns, "title"), { textContent: `${present[i][1]}, iteration ${x}: ${y}` }));
  });
  const legend = el("div", { class: "legend" }, present.map(([, label], i) => el("span", {}, el("i", { style: `background:${COLORS[i % COLORS.length]}` }), label)));
  return el("div", { class: "card chart", "data-chart": title }, el("h3", {}, title), svg, legend);
}

// ---- run page --------------------------------------------------------------------------------------

async function runPage(runId) {
  const run = await api(`/iterations/${encodeURIComponent(runId)}`);
  loggedIn();
  const done = run.iterations.filter((it) => it.stage === "done");
  const cancel = ACTIVE.has(run.status)
    ? el("button", { class: "danger", id: "cancel", type: "button", onclick: async () => {
        if (!confirm(`Cancel run ${run.id}?`)) return;
        await api(`/iterations/${encodeURIComponent(run.id)}/cancel`, { method: "POST" }).catch((e) => alert(e.message));
        route();
      } }, "Cancel run")
    : null;
  const progress = run.progress;
  const live = el("div", { class: "card", id: "live" },
    el("div", {}, statusBadge(run.status), " ", el("strong", { id: "iterations-done" }, `${done.length} of ${run.request.num_iterations} iterations done`),
      run.stage ? el("span", { id: "stage" }, ` · stage ${run.stage}`) : null,
      progress && progress.total ? el("span", { id: "stage-progress" }, ` · ${progress.done} / ${progress.total} ${progress.unit}`) : null),
    el("div", { class: "controls" }, bar(run.percent_complete), el("span", { id: "percent" }, `${fmt(run.percent_complete, 1)}% of the run`)),
    run.error ? el("p", { class: "error", id: "run-error" }, run.error) : null,
    el("div", { class: "muted" }, `policy: ${run.policy}`),
  );
  const charts = CHARTS.map((c) => lineChart(c.title, c.series, done)).filter(Boolean);

  // The samples browser and the held-out comparison keep their state across live refreshes: only the
  // parts above are redrawn while the run moves.
  const heading = el("h1", {}, el("a", { href: "#/" }, "Runs"), " / ", run.id, " ", cancel);
  let browser = document.getElementById("browser");
  let heldOut = document.getElementById("held-out");
  if (!browser || browser.dataset.run !== run.id) {
    browser = el("section", { id: "browser", "data-run": run.id });
    heldOut = el("section", { id: "held-out", "data-run": run.id });
    app.replaceChildren(
      heading,
      el("div", { id: "top" }),
      browser, heldOut,
      el("h2", {}, "Request"), el("pre", { class: "request", id: "request" }, JSON.stringify(run.request, null, 2)),
    );
    browser.dataset.iterations = "";
  } else {
    app.firstChild.replaceWith(heading);
  }
  document.getElementById("top").replaceChildren(
    live,
    el("h2", {}, "Curves per iteration"),
    charts.length ? el("div", { class: "cards", id: "charts" }, charts) : el("p", { class: "muted", id: "charts" }, "No finished iteration yet."),
  );
  const scored = run.iterations.map((it) => it.index);
  const key = run.iterations.map((it) => `${it.index}:${it.stage}`).join(",");
  if (browser.dataset.iterations !== key) {
    browser.dataset.iterations = key;
    await samplesBrowser(browser, run, scored);
    await heldOutComparison(heldOut, run);
  }
  if (ACTIVE.has(run.status)) pollTimer = setTimeout(route, POLL_MS);
}

async function samplesBrowser(section, run, iterations) {
  const selected = section.querySelector("select");
  const current = selected ? Number(selected.value) : iterations[0];
  const filter = section.querySelector("input");
  const picker = el("select", { id: "iteration", "aria-label": "iteration" }, iterations.map((i) => el("option", { value: i, selected: i === current }, `iteration ${i}`)));
  const search = el("input", { id: "filter", type: "search", placeholder: "filter prompts", value: filter ? filter.value : "" });
  const results = el("div", { id: "samples" });
  const load = async () => {
    if (!iterations.length) { results.replaceChildren(el("p", { class: "muted" }, "No samples yet.")); return; }
    try {
      const page = await api(`/iterations/${encodeURIComponent(run.id)}/samples/${picker.value}?limit=50&q=${encodeURIComponent(search.value)}`);
      results.replaceChildren(
        el("p", { class: "muted" }, `${page.matching_prompts} of ${page.total_prompts} prompts${search.value ? " match" : ""}; showing ${page.prompts.length}`),
        ...page.prompts.map(promptBlock),
      );
    } catch (error) {
      if (error instanceof Unauthorized) throw error;
      results.replaceChildren(el("p", { class: "muted" }, error.message));
    }
  };
  picker.addEventListener("change", load);
  let debounce = null;
  search.addEventListener("input", () => { clearTimeout(debounce); debounce = setTimeout(load, 250); });
  section.replaceChildren(el("h2", {}, "Samples"), el("div", { class: "controls" }, picker, search), results);
  await load();
}

function promptBlock(prompt) {
  const hasGold = prompt.samples.some((s) => s.gold !== null);
  const hasKl = prompt.samples.some((s) => s.kl !== null);
  return el("div", { class: "prompt-block", "data-prompt": prompt.index },
    el("div", { class: "prompt" }, prompt.prompt),
    el("table", {},
      el("thead", {}, el("tr", {}, ["", "sample", "reward", hasGold ? "gold" : null, hasKl ? "KL" : null, "tokens"].filter((h) => h !== null).map((h) => el("th", {}, h)))),
      el("tbody", {}, prompt.samples.map((s) =>
        el("tr", { class: [s.kept ? "kept" : "", s.degenerate ? "degenerate" : ""].join(" ").trim() },
          el("td", {}, s.kept ? el("span", { class: "badge kept" }, "kept") : null, s.degenerate ? el("span", { class: "badge degenerate", title: s.degenerate }, s.degenerate) : null),
          el("td", { class: "sample" }, s.text),
          el("td", {}, fmt(s.reward)),
          hasGold ? el("td", {}, fmt(s.gold)) : null,
          hasKl ? el("td", {}, fmt(s.kl)) : null,
          el("td", {}, `${s.completion_tokens}${s.finish_reason === "length" ? " (cut)" : ""}`),
        )))));
}

async function heldOutComparison(section, run) {
  const history = await api(`/iterations/${encodeURIComponent(run.id)}/eval-samples`);
  if (!history.length) { section.replaceChildren(); return; }
  const iterations = [...new Set(history.flatMap((h) => h.responses.map((r) => r.iteration)))].sort((a, b) => a - b);
  section.replaceChildren(
    el("h2", {}, "Held-out prompts across iterations"),
    el("table", { id: "held-out-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "prompt"), iterations.map((i) => el("th", {}, `after iteration ${i}`)))),
      el("tbody", {}, history.slice(0, 20).map((h) => el("tr", {},
        el("td", { class: "sample" }, h.prompt),
        iterations.map((i) => {
          const r = h.responses.find((x) => x.iteration === i);
          return el("td", {}, r ? [el("div", { class: "sample" }, r.response), el("div", { class: "muted" }, `reward ${fmt(r.reward)}${r.gold !== null ? ` · gold ${fmt(r.gold)}` : ""}`)] : "–");
        }))))),
  );
}

route();
