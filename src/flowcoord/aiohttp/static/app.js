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
  let lastSteps = "";

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
    if (s < 0.001) return "< 1 ms";
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
    const child = {};  // task name -> the child flow its latest attempt started
    for (const c of flow.children || []) child[c.step] = c.flow_id;
    const rows = flow.tasks.map((t) => {
      const f = t.failure || t.revert_failure;
      const failure = f
        ? el("details", {}, el("summary", {}, f.type + ": " + f.message), el("pre", {}, f.traceback))
        : "";
      return el("tr", { "data-task": t.name, "data-state": t.state },
        el("td", {}, child[t.name]
          ? el("a", { href: "#/flows/" + encodeURIComponent(child[t.name]), title: "its child flow" }, t.name)
          : t.name),
        el("td", {}, badge(t.state)),
        el("td", {}, t.attempt || ""),
        el("td", {}, fmtDur(t.duration)),
        el("td", {}, failure));
    });
    $("tasks").tBodies[0].replaceChildren(...rows);
  }

  // -- one workflow: its steps on a time axis ---------------------------------------------

  const VALUE_KINDS = new Set(["value", "patch"]);
  const REVERT_LABEL = {
    REVERTING: "\u21b6 compensating\u2026",
    REVERTED: "\u21b6 compensated",
    REVERT_FAILURE: "\u26a0 compensation failed",
  };

  function flowLink(id) {
    return el("a", { href: "#/flows/" + encodeURIComponent(id), class: "flow-link" },
      el("code", {}, id));
  }

  function failureBox(f, label, key) {
    if (!f) return null;
    return el("details", { class: "failure", "data-key": key },
      el("summary", {}, (label ? label + ": " : "") + f.type + ": " + f.message),
      el("pre", {}, f.traceback || ""));
  }

  function niceStep(span) {
    const raw = span / 5;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
  }

  function fmtOffset(s) {
    if (s === 0) return "0";
    if (s < 1) return "+" + +(s * 1000).toPrecision(3) + " ms";
    if (s < 120) return "+" + +s.toPrecision(3) + " s";
    return "+" + +(s / 60).toPrecision(3) + " min";
  }

  function valueText(s) {
    const v = s.result;
    if (s.kind === "patch") return "taken";
    if (s.name === "now" && typeof v === "number") {
      return new Date(v * 1000).toLocaleTimeString(undefined, { hour12: false }) +
        "." + String(Math.floor((v % 1) * 1000)).padStart(3, "0");
    }
    if (typeof v === "number") return String(+v.toPrecision(6));
    const text = typeof v === "string" ? v : JSON.stringify(v);
    return text.length > 12 ? text.slice(0, 8) + "\u2026" : text;
  }

  function stepRow(s, scale, flow) {
    const compact = VALUE_KINDS.has(s.kind);
    const failed = s.state === "FAILURE" && !s.retrying;
    const classes = ["step", "kind-" + s.kind];
    if (compact) classes.push("compact");
    if (failed) classes.push("failed");
    if (s.retrying) classes.push("retrying");
    if (s.state === "INTERRUPTED") classes.push("interrupted");
    if (s.revert_state) classes.push("revert-" + s.revert_state);

    let mark = null;
    if (failed) mark = el("span", { class: "mark failed-mark", title: "this step failed" }, "\u2716");
    else if (s.retrying) mark = el("span", { class: "mark retry-mark", title: "failed; it will run again" }, "\u21bb");
    else if (s.state === "INTERRUPTED") mark = el("span", { class: "mark", title: "cut short" }, "\u25cc");
    const shown = s.kind === "patch" ? s.name.replace(/^patch:/, "") : s.name;
    const name = el("span", { class: "name", title: s.key },
      mark,
      s.kind === "child" && s.child ? el("a", { href: "#/flows/" + encodeURIComponent(s.child) }, shown)
        : el("span", { class: "step-name" }, shown),
      s.kind !== "step" ? el("span", { class: "tag tag-" + s.kind }, s.kind === "child" ? "child flow" : s.kind) : null,
      s.forked ? el("span", { class: "tag tag-forked", title: "its result was reused from flow " + s.forked }, "reused") : null,
      compact && s.state === "SUCCESS" ? el("span", { class: "value", title: JSON.stringify(s.result) }, valueText(s)) : null);

    const track = el("div", { class: "track" });
    for (const t of scale.ticks) {
      const line = el("i", { class: "gridline" });
      line.style.left = scale.x(t).toFixed(3) + "%";
      track.append(line);
    }
    if (compact) {
      if (s.finished_at) {
        const m = el("div", { class: "marker", title: s.key + " = " + JSON.stringify(s.result) });
        m.style.left = scale.x(s.finished_at).toFixed(3) + "%";
        track.append(m);
      }
    } else {
      for (const a of s.attempts) {
        const end = a.finished_at || scale.openEnd;
        const cls = ["bar", "attempt", "state-" + a.state];
        if (a.revert_state === "REVERTED") cls.push("reverted");
        if (a.revert_state === "REVERTING") cls.push("reverting");
        if (a.revert_state === "REVERT_FAILURE") cls.push("revert-failed");
        const tip = [s.key, "attempt " + a.attempt + ": " + a.state];
        if (a.error) tip.push(a.error);
        let start = a.started_at;
        if (start === null || start === undefined) {
          cls.push("unknown-start");
          tip.push("its start is not journaled");
          start = end;
        } else {
          tip.push(fmtDur(end - start) + (a.finished_at ? "" : "\u2026"));
        }
        if (a.revert_state) tip.push(REVERT_LABEL[a.revert_state]);
        const bar = el("div", {
          class: cls.join(" "), "data-attempt": a.attempt, "data-state": a.state, title: tip.join(" \u00b7 "),
        });
        const left = scale.x(start);
        bar.style.left = left.toFixed(3) + "%";
        bar.style.width = Math.max(Math.min(scale.x(end) - left, 100 - left), 0).toFixed(3) + "%";
        track.append(bar);
      }
    }

    let dur = "";
    if (!compact) {
      if (s.duration !== null) dur = fmtDur(s.duration);
      else if (s.state === "RUNNING" && s.started_at) dur = fmtDur(scale.openEnd - s.started_at) + "\u2026";
      else if (s.finished_at && !s.started_at) dur = "?";
    }
    const states = el("span", { class: "states" },
      compact ? null : badge(s.retrying ? "FAILURE" : s.state),
      s.retrying ? el("span", { class: "revert-badge retrying-badge" }, "retrying") : null,
      s.revert_state ? el("span", {
        class: "revert-badge state-" + s.revert_state, "data-revert-state": s.revert_state,
      }, REVERT_LABEL[s.revert_state]) : null);
    const attempts = s.attempt > 1 ? el("span", { class: "attempts", title: s.attempt + " attempts" }, "\u00d7" + s.attempt) : "";
    const row = el("div", {
      class: classes.join(" "),
      role: "row",
      "data-position": s.position,
      "data-key": s.key,
      "data-kind": s.kind,
      "data-state": s.state,
      "data-revert-state": s.revert_state || "",
      "data-group": s.group === null ? "" : s.group,
      "data-attempt": s.attempt,
      "data-failed": failed ? "true" : null,
    },
      el("span", { class: "pos" }, s.position),
      name,
      el("span", { class: "attempt" }, compact ? "" : attempts || "#" + s.attempt),
      track,
      el("span", { class: "dur" }, dur),
      states);
    const details = [failureBox(s.failure, "failed", s.key + "/failure"),
      failureBox(s.revert_failure, "compensation failed", s.key + "/revert")].filter(Boolean);
    if (details.length) row.append(el("div", { class: "detail" }, ...details));
    return row;
  }

  function renderSteps(flow) {
    const box = $("steps");
    const steps = flow.steps || [];
    const running = steps.some((s) => s.state === "RUNNING");
    const key = JSON.stringify([flow.state, steps]);
    if (key === lastSteps && !running) return;
    lastSteps = key;
    const open = new Set([...box.querySelectorAll("details[open]")].map((d) => d.dataset.key));
    if (!steps.length) {
      box.replaceChildren(el("p", { class: "muted" }, "No step has been journaled yet."));
      return;
    }
    const now = Math.max(Date.now() / 1000, flow.updated_at || 0);
    const openEnd = flow.finished ? flow.updated_at : now;
    const times = [];
    for (const s of steps) {
      for (const a of s.attempts) {
        if (a.started_at) times.push(a.started_at);
        if (a.finished_at) times.push(a.finished_at);
        else if (a.started_at) times.push(openEnd);
      }
    }
    const t0 = times.length ? Math.min(...times) : flow.created_at || now;
    const span = Math.max((times.length ? Math.max(...times) : t0) - t0, 1e-3);
    const step = niceStep(span);
    const ticks = [];
    for (let k = 0; k * step <= span * 1.0001; k++) ticks.push(t0 + k * step);
    const scale = { ticks, openEnd, x: (t) => Math.min(Math.max(((t - t0) / span) * 100, 0), 100) };

    const axisTrack = el("div", { class: "track axis-track" });
    const gap = (step / span) * 100;  // between two ticks, in % of the track
    for (const t of ticks) {
      const x = scale.x(t);
      if (x > 92 && gap < 16 && x > 0) continue;  // no room for its label at the end
      const tick = el("span", { class: x > 92 ? "tick end" : "tick" }, fmtOffset(t - t0));
      tick.style.left = x.toFixed(3) + "%";
      axisTrack.append(tick);
    }
    const head = el("div", { class: "step head", role: "row" },
      el("span", { class: "pos" }, "#"), el("span", { class: "name" }, "step"),
      el("span", { class: "attempt" }, "try"), axisTrack,
      el("span", { class: "dur" }, "duration"), el("span", { class: "states" }, "state"));
    const out = [head];
    let group = null;
    for (const s of steps) {
      const row = stepRow(s, scale, flow);
      if (s.group === null) { group = null; out.push(row); continue; }
      if (!group || group.dataset.group !== String(s.group)) {
        group = el("div", { class: "gather", "data-group": s.group, role: "rowgroup" },
          el("div", { class: "gather-label" }, "\u21c9 gather \u00b7 ran at once"));
        out.push(group);
      }
      group.append(row);
    }
    for (const g of out) {
      if (g.classList.contains("gather")) {
        const pos = [...g.querySelectorAll(".step")].map((r) => r.dataset.position);
        g.firstChild.textContent = "\u21c9 gather \u00b7 steps " + pos[0] +
          (pos.length > 1 ? "\u2013" + pos[pos.length - 1] : "") + " ran at once";
      }
    }
    box.replaceChildren(...out);
    for (const d of box.querySelectorAll("details")) if (open.has(d.dataset.key)) d.open = true;
  }

  function renderLinks(flow) {
    const links = $("flow-links");
    const parts = [];
    if (flow.parent) {
      parts.push(el("span", { class: "parent" }, "parent flow ", flowLink(flow.parent),
        flow.parent_step ? " (step " + flow.parent_step + ")" : ""));
    }
    if (flow.children && flow.children.length) {
      const kids = el("span", { class: "children" }, "child flows ");
      flow.children.forEach((c, i) => {
        if (i) kids.append(", ");
        kids.append(flowLink(c.flow_id), " (step " + c.step + ")");
      });
      parts.push(kids);
    }
    if (flow.forked_from) parts.push(el("span", { class: "forked" }, "re-run of ", flowLink(flow.forked_from)));
    links.replaceChildren(...parts.flatMap((p, i) => (i ? [" \u00b7 ", p] : [p])));
    links.hidden = parts.length === 0;
  }

  function renderWorkflow(flow) {
    renderLinks(flow);
    const fail = $("flow-failure");
    const failKey = JSON.stringify(flow.failure);
    if (fail.dataset.key !== failKey) {  // rebuilt only when it changes: an open one stays open
      fail.dataset.key = failKey;
      fail.hidden = !flow.failure;
      fail.replaceChildren(...(flow.failure ? [failureBox(flow.failure, "the workflow failed", "flow")] : []));
    }
    renderSteps(flow);
  }

  function workflowProgress(flow) {
    const steps = (flow.steps || []).filter((s) => !VALUE_KINDS.has(s.kind));
    const n = (pred) => steps.filter(pred).length;
    const parts = [steps.length + (steps.length === 1 ? " step" : " steps"),
      n((s) => s.state === "SUCCESS") + " succeeded"];
    const failed = n((s) => s.state === "FAILURE" && !s.retrying);
    if (failed) parts.push(failed + " failed");
    const running = n((s) => s.state === "RUNNING");
    if (running) parts.push(running + " running");
    const comp = n((s) => s.revert_state === "REVERTED");
    if (comp) parts.push(comp + " compensated");
    return parts.join(" \u00b7 ");
  }

  async function refreshFlow() {
    const id = flowId;
    const path = "/flows/" + encodeURIComponent(id);
    const flow = await getJSON(path);
    const workflow = flow.kind === "workflow";
    let svg = "";
    if (!workflow) {
      const svgResp = await fetch(API + path + "/graph.svg", { cache: "no-store", headers: authHeaders() });
      svg = svgResp.ok ? await svgResp.text() : "";
    }
    if (view !== "flow" || flowId !== id) return;
    $("pattern-view").hidden = workflow;
    $("workflow-view").hidden = !workflow;
    const kind = $("flow-kind");
    kind.hidden = !workflow;
    kind.textContent = workflow ? "workflow" : "";
    document.body.dataset.flowKind = flow.kind || "pattern";
    $("flow-name").textContent = flow.name;
    const st = $("flow-state");
    st.textContent = flow.state;
    st.className = "badge state-" + flow.state;
    st.dataset.state = flow.state;
    $("flow-id").textContent = flow.flow_id;
    $("flow-created").textContent = fmtTime(flow.created_at);
    $("flow-updated").textContent = fmtTime(flow.updated_at);
    $("flow-progress").textContent =
      (workflow ? workflowProgress(flow)
        : flow.progress.done + " / " + flow.progress.total + " tasks done") +
      (flow.running_here ? " · running here" : "");
    $("journal-link").href = API + path + "/journal";
    $("cancel-flow").disabled = flow.finished;
    $("resume-flow").disabled = flow.finished;
    if (svg && svg !== lastSvg) {
      lastSvg = svg;
      $("graph").innerHTML = svg;  // our own server's SVG; every name in it is escaped
    }
    if (workflow) {
      renderWorkflow(flow);
      return;
    }
    renderLinks(flow);
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
      lastSteps = "";
      $("graph").replaceChildren();
      $("steps").replaceChildren();
      $("flow-links").hidden = true;
      delete $("flow-failure").dataset.key;
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
