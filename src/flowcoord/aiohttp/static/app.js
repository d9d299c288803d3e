// flowcoord dashboard: plain JS, polls the JSON API about once a second.
"use strict";

(function () {
  const API = document.querySelector('meta[name="flowcoord-api"]').content;
  const POLL_MS = 1000;
  const PAGE = 100;
  const $ = (id) => document.getElementById(id);

  let view = null;        // "list" | "flow"
  let flowId = null;
  let cursors = [null];   // list paging: cursor of each page seen so far
  let nextCursor = null;
  let timer = null;
  let lastSvg = "";
  let lastTable = "";

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : String(c));
    }
    return node;
  }

  function fmtTime(t) {
    if (!t) return "–";
    const d = new Date(t * 1000);
    return d.toLocaleString(undefined, { hour12: false });
  }

  function fmtDur(s) {
    if (s === null || s === undefined) return "";
    if (s < 1) return (s * 1000).toFixed(0) + " ms";
    if (s < 120) return s.toFixed(2) + " s";
    return (s / 60).toFixed(1) + " min";
  }

  function badge(state) {
    return el("span", { class: "badge state-" + state, "data-state": state }, state);
  }

  function authHeaders() {
    const field = $("token");
    const token = field ? field.value : "";
    return token ? { Authorization: "Bearer " + token } : {};
  }

  async function getJSON(path) {
    const resp = await fetch(API + path, { cache: "no-store", headers: authHeaders() });
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error(body.error || resp.statusText);
    return body;
  }

  function setStatus(text) { $("status").textContent = text; }

  function bumpRefreshes() {
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
    setStatus("updated " + new Date().toLocaleTimeString(undefined, { hour12: false }));
  }

  // -- flows table ---------------------------------------------------------------------------

  async function refreshList() {
    const state = $("state-filter").value;
    const cursor = cursors[cursors.length - 1];
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (state) q.set("state", state);
    if (cursor) q.set("after", cursor);
    const data = await getJSON("/flows?" + q.toString());
    if (view !== "list") return;
    nextCursor = data.next;
    $("next-page").disabled = !nextCursor;
    $("prev-page").disabled = cursors.length <= 1;
    const flows = data.flows.slice().sort((a, b) => (b.created_at || 0) - (a.created_at || 0));
    const key = JSON.stringify(flows.map((f) => [f.flow_id, f.state, f.updated_at]));
    if (key !== lastTable) {
      lastTable = key;
      const rows = flows.map((f) =>
        el("tr", { "data-flow-id": f.flow_id, "data-state": f.state },
          el("td", {}, el("a", { href: "#/flows/" + encodeURIComponent(f.flow_id) },
            el("code", {}, f.flow_id))),
          el("td", {}, f.name),
          el("td", {}, badge(f.state)),
          el("td", {}, fmtTime(f.created_at)),
          el("td", {}, fmtTime(f.updated_at))));
      $("flows").tBodies[0].replaceChildren(...rows);
      $("flows-empty").hidden = flows.length > 0;
    }
  }

  // -- one flow ------------------------------------------------------------------------------

  function renderTimeline(flow) {
    const started = flow.tasks.filter((t) => t.started_at);
    const box = $("timeline");
    if (!started.length) {
      box.replaceChildren(el("p", { class: "muted" }, "No task has started yet."));
      return;
    }
    const now = Math.max(Date.now() / 1000, flow.updated_at || 0);
    const t0 = Math.min(...started.map((t) => t.started_at));
    const ends = started.map((t) => t.finished_at || (flow.finished ? flow.updated_at : now));
    const span = Math.max(Math.max(...ends) - t0, 1e-3);
    const rows = started
      .slice()
      .sort((a, b) => a.started_at - b.started_at)
      .map((t) => {
        const end = t.finished_at || (flow.finished ? flow.updated_at : now);
        const left = ((t.started_at - t0) / span) * 100;
        const width = Math.max(((end - t.started_at) / span) * 100, 0.3);
        const bar = el("div", {
          class: "bar state-" + t.state,
          "data-task": t.name,
          "data-state": t.state,
          title: t.name + ": " + t.state + " " + fmtDur(end - t.started_at),
        });
        bar.style.left = left.toFixed(3) + "%";
        bar.style.width = Math.min(width, 100 - left).toFixed(3) + "%";
        return el("div", { class: "row" },
          el("span", { class: "label", title: t.name }, t.name),
          el("div", { class: "track" }, bar),
          el("span", { class: "dur" }, fmtDur(end - t.started_at) + (t.finished_at ? "" : "…")));
      });
    box.replaceChildren(...rows);
  }

  function renderTasks(flow) {
    const rows = flow.tasks.map((t) => {
      const f = t.failure || t.revert_failure;
      const failure = f
        ? el("details", {}, el("summary", {}, f.type + ": " + f.message), el("pre", {}, f.traceback))
        : "";
      return el("tr", { "data-task": t.name, "data-state": t.state },
        el("td", {}, t.name),
        el("td", {}, badge(t.state)),
        el("td", {}, t.attempt || ""),
        el("td", {}, fmtDur(t.duration)),
        el("td", {}, failure));
    });
    $("tasks").tBodies[0].replaceChildren(...rows);
  }

  async function refreshFlow() {
    const id = flowId;
    const path = "/flows/" + encodeURIComponent(id);
    const [flow, svgResp] = await Promise.all([
      getJSON(path),
      fetch(API + path + "/graph.svg", { cache: "no-store", headers: authHeaders() }),
    ]);
    const svg = svgResp.ok ? await svgResp.text() : "";
    if (view !== "flow" || flowId !== id) return;
    $("flow-name").textContent = flow.name;
    const st = $("flow-state");
    st.textContent = flow.state;
    st.className = "badge state-" + flow.state;
    st.dataset.state = flow.state;
    $("flow-id").textContent = flow.flow_id;
    $("flow-created").textContent = fmtTime(flow.created_at);
    $("flow-updated").textContent = fmtTime(flow.updated_at);
    $("flow-progress").textContent =
      flow.progress.done + " / " + flow.progress.total + " tasks done" +
      (flow.running_here ? " · running here" : "");
    $("journal-link").href = API + path + "/journal";
    $("cancel-flow").disabled = flow.finished;
    $("resume-flow").disabled = flow.finished;
    if (svg && svg !== lastSvg) {
      lastSvg = svg;
      $("graph").innerHTML = svg;  // our own server's SVG; every name in it is escaped
    }
    renderTimeline(flow);
    renderTasks(flow);
  }

  async function act(action) {
    const out = $("action-result");
    const token = $("token").value;
    sessionStorage.setItem("flowcoord-token", token);
    const resp = await fetch(API + "/flows/" + encodeURIComponent(flowId) + "/" + action, {
      method: "POST",
      headers: token ? { Authorization: "Bearer " + token } : {},
    });
    const body = await resp.json().catch(() => ({}));
    out.textContent = resp.ok
      ? action + ": " + (body.action || "ok")
      : action + " failed: " + (body.error || resp.statusText) + (body.hint ? " (" + body.hint + ")" : "");
    poll();
  }

  // -- routing and polling -------------------------------------------------------------------

  async function tick() {
    try {
      if (view === "list") await refreshList();
      else if (view === "flow") await refreshFlow();
      bumpRefreshes();
    } catch (err) {
      setStatus("error: " + err.message);
    }
  }

  function poll() {
    clearTimeout(timer);
    const started = view;
    tick().finally(() => {
      if (view === started) timer = setTimeout(poll, POLL_MS);
    });
  }

  function route() {
    const m = location.hash.match(/^#\/flows\/([^/?]+)/);
    if (m) {
      view = "flow";
      flowId = decodeURIComponent(m[1]);
      lastSvg = "";
      $("graph").replaceChildren();
      $("action-result").textContent = "";
    } else {
      view = "list";
      lastTable = "";
    }
    $("list-view").hidden = view !== "list";
    $("flow-view").hidden = view !== "flow";
    poll();
  }

  $("state-filter").addEventListener("change", () => { cursors = [null]; lastTable = ""; poll(); });
  $("next-page").addEventListener("click", () => { if (nextCursor) { cursors.push(nextCursor); poll(); } });
  $("prev-page").addEventListener("click", () => { if (cursors.length > 1) { cursors.pop(); poll(); } });
  $("cancel-flow").addEventListener("click", () => act("cancel"));
  $("resume-flow").addEventListener("click", () => act("resume"));
  $("token").value = sessionStorage.getItem("flowcoord-token") || "";
  window.addEventListener("hashchange", route);
  route();
})();
