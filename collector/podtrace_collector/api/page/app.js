// podtrace: the rollouts list, the selection and the periodic refresh of the page.
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
  const { h, fmt, shortRev, utc, ago, badge } = window.podtraceFormat;

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
      const slowed = r.slowed_entrypoints || 0;
      const counts = ["requests" in r && `${fmt(r.requests)} req · ${fmt(r.errors)} err`,
        r.affected_users ? `${fmt(r.affected_users)} users hit` : "",
        slowed ? `slowed ${fmt(slowed)} entry point${slowed === 1 ? "" : "s"}` : ""].filter(Boolean).join(" · ");
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

  const SECTIONS = ["summary", "comparison-card", "graph-card", "slowed-card", "entrypoints-card",
    "affected-card", "contained-card", "exemplars-card"];

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
    $("graph-hint").textContent = "Every workload reporting, callers to the left of what they call; "
      + "arrows carry calls · errors over everything retained. Drag to pan, wheel to zoom.";
    $("legend").replaceChildren();
    $("report").dataset.workload = "";
    window.podtraceView.show(null, graph, fmt);
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
      // The graph over the report's own window, so that its edge labels count what the
      // report counts: the calls made while the revision served, not everything retained.
      const win = new URLSearchParams();
      if (rep.window && rep.window.start) win.set("since", rep.window.start);
      if (rep.window && rep.window.end) win.set("until", rep.window.end);
      const qs = win.toString();
      graph = await api(`/graph${qs ? `?${qs}` : ""}`);
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
      if (state.seen.key !== key || $("summary").hidden) window.podtraceReport.render(rep, graph, graphError, config);
      else window.podtraceReport.renderSummaryLine(rep);
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
