// podtrace: the blast radius drawn on the service graph, in SVG, by hop distance.
//
// The origin workload sits at the centre; the workloads its failures reached sit on rings
// around it, one ring per hop; every other workload sits on an outer ring.  Within a ring,
// nodes are ordered by the angle of their neighbours on inner rings so that edges stay short
// and rarely cross.  No library: a few dozen nodes need no force simulation.
"use strict";

window.podtraceGraph = (() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const NODE_R = 22;
  // The rings are ellipses filling a canvas as wide as the graph's box on screen, so that text
  // is drawn at its CSS size; a ring step never drops below what labels need (the box then
  // scrolls rather than shrinking text out of legibility).
  const DEFAULT_W = 1000;
  const MIN_SCALE = 0.8;
  const MIN_STEP_X = 135;
  const MIN_STEP_Y = 90;
  const MIN_GAP = 150; // arc length between neighbours on a ring, room for the labels
  const MARGIN_X = 110;
  const MARGIN_Y = 60;

  // Merge the graph endpoint's nodes and edges with the report's view of them.  Without a
  // report (no rollout yet) every workload is drawn, none marked.
  function build(report, graph) {
    report = report || { workload: null };
    const nodes = new Map();
    const node = (id, service) => {
      if (!nodes.has(id)) {
        nodes.set(id, {
          id, service: service || id.split("/").pop(), kind: "", requests: null,
          errors: null, hops: null, affected: null, absorbed: 0, entry: false,
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
    const edges = ((graph && graph.edges) || []).filter(
      (e) => e.source !== e.target && nodes.has(e.source) && nodes.has(e.target));
    return { origin: origin && origin.id, nodes: [...nodes.values()], edges };
  }

  // Assign x, y to every node: elliptical rings by hop, the outer ring for the unaffected.
  // Coordinates are pixels of a canvas wide enough for the busiest ring, so text keeps its size.
  function layout(model, canvasW) {
    const canvasH = Math.min(760, Math.max(560, canvasW * 0.62));
    const rings = new Map();
    const maxHop = Math.max(0, ...model.nodes.filter((n) => n.hops !== null).map((n) => n.hops));
    for (const n of model.nodes) {
      const ring = n.hops === null ? maxHop + 1 : n.hops;
      if (!rings.has(ring)) rings.set(ring, []);
      rings.get(ring).push(n);
    }
    const order = [...rings.keys()].filter((r) => r > 0).sort((a, b) => a - b);
    // Ring k sits at k steps; a step grows until the busiest ring has room for its nodes.
    const ringCount = Math.max(1, order.length);
    const stepX = Math.max(MIN_STEP_X, (canvasW / 2 - MARGIN_X) / ringCount);
    const stepY = Math.max(MIN_STEP_Y, (canvasH / 2 - MARGIN_Y) / ringCount);
    let scale = 1;
    order.forEach((ring, i) => {
      const arc = 2 * Math.PI * (i + 1) * Math.sqrt((stepX * stepX + stepY * stepY) / 2);
      scale = Math.max(scale, (rings.get(ring).length * MIN_GAP) / arc);
    });
    const neighbours = new Map(model.nodes.map((n) => [n.id, []]));
    for (const e of model.edges) {
      neighbours.get(e.source).push(e.target);
      neighbours.get(e.target).push(e.source);
    }
    const placed = new Map();
    (rings.get(0) || []).forEach((n, i) => place(placed, n, 0, i * 60));
    const radii = [];
    order.forEach((ring, i) => {
      const rx = (i + 1) * stepX * scale;
      const ry = (i + 1) * stepY * scale;
      radii.push({ ring, rx, ry, unaffected: ring === maxHop + 1 });
      placeRing(placed, rings.get(ring), rx, ry, neighbours, ring !== maxHop + 1);
    });
    const last = radii[radii.length - 1] || { rx: MIN_STEP_X, ry: MIN_STEP_Y };
    return { radii, width: 2 * (last.rx + MARGIN_X), height: 2 * (last.ry + MARGIN_Y), positions: placed };
  }

  function place(placed, n, x, y, angle) {
    n.x = x;
    n.y = y;
    n.angle = angle ?? null;
    placed.set(n.id, n);
  }

  // Circular mean of the angles of a node's neighbours on inner rings (null when none).
  function wantedAngle(n, placed, neighbours) {
    const angles = neighbours.get(n.id).map((id) => placed.get(id)).filter((p) => p && p.angle !== null)
      .map((p) => p.angle);
    if (!angles.length) return null;
    return Math.atan2(angles.reduce((s, a) => s + Math.sin(a), 0), angles.reduce((s, a) => s + Math.cos(a), 0));
  }

  // Nodes take the free slot nearest to their neighbours.  An affected ring has spare slots, so
  // a node stays next to the workload it failed through; the outer ring has exactly one slot per
  // node, so the unaffected spread all around.  Nodes whose neighbours are all on the same ring
  // follow them once those are placed; nodes with no placed neighbour spread evenly.
  function placeRing(placed, members, rx, ry, neighbours, spare) {
    const n = members.length;
    const count = spare ? Math.max(n, Math.min(2 * n, Math.floor((Math.PI * (rx + ry)) / MIN_GAP))) : n;
    const byId = (p, q) => p.id.localeCompare(q.id);
    const known = members.map((m) => ({ m, a: wantedAngle(m, placed, neighbours) }))
      .filter((w) => w.a !== null).sort((p, q) => p.a - q.a || byId(p.m, q.m));
    // Slots start on the left: a chain of callers then reads left to right, towards the origin.
    const turn = spare || !known.length ? Math.PI : bestTurn(known.map((w) => w.a), count);
    const slots = Array.from({ length: count }, (_, i) => ({ a: turn + (i * 2 * Math.PI) / count, taken: false }));
    const take = (m, target) => {
      const slot = slots.filter((s) => !s.taken)
        .reduce((best, s) => (gap(s.a, target) < gap(best.a, target) ? s : best));
      slot.taken = true;
      place(placed, m, rx * Math.cos(slot.a), ry * Math.sin(slot.a), slot.a);
    };
    for (const { m, a } of known) take(m, a);
    let rest = members.filter((m) => !placed.has(m.id)).sort(byId);
    for (;;) {
      const next = rest.map((m) => ({ m, a: wantedAngle(m, placed, neighbours) })).find((w) => w.a !== null);
      if (!next) break;
      take(next.m, next.a);
      rest = rest.filter((m) => m !== next.m);
    }
    const free = slots.filter((s) => !s.taken);
    rest.forEach((m, i) => take(m, free[Math.floor((i * free.length) / rest.length)].a));
  }

  // The rotation of evenly spaced slots that brings them closest to the wanted angles.
  function bestTurn(angles, count) {
    let best = Math.PI;
    let bestCost = Infinity;
    for (let k = 0; k < 36; k++) {
      const turn = Math.PI + (k * 2 * Math.PI) / (36 * count);
      const cost = angles.reduce((sum, a) => {
        const i = Math.round((((a - turn) % (2 * Math.PI)) + 2 * Math.PI) / ((2 * Math.PI) / count)) % count;
        return sum + gap(a, turn + (i * 2 * Math.PI) / count);
      }, 0);
      if (cost < bestCost - 1e-9) {
        best = turn;
        bestCost = cost;
      }
    }
    return best;
  }

  function gap(a, b) {
    const d = Math.abs(a - b) % (2 * Math.PI);
    return Math.min(d, 2 * Math.PI - d);
  }

  function el(tag, attrs, ...children) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined && v !== false) e.setAttribute(k, String(v));
    }
    for (const c of children) e.append(c);
    return e;
  }

  function nodeClasses(n, origin) {
    const cls = ["node"];
    if (n.id === origin) cls.push("origin", "hop-0");
    else if (n.hops !== null) cls.push("affected", `hop-${n.hops}`, n.hops >= 4 ? "hop-far" : "");
    else cls.push("unaffected", "hop-none");
    if (n.absorbed) cls.push("absorbing");
    if (n.entry) cls.push("entry");
    return cls.filter(Boolean).join(" ");
  }

  function nodeCaption(n, origin, fmt) {
    if (n.id === origin) return "origin";
    const parts = [];
    if (n.hops !== null) {
      parts.push(`${n.hops} hop${n.hops === 1 ? "" : "s"} · ${fmt(n.affected)}/${fmt(n.requests)}`);
    }
    if (n.absorbed) parts.push(`absorbed ${fmt(n.absorbed)}`);
    const requests = n.requests === null ? "" : `${fmt(n.requests)} req`;
    if (!parts.length) parts.push(origin === null ? requests : ["unaffected", requests].filter(Boolean).join(" · "));
    return parts.join(" · ");
  }

  function drawNode(n, origin, fmt) {
    const caption = nodeCaption(n, origin, fmt);
    const g = el("g", {
      class: nodeClasses(n, origin), "data-workload": n.id, "data-hops": n.hops ?? "",
      "data-absorbed": n.absorbed || null, "data-entry": n.entry ? "true" : null,
      transform: `translate(${n.x.toFixed(1)},${n.y.toFixed(1)})`, tabindex: 0,
    });
    g.append(el("title", {}, `${n.id}${n.kind ? ` (${n.kind})` : ""}: ${caption}${n.entry ? " · entry point" : ""}`));
    if (n.absorbed) g.append(el("circle", { class: "absorb-ring", r: NODE_R + 7 }));
    g.append(el("circle", { class: "dot", r: NODE_R }));
    const mark = n.id === origin ? "✖" : n.hops !== null ? String(n.hops) : n.absorbed ? "↩" : "";
    g.append(el("text", { class: "mark", dy: "0.35em" }, mark));
    // Long names are cut to keep neighbours apart; the node's title has the full name.
    const name = n.service.length > 24 ? `${n.service.slice(0, 23)}…` : n.service;
    g.append(el("text", { class: "name", y: NODE_R + 17 }, name + (n.entry ? " ⇥" : "")));
    g.append(el("text", { class: "caption", y: NODE_R + 32 }, caption));
    return g;
  }

  function drawEdge(e, nodes, origin, fmt) {
    const s = nodes.get(e.source);
    const t = nodes.get(e.target);
    const dx = t.x - s.x;
    const dy = t.y - s.y;
    const len = Math.hypot(dx, dy) || 1;
    // A gentle bend: two edges in opposite directions then do not overlap.
    const cx = (s.x + t.x) / 2 - (dy / len) * len * 0.12;
    const cy = (s.y + t.y) / 2 + (dx / len) * len * 0.12;
    const from = towards(s, { x: cx, y: cy }, NODE_R + 2);
    const to = towards(t, { x: cx, y: cy }, NODE_R + 8);
    const hot = s.hops !== null && t.hops !== null;
    const cls = ["edge", e.errors ? "edge-errors" : "edge-ok", hot ? "edge-blast" : ""].filter(Boolean).join(" ");
    const width = 1 + Math.log10((e.calls || 0) + 1);
    const g = el("g", { class: cls, "data-source": e.source, "data-target": e.target,
      "data-calls": e.calls, "data-errors": e.errors });
    const label = `${fmt(e.calls)} calls${e.errors ? ` · ${fmt(e.errors)} errors` : ""}`;
    g.append(el("title", {}, `${e.source} → ${e.target}: ${label}${latencyText(e)}`));
    const xy = (x, y) => `${x.toFixed(1)},${y.toFixed(1)}`;
    g.append(el("path", { d: `M${xy(from.x, from.y)} Q${xy(cx, cy)} ${xy(to.x, to.y)}`,
      "stroke-width": width.toFixed(2), "marker-end": `url(#arrow-${e.errors ? "err" : "ok"})` }));
    // The label sits just outside the bend's midpoint, two short lines: calls, then errors.
    const lx = 0.25 * s.x + 0.5 * cx + 0.25 * t.x - (dy / len) * 10;
    const ly = 0.25 * s.y + 0.5 * cy + 0.25 * t.y + (dx / len) * 10;
    const text = el("text", { class: "edge-label", x: lx.toFixed(1), y: ly.toFixed(1) },
      el("tspan", { x: lx.toFixed(1), dy: e.errors ? "-0.2em" : "0.35em" }, compact(e.calls)));
    if (e.errors) {
      text.append(el("tspan", { class: "edge-errors-label", x: lx.toFixed(1), dy: "1.1em" },
        `${compact(e.errors)} err`));
    }
    g.append(text);
    return g;
  }

  const compactFormat = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 });
  function compact(n) {
    return n === null || n === undefined ? "–" : compactFormat.format(n);
  }

  function latencyText(e) {
    const l = e.latency_ms;
    return l && l.p50 !== undefined ? ` · p50 ${l.p50} ms, p99 ${l.p99} ms` : "";
  }

  function towards(p, q, dist) {
    const dx = q.x - p.x;
    const dy = q.y - p.y;
    const len = Math.hypot(dx, dy) || 1;
    return { x: p.x + (dx / len) * dist, y: p.y + (dy / len) * dist };
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

  // Where on its ring a ring's label is least in the way: farthest from the ring's nodes,
  // the bottom when that is free enough.
  function labelAngle(angles) {
    let best = Math.PI / 2;
    let bestGap = -1;
    for (let k = 0; k < 36; k++) {
      const a = Math.PI / 2 + (k * Math.PI) / 18;
      const nearest = Math.min(Math.PI, ...angles.map((b) => gap(a, b)));
      if (nearest > bestGap + 0.2) {
        best = a;
        bestGap = nearest;
      }
    }
    return best;
  }

  // Draw the model into the <svg> element, replacing what was there.
  function render(svg, model, fmt) {
    const box = svg.parentElement ? svg.parentElement.clientWidth : 0;
    const { radii, width, height, positions } = layout(model, box > 200 ? box : DEFAULT_W);
    svg.replaceChildren();
    const viewBox = [-width / 2, -height / 2, width, height].map((v) => v.toFixed(0));
    svg.setAttribute("viewBox", viewBox.join(" "));
    svg.setAttribute("width", width.toFixed(0));
    svg.style.minWidth = `${(width * MIN_SCALE).toFixed(0)}px`;
    svg.append(markers());
    const rings = el("g", { class: "rings" });
    for (const { ring, rx, ry, unaffected } of radii) {
      const label = model.origin === null ? "" : unaffected ? "not affected" : `${ring} hop${ring === 1 ? "" : "s"}`;
      rings.append(el("ellipse",
        { class: `ring ring-${unaffected ? "none" : ring}`, rx: rx.toFixed(1), ry: ry.toFixed(1) }));
      const members = model.nodes.filter((n) => (unaffected ? n.hops === null : n.hops === ring));
      const a = labelAngle(members.map((n) => n.angle));
      rings.append(el("text", { class: "ring-label", x: (rx * Math.cos(a)).toFixed(1),
        y: (ry * Math.sin(a) + 4).toFixed(1) }, label));
    }
    svg.append(rings);
    const edges = el("g", { class: "edges" });
    for (const e of model.edges) edges.append(drawEdge(e, positions, model.origin, fmt));
    svg.append(edges);
    const nodes = el("g", { class: "nodes" });
    for (const n of model.nodes) nodes.append(drawNode(n, model.origin, fmt));
    svg.append(nodes);
    // When the graph is wider than its box, show its centre (the origin) first.
    const wrap = svg.parentElement;
    if (wrap && wrap.scrollWidth > wrap.clientWidth) wrap.scrollLeft = (wrap.scrollWidth - wrap.clientWidth) / 2;
  }

  return { build, layout, render };
})();
