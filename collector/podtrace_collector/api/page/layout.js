// podtrace: where the nodes of the graph go.  A layered drawing that reads the way calls flow,
// from the entry points on the left to the origin of the failures on the right.
//
// Columns: the origin is column 0 and every workload its failures (or its latency) reached sits
// in the column of its hop distance, so the blast radius reads as one chain from the users to
// the fault.  Other workloads take the column next to a workload already placed: a caller one
// column to the left, a callee one to the right.  Workloads no path reaches (or, without a
// rollout, every workload) are placed by their depth above the workloads that call nobody.
//
// Rows: within a column the blast radius is centred on one line and ordered by the rows of its
// neighbours (a few barycentre sweeps, the classic way to untangle a layered drawing); the rest
// of a column stacks above and below it.  Rows and columns are spaced by the labels' measured
// size, so no two node labels can overlap.  No library: this is all a page of 100 workloads needs.
"use strict";

window.podtraceLayout = (() => {
  const GAP_X = 60; // between the label extents of neighbouring columns: room for edge labels
  const GAP_Y = 14; // between two label blocks of one column
  const SWEEPS = 8;

  function adjacency(edges) {
    const callers = new Map();
    const callees = new Map();
    const add = (m, k, v) => (m.has(k) ? m.get(k).push(v) : m.set(k, [v]));
    for (const e of edges) {
      add(callees, e.source, e.target);
      add(callers, e.target, e.source);
    }
    for (const m of [callers, callees]) for (const list of m.values()) list.sort();
    return { callers, callees };
  }

  // The smallest hop distance at which a workload was reached, by errors or by latency.
  function hopOf(n) {
    const hops = [n.hops, n.slowHops].filter((h) => h !== null && h !== undefined);
    return hops.length ? Math.min(...hops) : null;
  }

  // The column of every node of the model (visible or not, so that expanding moves nothing).
  function columns(model) {
    const { callers, callees } = adjacency(model.edges);
    const layer = new Map();
    const seeds = model.nodes
      .filter((n) => n.id === model.origin || hopOf(n) !== null)
      .map((n) => ({ id: n.id, layer: n.id === model.origin ? 0 : hopOf(n) }))
      .sort((a, b) => a.layer - b.layer || a.id.localeCompare(b.id));
    for (const s of seeds) layer.set(s.id, s.layer);
    // Outwards from the blast radius: a caller to the left, a callee to the right.
    const queue = seeds.map((s) => s.id);
    for (let i = 0; i < queue.length; i++) {
      const id = queue[i];
      for (const [list, step] of [[callers.get(id) || [], 1], [callees.get(id) || [], -1]]) {
        for (const other of list) {
          if (layer.has(other)) continue;
          layer.set(other, layer.get(id) + step);
          queue.push(other);
        }
      }
    }
    const rest = model.nodes.map((n) => n.id).filter((id) => !layer.has(id)).sort();
    const depth = depthAboveSinks(rest, callees);
    for (const id of rest) layer.set(id, depth.get(id));
    return layer;
  }

  // 0 for a workload that calls nobody (among ``ids``), else one more than its deepest callee;
  // a call that closes a cycle is ignored.
  function depthAboveSinks(ids, callees) {
    const within = new Set(ids);
    const depth = new Map();
    const onPath = new Set();
    const visit = (id) => {
      if (depth.has(id)) return depth.get(id);
      if (onPath.has(id)) return -1;
      onPath.add(id);
      let d = 0;
      for (const c of callees.get(id) || []) {
        if (within.has(c)) d = Math.max(d, visit(c) + 1);
      }
      onPath.delete(id);
      depth.set(id, d);
      return d;
    };
    ids.forEach(visit);
    return depth;
  }

  // Positions of the visible nodes.  ``sizes``: id -> {hw, top, bottom}, the half width of a
  // node's label block and its extent above and below the node's centre.  Sets n.x, n.y and
  // returns the columns ({layer, x, hw, top, nodes}) and the row pitch; n.colHw is the half
  // width of the node's column.
  function place(model, visible, sizes, layerOf) {
    const shown = model.nodes.filter((n) => visible.has(n.id));
    const top = Math.max(...shown.map((n) => sizes.get(n.id).top), 0);
    const bottom = Math.max(...shown.map((n) => sizes.get(n.id).bottom), 0);
    const pitch = top + bottom + GAP_Y;
    const byLayer = new Map();
    for (const n of shown) {
      const l = layerOf.get(n.id);
      if (!byLayer.has(l)) byLayer.set(l, []);
      byLayer.get(l).push(n);
    }
    const cols = [...byLayer.keys()].sort((a, b) => b - a).map((l) => ({
      layer: l,
      nodes: byLayer.get(l).sort((a, b) => rank(a) - rank(b) || a.id.localeCompare(b.id)),
    }));
    // Columns left to right, each as wide as its widest label.
    let x = 0;
    cols.forEach((c, i) => {
      c.hw = Math.max(...c.nodes.map((n) => sizes.get(n.id).hw));
      if (i > 0) x += cols[i - 1].hw + c.hw + GAP_X;
      c.x = x;
      for (const n of c.nodes) Object.assign(n, { x, colHw: c.hw });
    });
    const neighbours = new Map(shown.map((n) => [n.id, []]));
    const at = new Map(shown.map((n) => [n.id, n]));
    for (const e of model.edges) {
      if (e.source === e.target || !at.has(e.source) || !at.has(e.target)) continue;
      neighbours.get(e.source).push(at.get(e.target));
      neighbours.get(e.target).push(at.get(e.source));
    }
    for (const c of cols) rows(c, null, pitch);
    for (let s = 0; s < SWEEPS; s++) {
      const order = s % 2 ? [...cols].reverse() : cols;
      for (const c of order) rows(c, neighbours, pitch);
    }
    for (const c of cols) c.top = Math.min(...c.nodes.map((n) => n.y)) - top;
    return { columns: cols, pitch, top, bottom };
  }

  // The blast radius first, then the workloads beside it, then the rest.
  function rank(n) {
    return { core: 0, context: 1 }[n.group] ?? 2;
  }

  // Rows of one column: its blast-radius nodes centred on y = 0 in the order of their
  // neighbours' rows; the others by their neighbours too, stacked above and below that block.
  function rows(col, neighbours, pitch) {
    const bary = new Map();
    for (const n of col.nodes) {
      const ys = neighbours ? neighbours.get(n.id).filter((m) => m.x !== n.x).map((m) => m.y) : [];
      bary.set(n.id, ys.length ? ys.reduce((a, b) => a + b, 0) / ys.length : n.y ?? 0);
    }
    const byBary = (a, b) => bary.get(a.id) - bary.get(b.id) || a.id.localeCompare(b.id);
    const core = col.nodes.filter((n) => n.group === "core").sort(byBary);
    const others = col.nodes.filter((n) => n.group !== "core").sort(byBary);
    if (!core.length) {
      pack(others, others.map((n) => bary.get(n.id)), pitch);
    } else {
      core.forEach((n, i) => { n.y = (i - (core.length - 1) / 2) * pitch; });
      const above = others.filter((n) => bary.get(n.id) < 0);
      const below = others.filter((n) => bary.get(n.id) >= 0);
      above.forEach((n, i) => { n.y = core[0].y - (above.length - i) * pitch; });
      below.forEach((n, i) => { n.y = core[core.length - 1].y + (i + 1) * pitch; });
    }
    col.nodes = [...col.nodes].sort((a, b) => a.y - b.y);
  }

  // Nodes (in order) as near their wanted rows as a pitch apart allows, centred on those rows.
  function pack(nodes, wanted, pitch) {
    if (!nodes.length) return;
    let y = -Infinity;
    const ys = wanted.map((w) => (y = Math.max(w, y + pitch)));
    const shift = wanted.reduce((a, b) => a + b, 0) / wanted.length - ys.reduce((a, b) => a + b, 0) / ys.length;
    nodes.forEach((n, i) => { n.y = ys[i] + shift; });
  }

  return { columns, place, hopOf, adjacency, GAP_X };
})();
