// podtrace: the rollouts list and the blast-radius report of the selected rollout.
//
// Data comes from the collector's own API (/api/v1/...) on the same origin; nothing else is
// fetched.  Every refresh re-reads the data and rebuilds only what changed, keeping the
// selection, which lives in the URL hash (#workload=ns/name&revision=hash) so it can be linked.
// Query parameters: ?refresh=<seconds> (default 10), ?trace_url=<template with {trace_id}>.
"use strict";

(() => {
  const API = "/api/v1";
  const TOKEN_KEY = "podtrace.apiToken"; // the collector's --api-token, kept for this tab only
  const query = new URLSearchParams(location.search);
  const config = {
    refreshMs: Math.max(1, Number(query.get("refresh")) || 10) * 1000,
    traceUrl: query.get("trace_url") || "",
  };
  const state = { rollouts: null, lastOk: null, seen: {}, generation: 0, timer: 0 };
  const $ = (id) => document.getElementById(id);
  const nf = new Intl.NumberFormat("en");

  // ---- small helpers ------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined && v !== false) e.setAttribute(k, String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  const fmt = (n) => (n === null || n === undefined ? "–" : nf.format(n));
  const pct = (x) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(x && x < 0.001 ? 3 : 1)} %`);
  const ms = (x) => (x === null || x === undefined ? "–" : `${Number(x).toFixed(x < 10 ? 1 : 0)} ms`);
  const share = (a, b) => (b ? pct(a / b) : "–");
  const shortRev = (r) => (r ? (r.length > 10 ? r.slice(0, 10) : r) : "(first)");

  function pValue(p) {
    if (p === null || p === undefined) return "–";
    return p < 0.001 ? p.toExponential(1) : p.toFixed(3);
  }

  function utc(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso || "–";
    return `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
  }

  function ago(iso) {
    const s = (Date.now() - new Date(iso).getTime()) / 1000;
    if (!(s >= 0)) return "";
    if (s < 90) return `${Math.round(s)} s ago`;
    if (s < 5400) return `${Math.round(s / 60)} min ago`;
    if (s < 172800) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} days ago`;
  }

  function badge(verdict) {
    const v = verdict || "unknown";
    return h("span", { class: `badge verdict-${v}`, "data-verdict": v }, v.replace("_", " "));
  }

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path) {
    let resp;
    try {
      const headers = { Accept: "application/json" };
      const token = sessionStorage.getItem(TOKEN_KEY);
      if (token) headers.Authorization = `Bearer ${token}`;
      resp = await fetch(API + path, { headers, cache: "no-store" });
    } catch (err) {
      throw new ApiError(0, "unreachable", `cannot reach the podtrace API (${err.message})`);
    }
    let body = null;
    try {
      body = await resp.json();
    } catch (err) {
      body = null;
    }
    if (!resp.ok) {
      const e = (body && body.error) || {};
      throw new ApiError(resp.status, e.code || `http_${resp.status}`, e.message || resp.statusText);
    }
    if (body === null || typeof body !== "object") {
      throw new ApiError(resp.status, "bad_response", `${API + path} did not answer with a JSON object`);
    }
    return body;
  }

  // ---- selection in the URL hash --------------------------------------------------------------

  function selection() {
    const p = new URLSearchParams(location.hash.slice(1));
    return p.get("workload") ? { workload: p.get("workload"), revision: p.get("revision") || "" } : null;
  }

  function hashOf(r) {
    return `#${new URLSearchParams({ workload: r.workload, revision: r.to_revision })}`;
  }

  function chosen() {
    const sel = selection();
    const list = state.rollouts || [];
    if (sel) {
      return list.find((r) => r.workload === sel.workload && r.to_revision === sel.revision)
        || { workload: sel.workload, to_revision: sel.revision, from_revision: null };
    }
    if (!list.length) return null;
    history.replaceState(null, "", hashOf(list[0]));
    return list[0];
  }

  // ---- status and errors ----------------------------------------------------------------------

  function showBanner(err) {
    const banner = $("banner");
    if (!err) {
      banner.hidden = true;
      banner.replaceChildren();
      delete banner.dataset.message;
      document.body.classList.remove("stale");
      return;
    }
    const what = err.status ? `${err.code} (HTTP ${err.status}): ${err.message}` : err.message;
    // The same error again: leave the banner (and a half-typed token) alone.
    if (!banner.hidden && banner.dataset.message === what) return;
    banner.dataset.message = what;
    const since = state.lastOk ? ` Showing data from ${state.lastOk.toLocaleTimeString()}.` : "";
    const retry = `Retrying every ${config.refreshMs / 1000} s.`;
    banner.replaceChildren(h("strong", {}, "API error — "), `${what}.${since} ${retry}`);
    if (err.status === 401) banner.append(" ", tokenForm());
    banner.dataset.code = err.code;
    banner.hidden = false;
    document.body.classList.toggle("stale", Boolean(state.lastOk));
  }

  // The collector runs with --api-token: ask for it once; it stays in this tab's session storage.
  function tokenForm() {
    const input = h("input", { type: "password", id: "token", autocomplete: "off", "aria-label": "API token" });
    const form = h("form", { class: "token-form" }, h("label", { for: "token" }, "API token: "), input, " ",
      h("button", { type: "submit" }, "use"));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      refresh();
    });
    return form;
  }

  function showStatus() {
    const when = state.lastOk ? `updated ${state.lastOk.toLocaleTimeString()}` : "not loaded yet";
    $("status").textContent = `${when} · refreshing every ${config.refreshMs / 1000} s`;
  }

  // ---- rollouts list --------------------------------------------------------------------------

  function renderRollouts(current) {
    const list = state.rollouts;
    const ol = $("rollouts");
    const focused = document.activeElement && ol.contains(document.activeElement)
      ? document.activeElement.closest(".rollout") : null;
    const empty = $("rollouts-empty");
    empty.hidden = list.length > 0;
    empty.textContent = "No rollouts yet.";
    ol.replaceChildren(...list.map((r) => {
      const isCurrent = current && r.workload === current.workload && r.to_revision === current.to_revision;
      const counts = ["requests" in r && `${fmt(r.requests)} req · ${fmt(r.errors)} err`,
        r.affected_users ? `${fmt(r.affected_users)} users hit` : ""].filter(Boolean).join(" · ");
      return h("li", { class: `rollout verdict-${r.verdict}`, "data-workload": r.workload,
        "data-revision": r.to_revision, "data-verdict": r.verdict },
      h("a", { href: hashOf(r), "aria-current": isCurrent ? "true" : null },
        h("span", { class: "rollout-top" }, h("span", { class: "rollout-workload" }, r.workload), badge(r.verdict)),
        h("span", { class: "rollout-revs" }, h("code", {}, shortRev(r.from_revision)), " → ",
          h("code", {}, shortRev(r.to_revision)), versions(r)),
        h("span", { class: "rollout-when" }, h("time", { datetime: r.started_at }, utc(r.started_at)),
          ` · ${ago(r.started_at)}`),
        counts ? h("span", { class: "rollout-counts" }, counts) : null));
    }));
    // Rebuilding the list must not throw keyboard focus away.
    if (focused) {
      const same = [...ol.children].find((li) => li.dataset.workload === focused.dataset.workload
        && li.dataset.revision === focused.dataset.revision);
      if (same) same.querySelector("a").focus();
    }
  }

  function versions(r) {
    if (!r.to_version || r.to_version === r.from_version) return null;
    const text = r.from_version ? `${r.from_version} → ${r.to_version}` : r.to_version;
    return h("span", { class: "rollout-versions" }, ` (${text})`);
  }

  // ---- the report -----------------------------------------------------------------------------

  const SECTIONS = ["summary", "comparison-card", "graph-card", "entrypoints-card", "affected-card",
    "contained-card", "exemplars-card"];

  function showReportMessage(text, kind) {
    for (const id of SECTIONS) $(id).hidden = true;
    const p = $("report-empty");
    p.hidden = false;
    p.className = kind === "error" ? "empty error" : "empty";
    p.dataset.state = kind;
    p.textContent = text;
  }

  // No rollout to show: say why, and draw the service graph of what is reporting, if anything.
  function showOverview(text, graph) {
    showReportMessage(text, "empty");
    state.seen.key = null;
    if (!graph || !(graph.nodes || []).length) return;
    $("graph-card").hidden = false;
    $("graph-title").textContent = "Service graph";
    $("graph-hint").textContent = "Every workload reporting; arrows point from caller to callee "
      + "and carry calls · errors over everything retained.";
    $("legend").replaceChildren();
    $("report").dataset.workload = "";
    window.podtraceGraph.render($("graph"), window.podtraceGraph.build(null, graph), fmt);
  }

  function renderSummaryLine(rep) {
    const bits = [rep.kind, rep.version && `version ${rep.version}`,
      rep.window && `window ${utc(rep.window.start)} → ${utc(rep.window.end)}`,
      `p = ${pValue(rep.p_value)}`];
    $("summary-line").textContent = bits.filter(Boolean).join(" · ");
  }

  function renderSummary(rep) {
    $("summary-title").replaceChildren(rep.workload, " ",
      h("span", { class: "revs" }, h("code", {}, shortRev(rep.baseline && rep.baseline.revision)), " → ",
        h("code", {}, shortRev(rep.revision))));
    $("summary-verdict").replaceWith(Object.assign(badge(rep.verdict), { id: "summary-verdict" }));
    renderSummaryLine(rep);
    const items = [
      ["affected users", fmt(rep.affected_users), "users"],
      ["affected traces", fmt(rep.affected_traces), "traces"],
      ["affected services", fmt((rep.affected_services || []).length), "services"],
      ["max hops", fmt(rep.max_hops), "hops"],
      ["origin errors", `${fmt(rep.origin_errors)} / ${fmt(rep.requests)}`, "origin"],
    ];
    $("reasons").replaceChildren(...(rep.reasons || []).map((r) => h("li", {}, r)));
    $("headline").replaceChildren(...items.map(([label, value, key]) =>
      h("div", { class: "kpi", "data-kpi": key }, h("dt", {}, label), h("dd", {}, value))));
  }

  function change(now, base, worseIfHigher) {
    if (now === null || now === undefined || base === null || base === undefined) return ["–", ""];
    if (base === 0) return now === 0 ? ["=", ""] : ["new", worseIfHigher ? "worse" : ""];
    const r = now / base;
    const text = r >= 10 ? `×${r.toFixed(0)}` : `${r >= 1 ? "+" : "−"}${Math.abs((r - 1) * 100).toFixed(0)} %`;
    const cls = worseIfHigher && r >= 1.2 ? "worse" : worseIfHigher && r <= 0.83 ? "better" : "";
    return [cls === "worse" ? `▲ ${text}` : cls === "better" ? `▼ ${text}` : text, cls];
  }

  function revHeader(label, revision) {
    return h("th", { scope: "col", class: "num" }, label, h("br"), h("code", {}, shortRev(revision)));
  }

  function renderComparison(rep) {
    const base = rep.baseline;
    const head = [h("th", { scope: "col" }, "metric"),
      base ? revHeader("baseline", base.revision) : null,
      revHeader("this rollout", rep.revision),
      base ? h("th", { scope: "col", class: "num" }, "change") : null];
    $("comparison").tHead.replaceChildren(h("tr", {}, ...head));
    const lat = (o, k, q) => (o && o[k] ? o[k][q] : null);
    const rows = [
      ["requests", "requests", fmt, false], ["errors", "errors", fmt, true],
      ["origin errors", "origin_errors", fmt, true], ["error rate", "error_rate", pct, true],
      ...["p50", "p95", "p99"].map((q) => [`latency ${q}`, ["latency_ms", q], ms, true]),
      ...["p50", "p95", "p99"].map((q) => [`self time ${q}`, ["self_time_ms", q], ms, true]),
    ];
    const get = (o, key) => (!o ? null : Array.isArray(key) ? lat(o, key[0], key[1]) : o[key]);
    $("comparison").tBodies[0].replaceChildren(...rows.map(([label, key, f, bad]) => {
      const [text, cls] = change(get(rep, key), get(base, key), bad && label !== "requests");
      return h("tr", { "data-metric": Array.isArray(key) ? key.join(".") : key },
        h("th", { scope: "row" }, label),
        base ? h("td", { class: "num" }, f(get(base, key))) : null,
        h("td", { class: "num" }, f(get(rep, key))),
        base ? h("td", { class: `num change ${cls}` }, text) : null);
    }));
    $("comparison-title").textContent = base ? "Compared with the baseline revision"
      : "First revision: no baseline to compare with";
    $("comparison-hint").textContent = baselineWindow(rep.baseline_window);
  }

  // How the baseline was measured: alongside the new revision (a canary) or just before it.
  function baselineWindow(w) {
    if (!w) return "";
    const span = `${utc(w.start)} → ${utc(w.end)}`;
    return w.mode === "same_window"
      ? `Both revisions served over the same window (a canary or an unfinished rollout).`
      : `The baseline is measured over an equal window just before the new revision appeared (${span}).`;
  }

  function renderLegend() {
    const items = [["origin", "node origin hop-0", "✖", "origin of the failures"],
      ["hop-1", "node affected hop-1", "1", "1 hop away"], ["hop-2", "node affected hop-2", "2", "2 hops"],
      ["hop-3", "node affected hop-3", "3", "3 hops"],
      ["hop-far", "node affected hop-far", "4+", "4+ hops"], ["unaffected", "node unaffected hop-none", "", "not affected"],
      ["absorbing", "node absorbing hop-none", "↩", "absorbed failures (dashed ring)"],
      ["entry", "", "⇥", "entry point"]];
    $("legend").replaceChildren(...items.map(([key, cls, mark, text]) => h("li", { "data-legend": key },
      h("span", { class: `swatch ${cls}`, "aria-hidden": "true" }, mark), text)));
  }

  function renderTables(rep) {
    const ep = rep.entrypoints || [];
    $("entrypoints").tBodies[0].replaceChildren(...ep.map((e) => h("tr", { "data-workload": e.workload,
      "data-operation": e.operation }, h("td", {}, e.workload), h("td", {}, h("code", {}, e.operation)),
    h("td", { class: "num" }, fmt(e.affected_requests)), h("td", { class: "num" }, fmt(e.requests)),
    h("td", { class: "num" }, share(e.affected_requests, e.requests)),
    h("td", { class: "num" }, fmt(e.affected_users)))));
    $("entrypoints-users").replaceChildren(h("strong", { id: "affected-users" }, fmt(rep.affected_users)),
      ` distinct users (enduser.id) hit an error at the entry points below.`);
    const af = [...(rep.affected_services || [])]
      .sort((a, b) => a.hops - b.hops || b.affected_requests - a.affected_requests);
    $("affected").tBodies[0].replaceChildren(...af.map((a) => h("tr",
      { "data-workload": a.workload, "data-hops": a.hops },
      h("td", {}, h("span", { class: `hopdot hop-${a.hops}`, "aria-hidden": "true" }), a.workload),
      h("td", { class: "num" }, String(a.hops)), h("td", { class: "num" }, fmt(a.affected_requests)),
      h("td", { class: "num" }, fmt(a.requests)), h("td", { class: "num" }, share(a.affected_requests, a.requests)))));
    const cb = rep.contained_by || [];
    $("contained").tBodies[0].replaceChildren(...cb.map((c) => h("tr", { "data-workload": c.workload },
      h("td", {}, c.workload), h("td", { class: "num" }, fmt(c.absorbed_requests)))));
    $("contained-card").hidden = cb.length === 0;
    $("entrypoints-card").hidden = false;
    $("affected-card").hidden = false;
    for (const [id, list, text] of [["entrypoints", ep, "No entry point was affected."],
      ["affected", af, "No other workload was affected."]]) {
      if (!list.length) {
        $(id).tBodies[0].replaceChildren(h("tr", { class: "none" }, h("td", { colspan: 6 }, text)));
      }
    }
  }

  function traceLink(id) {
    if (!config.traceUrl) return null;
    try {
      const url = new URL(config.traceUrl.replaceAll("{trace_id}", encodeURIComponent(id)), location.href);
      return ["http:", "https:"].includes(url.protocol) ? url.href : null;
    } catch (err) {
      return null;
    }
  }

  function renderExemplars(rep) {
    const ids = rep.exemplar_trace_ids || [];
    $("exemplars-card").hidden = ids.length === 0;
    $("exemplars-hint").textContent = config.traceUrl
      ? "Links open your trace viewer."
      : "Copy an id into your trace viewer, or add ?trace_url=<viewer URL with {trace_id}> "
        + "to this page's address to get links.";
    $("exemplars").replaceChildren(...ids.map((id) => {
      const link = traceLink(id);
      const code = h("code", { class: "trace-id", "data-trace-id": id }, id);
      const copy = h("button", { type: "button", class: "copy", "aria-label": `copy trace id ${id}` }, "copy");
      copy.addEventListener("click", () => copyText(id, copy));
      const shown = link ? h("a", { href: link, target: "_blank", rel: "noopener noreferrer" }, code) : code;
      return h("li", {}, shown, " ", copy);
    }));
  }

  function copyText(text, button) {
    const done = () => { button.textContent = "copied"; setTimeout(() => { button.textContent = "copy"; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, () => selectText(button));
    } else {
      selectText(button);
    }
  }

  function selectText(button) {
    const range = document.createRange();
    range.selectNodeContents(button.parentElement.querySelector("code"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
  }

  function renderReport(rep, graph, graphError) {
    $("report-empty").hidden = true;
    for (const id of ["summary", "comparison-card", "graph-card"]) $(id).hidden = false;
    const main = $("report");
    main.dataset.workload = rep.workload;
    main.dataset.revision = rep.revision;
    main.dataset.verdict = rep.verdict;
    renderSummary(rep);
    renderComparison(rep);
    renderLegend();
    $("graph-hint").textContent = "Rings by hop distance from the origin; arrows point from caller "
      + "to callee and carry calls · errors in the rollout's window.";
    const svg = $("graph");
    window.podtraceGraph.render(svg, window.podtraceGraph.build(rep, graph), fmt);
    svg.dataset.graph = graphError ? "unavailable" : "ok";
    $("graph-title").textContent = graphError
      ? `Blast radius (service graph unavailable: ${graphError.message})`
      : "Blast radius on the service graph";
    renderTables(rep);
    renderExemplars(rep);
  }

  // ---- loading --------------------------------------------------------------------------------

  async function loadReport(current) {
    const q = new URLSearchParams({ workload: current.workload });
    if (current.to_revision) q.set("revision", current.to_revision);
    if (current.from_revision) q.set("baseline", current.from_revision);
    const rep = await api(`/blast-radius?${q}`);
    let graph = null;
    let graphError = null;
    try {
      const since = rep.window && rep.window.start ? `?${new URLSearchParams({ since: rep.window.start })}` : "";
      graph = await api(`/graph${since}`);
    } catch (err) {
      graphError = err;
    }
    return { rep, graph, graphError };
  }

  async function emptyMessage() {
    const data = await api("/workloads");
    const n = (data.workloads || []).length;
    if (!n) {
      return "The collector has no data yet. Point your services' OpenTelemetry exporters at it "
        + "(OTLP gRPC on port 4317, HTTP on 4318); workloads and rollouts appear here as traces arrive.";
    }
    return `No rollouts yet. ${n} workload${n === 1 ? " is" : "s are"} reporting; a rollout appears `
      + "here when a workload's new revision starts serving requests.";
  }

  // One refresh: rollouts, then the selected rollout's report.  A newer refresh (or a new
  // selection) makes an older one's results obsolete; they are then dropped.
  async function refresh() {
    clearTimeout(state.timer);
    const generation = ++state.generation;
    const current = () => generation === state.generation;
    try {
      const data = await api("/rollouts");
      if (!current()) return;
      state.rollouts = [...(data.rollouts || [])]
        .sort((a, b) => String(b.started_at).localeCompare(String(a.started_at)));
      const sel = chosen();
      renderRollouts(sel);
      if (!sel) {
        const [text, graph] = await Promise.all([emptyMessage(), api("/graph")]);
        if (current()) showOverview(text, graph);
      } else {
        await refreshReport(sel, current);
      }
      if (!current()) return;
      state.lastOk = new Date();
      showBanner(null);
    } catch (err) {
      if (!current()) return;
      showBanner(err);
      if (!state.lastOk) showReportMessage(`Cannot load the rollouts: ${err.message}.`, "error");
    } finally {
      if (current()) {
        showStatus();
        document.body.dataset.ready = "true";
        document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
        state.timer = setTimeout(tick, config.refreshMs);
      }
    }
  }

  async function refreshReport(sel, current) {
    try {
      const { rep, graph, graphError } = await loadReport(sel);
      if (!current()) return;
      // The window's end is "now" and moves on every refresh: it alone does not redraw.
      const key = JSON.stringify([{ ...rep, window: null }, graph, graphError && graphError.message]);
      // Unchanged data: leave the DOM alone (no flicker, focus and text selection survive).
      if (state.seen.key !== key || $("summary").hidden) renderReport(rep, graph, graphError);
      else renderSummaryLine(rep);
      state.seen.key = key;
    } catch (err) {
      // Unreachable API or a bug here: the banner's business.  An API answer: shown in place.
      if (!current() || !(err instanceof ApiError) || err.status === 0) throw err;
      state.seen.key = null;
      showReportMessage(`Cannot show the blast radius of ${sel.workload} @ ${sel.to_revision || "newest"}: `
        + `${err.code} (HTTP ${err.status}): ${err.message}`, "error");
    }
  }

  // A hidden tab does not poll (each refresh costs the collector a few queries); it catches up
  // as soon as it is shown again.
  function tick() {
    if (document.hidden) state.timer = setTimeout(tick, config.refreshMs);
    else refresh();
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && state.lastOk && Date.now() - state.lastOk.getTime() > config.refreshMs) refresh();
  });
  window.addEventListener("hashchange", () => {
    state.seen.key = null;
    refresh();
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", refresh);
  else refresh();
})();
