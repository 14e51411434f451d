// podtrace: the blast radius drawn on the service graph, in SVG.
//
// ``build`` merges the graph endpoint's nodes and edges with the report's view of them and sorts
// every workload into a group: ``core`` (the origin, every workload its failures or latency
// reached, the workloads that absorbed failures, the entry points), ``context`` (an unaffected
// workload that calls or is called by the core) and ``rest``.  ``draw`` puts the visible ones
// into an SVG group: nodes first (to measure their labels), then the layout (layout.js), then
// edges, whose labels take the first free place along their curve or stay hidden (the edge's
// tooltip still has the figures): no label is ever drawn over another.
"use strict";

window.podtraceGraph = (() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const NODE_R = 22;
  const RING = 9; // how far the absorbed and slowed rings reach beyond a node's disc
  const PAD = 3; // between two labels, at least

  function build(report, graph) {
    report = report || { workload: null };
    const nodes = new Map();
    const node = (id, service) => {
      if (!nodes.has(id)) {
        nodes.set(id, {
          id, service: service || id.split("/").pop(), kind: "", requests: null, errors: null,
          hops: null, affected: null, absorbed: 0, entry: false, slowed: null, slowHops: null, group: "rest",
        });
      }
      return nodes.get(id);
    };
    for (const n of (graph && graph.nodes) || []) {
      Object.assign(node(n.id, n.service), { kind: n.kind || "", requests: n.requests, errors: n.errors });
    }
    const origin = report.workload === null ? null : node(report.workload, report.service);
    if (origin) origin.hops = 0;
    for (const a of report.affected_services || []) {
      const n = node(a.workload, a.service);
      n.hops = a.hops;
      n.affected = a.affected_requests;
      n.requests = n.requests ?? a.requests;
    }
    for (const e of report.entrypoints || []) node(e.workload, e.service).entry = true;
    for (const c of report.contained_by || []) node(c.workload, c.service).absorbed += c.absorbed_requests;
    const impact = report.latency_impact || {};
    for (const s of [...(impact.services || []), ...(impact.entrypoints || [])]) {
      const n = node(s.workload, s.service);
      if (n === origin) continue;
      n.slowed = n.slowed || { p50: 0, p95: 0, exposed: 0, requests: 0 };
      const added = s.added_ms || {};
      n.slowed.p50 = Math.max(n.slowed.p50, added.p50 || 0);
      n.slowed.p95 = Math.max(n.slowed.p95, added.p95 || 0);
      n.slowed.exposed = Math.max(n.slowed.exposed, s.exposed_requests || 0);
      n.slowed.requests = Math.max(n.slowed.requests, s.requests || 0);
      if (typeof s.hops === "number") n.slowHops = Math.min(n.slowHops ?? Infinity, s.hops);
    }
    for (const e of impact.entrypoints || []) node(e.workload, e.service).entry = true;
    const edges = ((graph && graph.edges) || []).filter(
      (e) => e.source !== e.target && nodes.has(e.source) && nodes.has(e.target));
    // The rolled-out workload is drawn as the origin of failures only when failures started in
    // it; a revision that only slowed others (or nothing) is drawn as "this rollout".
    const failing = !!origin && ((report.origin_errors || 0) > 0 || (report.affected_services || []).length > 0);
    const model = { origin: origin && origin.id, failing, nodes: [...nodes.values()], edges };
    group(model);
    return model;
  }

  function group(model) {
    const core = (n) => n.id === model.origin || n.hops !== null || n.slowed || n.absorbed || n.entry;
    for (const n of model.nodes) if (model.origin !== null && core(n)) n.group = "core";
    const byId = new Map(model.nodes.map((n) => [n.id, n]));
    for (const e of model.edges) {
      const [s, t] = [byId.get(e.source), byId.get(e.target)];
      if (s.group === "core" && t.group === "rest") t.group = "context";
      if (t.group === "core" && s.group === "rest") s.group = "context";
    }
  }

  function el(tag, attrs, ...children) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined && v !== false) e.setAttribute(k, String(v));
    }
    for (const c of children) e.append(c);
    return e;
  }

  function nodeClasses(n, origin, failing) {
    const cls = ["node", `group-${n.group}`];
    if (n.id === origin) cls.push(...(failing ? ["origin", "hop-0"] : ["rollout"]));
    else if (n.hops !== null) cls.push("affected", `hop-${n.hops}`, n.hops >= 4 ? "hop-far" : "");
    else if (n.slowed) cls.push("slow-only");
    else cls.push("unaffected", "hop-none");
    if (n.slowed) cls.push("slowed");
    if (n.absorbed) cls.push("absorbing");
    if (n.entry) cls.push("entry");
    return cls.filter(Boolean).join(" ");
  }

  function nodeCaption(n, origin, fmt, failing) {
    if (n.id === origin) return failing ? "origin" : "this rollout";
    const parts = [];
    if (n.hops !== null) {
      parts.push(`${n.hops} hop${n.hops === 1 ? "" : "s"} · ${fmt(n.affected)}/${fmt(n.requests)}`);
    }
    if (n.absorbed) parts.push(`absorbed ${fmt(n.absorbed)}`);
    const requests = n.requests === null ? "" : `${fmt(n.requests)} req`;
    if (!parts.length && !n.slowed) {
      parts.push(origin === null ? requests : ["unaffected", requests].filter(Boolean).join(" · "));
    }
    return parts.join(" · ");
  }

  const addedMs = (x) => `+${Number(x).toFixed(x < 10 ? 1 : 0)} ms`;

  function drawNode(n, origin, fmt, failing) {
    const caption = nodeCaption(n, origin, fmt, failing);
    const slow = n.slowed ? `slowed ${addedMs(n.slowed.p50)} p50` : "";
    const g = el("g", {
      class: nodeClasses(n, origin, failing), "data-workload": n.id, "data-hops": n.hops ?? "",
      "data-slow-hops": n.slowHops ?? null, "data-absorbed": n.absorbed || null,
      "data-entry": n.entry ? "true" : null, tabindex: 0,
    });
    const slowTitle = n.slowed ? ` · slowed on its critical path: ${addedMs(n.slowed.p50)} p50, `
      + `${addedMs(n.slowed.p95)} p95 over ${fmt(n.slowed.exposed)}/${fmt(n.slowed.requests)} requests` : "";
    g.append(el("title", {}, `${n.id}${n.kind ? ` (${n.kind})` : ""}: ${caption}${slowTitle}`
      + `${n.entry ? " · entry point" : ""}`));
    if (n.absorbed) g.append(el("circle", { class: "absorb-ring", r: NODE_R + RING - 2 }));
    if (n.slowed) g.append(el("circle", { class: "slow-ring", r: NODE_R + 4 }));
    g.append(el("circle", { class: "dot", r: NODE_R }));
    const hop = n.hops ?? n.slowHops;
    const mark = n.id === origin ? (failing ? "✖" : "◆") : hop !== null ? String(hop) : n.absorbed ? "↩" : "";
    g.append(el("text", { class: "mark", dy: "0.35em" }, mark));
    // Long names are cut to keep columns narrow; the node's title has the full name.
    const name = n.service.length > 24 ? `${n.service.slice(0, 23)}…` : n.service;
    let y = NODE_R + RING + 8;
    g.append(el("text", { class: "name", y }, name + (n.entry ? " ⇥" : "")));
    for (const [cls, text] of [["caption", caption], ["slow-caption", slow]]) {
      if (!text) continue;
      y += 15;
      g.append(el("text", { class: cls, y }, text));
    }
    return g;
  }

  // A label block's extent around its node's centre, measured (estimated when not rendered).
  function measure(g) {
    const boxes = [{ x: -NODE_R - RING, y: -NODE_R - RING, w: 2 * (NODE_R + RING), h: 2 * (NODE_R + RING) }];
    for (const t of g.querySelectorAll("text.name, text.caption, text.slow-caption")) boxes.push(textBox(t));
    const hw = Math.max(...boxes.map((b) => Math.max(-b.x, b.x + b.w)));
    return { boxes, hw, top: NODE_R + RING, bottom: Math.max(...boxes.map((b) => b.y + b.h)) };
  }

  function textBox(t) {
    const b = t.getBBox();
    if (b.width > 0) return { x: b.x, y: b.y, w: b.width, h: b.height };
    const size = t.classList.contains("name") ? 13 : 11; // not laid out (a hidden tab): estimate
    const w = t.textContent.length * size * 0.62;
    const y = Number(t.getAttribute("y")) || 0;
    return { x: -w / 2, y: y - size, w, h: size * 1.3 };
  }

  function shift(b, x, y) {
    return { x: b.x + x, y: b.y + y, w: b.w, h: b.h };
  }

  function overlaps(a, b) {
    return a.x < b.x + b.w + PAD && b.x < a.x + a.w + PAD && a.y < b.y + b.h + PAD && b.y < a.y + a.h + PAD;
  }

  // The route of an edge, as cubic Bézier segments.  Left to right between columns, a single
  // S-curve, unless that would cross another node or its label: then it leaves along a lane
  // above or below everything between the two columns.  A call against the flow (a cycle) or
  // within one column arches over the top or out to the right.
  function route(s, t, obstacles) {
    if (t.x > s.x) {
      const a = { x: s.x + NODE_R + 2, y: s.y };
      const b = { x: t.x - NODE_R - 8, y: t.y };
      const dx = (b.x - a.x) / 2;
      const direct = [[a, { x: a.x + dx, y: a.y }, { x: b.x - dx, y: b.y }, b]];
      const between = obstacles.filter((o) => o.id !== s.id && o.id !== t.id && o.box.x < b.x && o.box.x + o.box.w > a.x);
      const samples = Array.from({ length: 23 }, (_, i) => bezier(direct[0], (i + 1) / 24));
      if (!between.some((o) => samples.some((p) => inside(p, o.box)))) return direct;
      const up = Math.min(...between.map((o) => o.box.y)) - 14;
      const down = Math.max(...between.map((o) => o.box.y + o.box.h)) + 14;
      const lane = Math.abs(s.y - up) + Math.abs(t.y - up) <= Math.abs(s.y - down) + Math.abs(t.y - down) ? up : down;
      // Out of the source's column and into the target's at the nodes' own height (nothing else
      // sits on a node's row in its column), turning to and from the lane in the gaps between.
      const gap = window.podtraceLayout.GAP_X;
      const out = { x: s.x + s.colHw + 4, y: s.y };
      const into = { x: t.x - t.colHw - 4, y: t.y };
      const x0 = Math.min(out.x + gap - 8, (out.x + into.x) / 2);
      const x1 = Math.max(into.x - gap + 8, x0);
      const line = (p, q) => [p, p, q, q];
      const turn = (p, q) => [p, { x: (p.x + q.x) / 2, y: p.y }, { x: (p.x + q.x) / 2, y: q.y }, q];
      return [line(a, out), turn(out, { x: x0, y: lane }), line({ x: x0, y: lane }, { x: x1, y: lane }),
        turn({ x: x1, y: lane }, into), line(into, b)];
    }
    if (t.x === s.x) {
      const side = NODE_R + 40 + Math.abs(s.y - t.y) * 0.25;
      return [[{ x: s.x + NODE_R + 2, y: s.y }, { x: s.x + side, y: s.y }, { x: t.x + side, y: t.y },
        { x: t.x + NODE_R + 8, y: t.y }]];
    }
    const lift = Math.min(s.y, t.y) - NODE_R - 30 - Math.abs(s.x - t.x) * 0.12;
    return [[{ x: s.x, y: s.y - NODE_R - 2 }, { x: s.x, y: lift }, { x: t.x, y: lift }, { x: t.x, y: t.y - NODE_R - 8 }]];
  }

  function inside(p, box) {
    return p.x > box.x && p.x < box.x + box.w && p.y > box.y && p.y < box.y + box.h;
  }

  function bezier(c, u) {
    const v = 1 - u;
    const w = [v * v * v, 3 * v * v * u, 3 * v * u * u, u * u * u];
    return { x: c.reduce((s, p, i) => s + w[i] * p.x, 0), y: c.reduce((s, p, i) => s + w[i] * p.y, 0) };
  }

  // A point along a route, ``u`` from 0 (start) to 1 (end), segment by segment.
  function pointAt(segments, u) {
    const i = Math.min(segments.length - 1, Math.floor(u * segments.length));
    return bezier(segments[i], u * segments.length - i);
  }

  const compactFormat = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 });
  function compact(n) {
    return n === null || n === undefined ? "–" : compactFormat.format(n);
  }

  function latencyText(e) {
    const l = e.latency_ms;
    return l && l.p50 !== undefined ? ` · p50 ${l.p50} ms, p99 ${l.p99} ms` : "";
  }

  function drawEdge(e, s, t, fmt, obstacles) {
    const c = route(s, t, obstacles);
    const blast = s.group === "core" && t.group === "core" && s.id !== t.id;
    const cls = ["edge", e.errors ? "edge-errors" : "edge-ok", blast ? "edge-blast" : ""].filter(Boolean).join(" ");
    const g = el("g", { class: cls, "data-source": e.source, "data-target": e.target,
      "data-calls": e.calls, "data-errors": e.errors });
    const label = `${fmt(e.calls)} calls${e.errors ? ` · ${fmt(e.errors)} errors` : ""}`;
    g.append(el("title", {}, `${e.source} → ${e.target}: ${label}${latencyText(e)}`));
    const xy = (p) => `${p.x.toFixed(1)},${p.y.toFixed(1)}`;
    g.append(el("path", { d: `M${xy(c[0][0])} ${c.map((p) => `C${xy(p[1])} ${xy(p[2])} ${xy(p[3])}`).join(" ")}`,
      "stroke-width": (1 + Math.log10((e.calls || 0) + 1)).toFixed(2),
      "marker-end": `url(#arrow-${e.errors ? "err" : "ok"})` }));
    // Two short lines, calls then errors, placed later where they are in nobody's way.
    const text = el("text", { class: "edge-label" }, el("tspan", { dy: e.errors ? "-0.2em" : "0.35em" }, compact(e.calls)));
    if (e.errors) text.append(el("tspan", { class: "edge-errors-label", dy: "1.1em" }, `${compact(e.errors)} err`));
    g.append(text);
    return { g, text, curve: c, blast, e };
  }

  function moveLabel(text, p) {
    text.setAttribute("x", p.x.toFixed(1));
    text.setAttribute("y", p.y.toFixed(1));
    for (const span of text.querySelectorAll("tspan")) span.setAttribute("x", p.x.toFixed(1));
  }

  // Edge labels in order of importance (the blast radius, then errors, then traffic), each at the
  // first point along its curve where it overlaps no label, node or column heading placed so far.
  function placeEdgeLabels(drawn, taken) {
    const order = [...drawn].sort((a, b) => (b.blast - a.blast) || (b.e.errors - a.e.errors) || (b.e.calls - a.e.calls));
    const along = [0.5, 0.4, 0.6, 0.3, 0.7, 0.22, 0.78];
    // Measure every label first, then only move them: one layout of the page, not one per edge.
    for (const d of order) moveLabel(d.text, { x: 0, y: 0 });
    const sizes = new Map(order.map((d) => [d, textBox(d.text)]));
    for (const d of order) {
      const size = sizes.get(d);
      const spot = along.map((u) => pointAt(d.curve, u)).find((p) => !taken.some((b) => overlaps(b, shift(size, p.x, p.y))));
      if (spot) {
        moveLabel(d.text, spot);
        taken.push(shift(size, spot.x, spot.y));
      } else {
        d.text.classList.add("edge-label-hidden");
      }
    }
  }

  function markers() {
    const defs = el("defs");
    for (const kind of ["ok", "err"]) {
      defs.append(el("marker", { id: `arrow-${kind}`, viewBox: "0 0 10 10", refX: 8, refY: 5,
        markerWidth: 11, markerHeight: 11, markerUnits: "userSpaceOnUse", orient: "auto-start-reverse",
        class: `arrowhead arrow-${kind}` },
      el("path", { d: "M0,0 L10,5 L0,10 z" })));
    }
    return defs;
  }

  function columnLabel(layer, origin, failing) {
    if (origin === null || layer < 0) return "";
    if (layer === 0) return failing ? "origin" : "this rollout";
    return `${layer} hop${layer === 1 ? "" : "s"}`;
  }

  // Draw the visible part of ``model`` into ``root`` (an SVG group), replacing what was there.
  // Returns the drawn nodes by id and a function giving the bounding box of a set of them.
  function draw(root, model, visible, fmt) {
    const heads = el("g", { class: "columns" });
    const edges = el("g", { class: "edges" });
    const nodes = el("g", { class: "nodes" });
    root.replaceChildren(markers(), heads, edges, nodes);
    const shown = model.nodes.filter((n) => visible.has(n.id));
    const elements = new Map();
    for (const n of shown) {
      const g = drawNode(n, model.origin, fmt, model.failing);
      nodes.append(g);
      elements.set(n.id, g);
    }
    const sizes = new Map(shown.map((n) => [n.id, measure(elements.get(n.id))]));
    const layers = window.podtraceLayout.columns(model);
    const { columns } = window.podtraceLayout.place(model, visible, sizes, layers);
    const taken = [];
    const obstacles = [];
    for (const n of shown) {
      elements.get(n.id).setAttribute("transform", `translate(${n.x.toFixed(1)},${n.y.toFixed(1)})`);
      for (const b of sizes.get(n.id).boxes) {
        taken.push(shift(b, n.x, n.y));
        obstacles.push({ id: n.id, box: shift(b, n.x, n.y) });
      }
    }
    const label = (c) => columnLabel(c.layer, model.origin, model.failing);
    const headings = columns.filter(label).map((c) =>
      el("text", { class: "column-label", x: c.x.toFixed(1), y: (c.top - 12).toFixed(1) }, label(c)));
    heads.append(...headings);
    const labelBoxes = headings.map(textBox);
    for (const b of labelBoxes) {
      taken.push(b);
      obstacles.push({ id: null, box: b });
    }
    const at = new Map(shown.map((n) => [n.id, n]));
    const drawn = model.edges.filter((e) => at.has(e.source) && at.has(e.target))
      .map((e) => drawEdge(e, at.get(e.source), at.get(e.target), fmt, obstacles));
    for (const d of drawn) edges.append(d.g);
    placeEdgeLabels(drawn, taken);
    const bounds = (ids) => {
      const boxes = [...ids].filter((id) => at.has(id)).flatMap((id) => sizes.get(id).boxes.map((b) => shift(b, at.get(id).x, at.get(id).y)));
      if (!boxes.length) return null;
      const x0 = Math.min(...boxes.map((b) => b.x));
      const x1 = Math.max(...boxes.map((b) => b.x + b.w));
      const top = Math.min(...boxes.map((b) => b.y));
      // A column heading just above these nodes belongs with them.
      const heads = labelBoxes.filter((b) => b.x < x1 && b.x + b.w > x0 && b.y >= top - 40).map((b) => b.y);
      const y0 = Math.min(top, ...heads);
      const y1 = Math.max(...boxes.map((b) => b.y + b.h));
      return { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
    };
    return { elements, positions: at, bounds };
  }

  return { build, draw, compact };
})();
