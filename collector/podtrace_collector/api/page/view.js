// podtrace: the graph's view.  What is drawn (the blast radius always; unaffected workloads
// when few, or on request), where the camera looks (fitted to the blast radius, then panned by
// dragging, zoomed by the wheel or the buttons) and the search box that finds a workload and
// centres it.  The view survives the page's periodic refresh: a person who moved it keeps it.
"use strict";

window.podtraceView = (() => {
  const FULL = 30; // up to this many workloads, every one is drawn
  const MIN_READABLE = 0.7; // a fit smaller than this shows the blast radius only
  const MIN_K = 0.15;
  const MAX_K = 3;
  const PAD = 24;
  const MIN_H = 360;
  const state = {
    model: null, visible: new Set(), drawn: null, fmt: String, origin: undefined,
    k: 1, x: 0, y: 0, moved: false, expanded: false, found: null, drag: null,
  };
  let svg = null;
  let root = null;
  const $ = (id) => document.getElementById(id);

  function init() {
    if (svg) return;
    svg = $("graph");
    root = document.createElementNS("http://www.w3.org/2000/svg", "g");
    root.setAttribute("class", "viewport");
    svg.replaceChildren(root);
    svg.addEventListener("wheel", onWheel, { passive: false });
    svg.addEventListener("pointerdown", onPointerDown);
    svg.addEventListener("pointermove", onPointerMove);
    svg.addEventListener("pointerup", onPointerUp);
    svg.addEventListener("pointercancel", onPointerUp);
    svg.addEventListener("keydown", onKey);
    $("zoom-in").addEventListener("click", () => zoomAt(width() / 2, height() / 2, 1.25));
    $("zoom-out").addEventListener("click", () => zoomAt(width() / 2, height() / 2, 0.8));
    $("zoom-fit").addEventListener("click", () => { state.moved = false; fit(); });
    $("graph-expand").addEventListener("click", () => {
      state.expanded = !state.expanded;
      state.moved = false;
      redraw();
    });
    $("graph-find").addEventListener("submit", (ev) => {
      ev.preventDefault();
      find($("graph-search").value);
    });
    let pending = 0;
    window.addEventListener("resize", () => {
      cancelAnimationFrame(pending);
      pending = requestAnimationFrame(() => { if (state.model && !state.moved) fit(); });
    });
  }

  // Draw a report (or, with ``report`` null, every workload reporting) on the service graph.
  function show(report, graph, fmt) {
    init();
    const model = window.podtraceGraph.build(report, graph);
    if (model.origin !== state.origin) {
      Object.assign(state, { origin: model.origin, expanded: false, moved: false, found: null });
      $("graph-search-status").textContent = "";
    }
    state.model = model;
    state.fmt = fmt;
    redraw();
  }

  function collapsible() {
    return state.model.origin !== null && state.model.nodes.length > FULL;
  }

  function visibleIds() {
    const nodes = state.model.nodes;
    if (!collapsible() || state.expanded) return new Set(nodes.map((n) => n.id));
    const near = nodes.filter((n) => n.group !== "rest");
    const shown = near.length <= FULL ? near : nodes.filter((n) => n.group === "core");
    return new Set(shown.map((n) => n.id));
  }

  function redraw() {
    const { model } = state;
    state.visible = visibleIds();
    const hidden = model.nodes.length - state.visible.size;
    svg.dataset.mode = model.origin === null ? "overview" : "report";
    svg.dataset.nodes = String(state.visible.size);
    svg.dataset.hidden = String(hidden);
    const expand = $("graph-expand");
    expand.hidden = !collapsible();
    expand.setAttribute("aria-pressed", String(state.expanded));
    expand.textContent = state.expanded ? "hide unaffected workloads"
      : `show ${hidden} more workload${hidden === 1 ? "" : "s"} (not affected)`;
    $("graph-workloads").replaceChildren(...model.nodes.map((n) => n.id).sort().map((id) => {
      const o = document.createElement("option");
      o.value = id;
      return o;
    }));
    state.drawn = window.podtraceGraph.draw(root, model, state.visible, state.fmt);
    const found = state.found && state.drawn.elements.get(state.found);
    if (found) found.classList.add("found");
    if (state.moved) apply();
    else fit();
  }

  function width() {
    return svg.clientWidth || (svg.parentElement && svg.parentElement.clientWidth) || 800;
  }

  function height() {
    return svg.clientHeight || MIN_H;
  }

  function scaleFor(box, w, h) {
    return Math.min(1, (w - 2 * PAD) / Math.max(box.w, 1), (h - 2 * PAD) / Math.max(box.h, 1));
  }

  // Look at everything drawn when it reads at a legible size, else at the blast radius alone,
  // showing as much of the rest around it as the box holds; the box is as tall as that needs,
  // within 60 % of the window.
  function fit() {
    const w = width();
    const maxH = Math.max(MIN_H, Math.round(window.innerHeight * 0.6));
    const all = state.drawn.bounds(state.visible);
    if (!all) {
      svg.style.height = `${MIN_H}px`;
      Object.assign(state, { k: 1, x: w / 2, y: MIN_H / 2 });
      apply();
      return;
    }
    let focus = all;
    if (scaleFor(all, w, maxH) < MIN_READABLE) {
      const core = state.model.nodes.filter((n) => n.group === "core" && state.visible.has(n.id));
      focus = state.drawn.bounds(core.map((n) => n.id)) || all;
    }
    const k = scaleFor(focus, w, maxH);
    const h = Math.min(maxH, Math.max(MIN_H, Math.ceil(k * all.h + 2 * PAD)));
    svg.style.height = `${h}px`;
    // Centred on everything, then moved just enough to bring the focus fully into view.
    const along = (size, lo, span, flo, fspan) => {
      const t = size / 2 - k * (lo + span / 2);
      return Math.min(size - PAD - k * (flo + fspan), Math.max(PAD - k * flo, t));
    };
    Object.assign(state, { k, x: along(w, all.x, all.w, focus.x, focus.w), y: along(h, all.y, all.h, focus.y, focus.h) });
    apply();
  }

  function apply() {
    root.setAttribute("transform", `translate(${state.x.toFixed(1)},${state.y.toFixed(1)}) scale(${state.k.toFixed(4)})`);
    svg.dataset.scale = state.k.toFixed(3);
  }

  function zoomAt(px, py, factor) {
    const k = Math.min(MAX_K, Math.max(MIN_K, state.k * factor));
    state.x = px - ((px - state.x) * k) / state.k;
    state.y = py - ((py - state.y) * k) / state.k;
    state.k = k;
    state.moved = true;
    apply();
  }

  function onWheel(ev) {
    ev.preventDefault();
    const r = svg.getBoundingClientRect();
    const step = ev.deltaMode === 1 ? 0.05 : 0.0015; // lines or pixels
    zoomAt(ev.clientX - r.left, ev.clientY - r.top, Math.exp(-ev.deltaY * step));
  }

  function onPointerDown(ev) {
    if (ev.button !== 0) return;
    state.drag = { id: ev.pointerId, sx: ev.clientX, sy: ev.clientY, x: state.x, y: state.y, moving: false };
  }

  function onPointerMove(ev) {
    const d = state.drag;
    if (!d || d.id !== ev.pointerId) return;
    const dx = ev.clientX - d.sx;
    const dy = ev.clientY - d.sy;
    if (!d.moving && Math.abs(dx) + Math.abs(dy) < 4) return; // a click, not a drag yet
    if (!d.moving) {
      d.moving = true;
      svg.setPointerCapture(ev.pointerId);
      svg.classList.add("panning");
    }
    state.x = d.x + dx;
    state.y = d.y + dy;
    state.moved = true;
    apply();
  }

  function onPointerUp(ev) {
    if (!state.drag || state.drag.id !== ev.pointerId) return;
    if (svg.hasPointerCapture(ev.pointerId)) svg.releasePointerCapture(ev.pointerId);
    svg.classList.remove("panning");
    state.drag = null;
  }

  function onKey(ev) {
    const pan = { ArrowLeft: [60, 0], ArrowRight: [-60, 0], ArrowUp: [0, 60], ArrowDown: [0, -60] }[ev.key];
    if (pan) {
      state.x += pan[0];
      state.y += pan[1];
      state.moved = true;
      apply();
    } else if (ev.key === "+" || ev.key === "=") {
      zoomAt(width() / 2, height() / 2, 1.25);
    } else if (ev.key === "-") {
      zoomAt(width() / 2, height() / 2, 0.8);
    } else if (ev.key === "0") {
      state.moved = false;
      fit();
    } else {
      return;
    }
    ev.preventDefault();
  }

  // The workload named (exactly, by service name, or by a part of its name), drawn if it was
  // collapsed, centred and focused.
  function find(query) {
    const q = query.trim().toLowerCase();
    const status = $("graph-search-status");
    if (!q || !state.model) return;
    const nodes = state.model.nodes;
    const n = nodes.find((m) => m.id.toLowerCase() === q) || nodes.find((m) => m.service.toLowerCase() === q)
      || [...nodes].sort((a, b) => a.id.localeCompare(b.id)).find((m) => m.id.toLowerCase().includes(q));
    if (!n) {
      status.textContent = `no workload matches “${query.trim()}”`;
      svg.dataset.found = "";
      return;
    }
    state.found = n.id;
    svg.dataset.found = n.id;
    if (!state.visible.has(n.id)) state.expanded = true;
    state.moved = true;
    redraw();
    const k = Math.max(state.k, 0.9);
    const p = state.drawn.positions.get(n.id);
    Object.assign(state, { k, x: width() / 2 - k * p.x, y: height() / 2 - k * p.y });
    apply();
    for (const g of svg.querySelectorAll(".node.found")) if (g.dataset.workload !== n.id) g.classList.remove("found");
    state.drawn.elements.get(n.id).focus({ preventScroll: true });
    status.textContent = `found ${n.id}`;
  }

  return { show, find };
})();
