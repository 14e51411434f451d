// podtrace: formatting helpers shared by the page's scripts (numbers, times, DOM building).
"use strict";

window.podtraceFormat = (() => {
  const nf = new Intl.NumberFormat("en");

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

  return { h, fmt, pct, ms, share, shortRev, pValue, utc, ago, badge };
})();
