// podtrace: the blast-radius report of the selected rollout, drawn into the page's sections.
"use strict";

window.podtraceReport = (() => {
  const { h, fmt, pct, ms, share, shortRev, pValue, utc, badge } = window.podtraceFormat;
  const $ = (id) => document.getElementById(id);
  let config = { traceUrl: "" };

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
    renderSlowdown(rep.slowdown);
    const slowed = latencyImpact(rep);
    const items = [
      ["affected users", users(rep.affected_users), "users"],
      ["affected traces", fmt(rep.affected_traces), "traces"],
      ["affected services", fmt((rep.affected_services || []).length), "services"],
      ["max hops", fmt(rep.max_hops), "hops"],
      ["origin errors", `${fmt(rep.origin_errors)} / ${fmt(rep.requests)}`, "origin"],
      slowed.entrypoints.length ? ["slowed entry points", fmt(slowed.entrypoints.length), "slowed"] : null,
    ].filter(Boolean);
    $("reasons").replaceChildren(...(rep.reasons || []).map((r) => h("li", {}, r)));
    $("headline").replaceChildren(...items.map(([label, value, key]) =>
      h("div", { class: "kpi", "data-kpi": key, "data-unknown": value === "unknown" ? "true" : null,
        "data-zero": value === "0" ? "true" : null,
        title: key === "users" ? usersNote(rep) : null },
        h("dt", {}, label), h("dd", {}, value))));
  }

  // Where a self-time regression went (the report's slowdown.where), as a mark by the verdict.
  const SLOWDOWN = {
    own_code: "slower in its own code",
    transit: "slower to reach",
    caller: "slower to reach: its callers' own slowness",
  };

  function renderSlowdown(slowdown) {
    const el = $("summary-slowdown");
    const where = slowdown && SLOWDOWN[slowdown.where] ? slowdown.where : "";
    const callers = ((slowdown && slowdown.callers) || []).map((c) =>
      `${c.workload}: transit to it ${ms(c.transit_ms && c.transit_ms.p50)} vs ` +
      `${ms(c.baseline_transit_ms && c.baseline_transit_ms.p50)} (p50)`);
    el.hidden = !where;
    el.dataset.where = where;
    el.textContent = where ? SLOWDOWN[where] : "";
    el.title = callers.join("\n");
  }

  // Failures started in the revision: its node is then the origin of the failures (graph.js
  // draws it the same way from the same fields), else just "this rollout".
  const failing = (rep) => (rep.origin_errors || 0) > 0 || (rep.affected_services || []).length > 0;

  // Users are counted from enduser.id on entry spans; without one the count is unknown, not 0.
  const users = (n) => (n === null ? "unknown" : fmt(n));

  function usersNote(rep) {
    if (rep.affected_users !== null) return null;
    return rep.affected_users_reason || "no enduser.id on entry spans";
  }

  // The latency blast radius (the report's latency_impact), empty lists when absent.
  function latencyImpact(rep) {
    const li = rep.latency_impact || {};
    return { entrypoints: li.entrypoints || [], services: li.services || [] };
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

  function renderLegend(rep) {
    const origin = failing(rep) ? ["origin", "node origin hop-0", "✖", "origin of the failures"]
      : ["rollout", "node rollout", "◆", "this rollout (no failure started in it)"];
    const items = [origin,
      ["hop-1", "node affected hop-1", "1", "1 hop away"], ["hop-2", "node affected hop-2", "2", "2 hops"],
      ["hop-3", "node affected hop-3", "3", "3 hops"],
      ["hop-far", "node affected hop-far", "4+", "4+ hops"], ["unaffected", "node unaffected hop-none", "", "not affected"],
      ["absorbing", "node absorbing hop-none", "↩", "absorbed failures (dashed ring)"],
      ["entry", "", "⇥", "entry point"]];
    const li = latencyImpact(rep);
    if (li.entrypoints.length || li.services.length) {
      items.splice(6, 0, ["slowed", "node slow-only slowed", "", "slowed on the critical path (violet ring)"]);
    }
    $("legend").replaceChildren(...items.map(([key, cls, mark, text]) => h("li", { "data-legend": key },
      h("span", { class: `swatch ${cls}`, "aria-hidden": "true" }, mark), text)));
  }

  function renderTables(rep) {
    const ep = rep.entrypoints || [];
    $("entrypoints").tBodies[0].replaceChildren(...ep.map((e) => h("tr", { "data-workload": e.workload,
      "data-operation": e.operation }, h("td", {}, e.workload), h("td", {}, h("code", {}, e.operation)),
    h("td", { class: "num" }, fmt(e.affected_requests)), h("td", { class: "num" }, fmt(e.requests)),
    h("td", { class: "num" }, share(e.affected_requests, e.requests)),
    h("td", { class: "num" }, users(e.affected_users)))));
    $("entrypoints-users").replaceChildren(...(rep.affected_users === null
      ? ["affected users: ", h("strong", { id: "affected-users" }, "unknown"), ` (${usersNote(rep)})`]
      : [h("strong", { id: "affected-users" }, fmt(rep.affected_users)),
        " distinct users (enduser.id) hit an error at the entry points below."]));
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

  // Entry points and workloads slowed through this revision, biggest added time first (the
  // API's order).  Nothing at all when the report has no latency impact.
  function renderSlowed(rep) {
    const li = latencyImpact(rep);
    $("slowed-card").hidden = !li.entrypoints.length && !li.services.length;
    const added = (o, q) => (o.added_ms && o.added_ms[q] !== undefined ? `+${ms(o.added_ms[q])}` : "–");
    const lat = (o, q) => ms(o.latency_ms && o.latency_ms[q]);
    const figures = (o) => [String(o.hops ?? "–"), fmt(o.exposed_requests), fmt(o.requests),
      added(o, "p50"), added(o, "p95"), lat(o, "p50"), lat(o, "p95")].map((v) => h("td", { class: "num" }, v));
    const title = (o) => `share of the critical path: ${ms(o.share_ms && o.share_ms.p50)} p50 now, `
      + `${ms(o.baseline_share_ms && o.baseline_share_ms.p50)} p50 with the baseline; p = ${pValue(o.p_value)}`;
    $("slowed-entrypoints").hidden = !li.entrypoints.length;
    $("slowed-entrypoints").tBodies[0].replaceChildren(...li.entrypoints.map((e) => h("tr",
      { "data-workload": e.workload, "data-operation": e.operation, title: title(e) },
      h("td", {}, e.workload), h("td", {}, h("code", {}, e.operation)), ...figures(e),
      h("td", { class: "num" }, users(e.affected_users ?? null)))));
    $("slowed-services").hidden = !li.services.length;
    $("slowed-services").tBodies[0].replaceChildren(...li.services.map((s) => h("tr",
      { "data-workload": s.workload, title: title(s) }, h("td", {}, s.workload), ...figures(s))));
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

  function renderReport(rep, graph, graphError, options) {
    config = options || config;
    $("report-empty").hidden = true;
    for (const id of ["summary", "comparison-card", "graph-card"]) $(id).hidden = false;
    const main = $("report");
    main.dataset.workload = rep.workload;
    main.dataset.revision = rep.revision;
    main.dataset.verdict = rep.verdict;
    renderSummary(rep);
    renderComparison(rep);
    renderLegend(rep);
    $("graph-hint").textContent = (failing(rep)
      ? "One column per hop: the origin on the right, the workloads its failures reached to its left, "
      : "One column per hop: this rollout on the right, the workloads it slowed to its left, ")
      + "up to the entry points; unaffected workloads are faded. Arrows point from caller to callee "
      + "and carry calls · errors in the rollout's window. Drag to pan, wheel to zoom.";
    const svg = $("graph");
    window.podtraceView.show(rep, graph, fmt);
    svg.dataset.graph = graphError ? "unavailable" : "ok";
    $("graph-title").textContent = graphError
      ? `Blast radius (service graph unavailable: ${graphError.message})`
      : "Blast radius on the service graph";
    renderTables(rep);
    renderSlowed(rep);
    renderExemplars(rep);
  }

  return { render: renderReport, renderSummaryLine };
})();
