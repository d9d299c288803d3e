// flowcoord dashboard: plain JS, polls the JSON API about once a second.
"use strict";

(function () {
  const API = document.querySelector('meta[name="flowcoord-api"]').content;
  const POLL_MS = 1000;
  const HISTORY_MAX = 2000;  // entries shown in the history; the rest via the JSON link
  const $ = (id) => document.getElementById(id);

  let view = null;        // "list" | "flow"
  let flowId = null;
  let flow = null;        // the flow page's latest status
  let cursors = [null];   // list paging: the cursor of each page seen so far (null: newest)
  let nextCursor = null;
  let timer = null;
  let lastSvg = "";
  let lastTable = "";
  let lastSteps = "";
  let lastTimeline = "";
  let lastTasks = "";
  let lastInputs = "";
  let journalRows = [];   // the flow's journal entries fetched so far
  let journalDone = false;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role") node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : String(c));
    }
    return node;
  }

  // -- times: always with their zone ---------------------------------------------------------

  const pad = (n, w) => String(n).padStart(w || 2, "0");

  function zoneOffset(d) {
    const m = -d.getTimezoneOffset();
    const sign = m >= 0 ? "+" : "-";
    return sign + pad(Math.floor(Math.abs(m) / 60)) + ":" + pad(Math.abs(m) % 60);
  }

  function zoneName() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return ""; }
  }

  // "2026-05-01 14:03:07 +02:00" (milliseconds too when precise)
  function fmtTime(t, precise) {
    if (!t) return "–";
    const d = new Date(t * 1000);
    const day = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate());
    let clock = pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
    if (precise) clock += "." + pad(d.getMilliseconds(), 3);
    return day + " " + clock + " " + zoneOffset(d);
  }

  // "14:03:07.123 +02:00", the date in its title
  function timeCell(t) {
    if (!t) return el("span", {}, "–");
    const d = new Date(t * 1000);
    const clock = pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) +
      "." + pad(d.getMilliseconds(), 3) + " " + zoneOffset(d);
    return el("time", { dateTime: d.toISOString(), title: fmtTime(t, true) }, clock);
  }

  function fmtDur(s) {
    if (s === null || s === undefined) return "";
    if (s < 0.001) return "< 1 ms";
    if (s < 1) return (s * 1000).toFixed(0) + " ms";
    if (s < 120) return s.toFixed(2) + " s";
    return (s / 60).toFixed(1) + " min";
  }

  function fmtOffset(s) {
    if (s === 0) return "0";
    if (Math.abs(s) < 1) return "+" + +(s * 1000).toPrecision(3) + " ms";
    if (Math.abs(s) < 120) return "+" + +s.toPrecision(3) + " s";
    return "+" + +(s / 60).toPrecision(3) + " min";
  }

  // -- long names: cut in the middle, no two labels alike (as the server's SVG does) ---------

  function cut(name, width) {
    if (name.length <= width) return name;
    const tail = Math.floor((width - 1) / 2);
    return name.slice(0, width - 1 - tail) + "\u2026" + name.slice(name.length - tail);
  }

  const BREAKS = "_-.:/ ";

  function around(name, common, width) {
    // where the name stops sharing its last `common` characters: that word to the end
    let k = Math.max(name.length - common - 1, 0);
    while (k > 0 && !BREAKS.includes(name[k - 1])) k--;
    const tail = name.slice(k);
    if (tail.length > width) {  // no word break near: a window around where names differ
      const d = name.length - common - 1;
      const mid = name.slice(Math.max(d - 6, 6), d + 7);
      return name.slice(0, 6) + "\u2026" + mid + (d + 7 < name.length - 6 ? "\u2026" + name.slice(-6) : name.slice(d + 7));
    }
    const head = Math.max(width - 1 - tail.length, 6);
    return head + 1 + tail.length >= name.length ? name : name.slice(0, head) + "\u2026" + tail;
  }

  function commonSuffix(group) {
    const first = group[0];
    let n = 0;
    while (n < first.length && group.every((x) => x.length > n && x[x.length - 1 - n] === first[first.length - 1 - n])) n++;
    return n;
  }

  // labels of about `width` characters, cut in the middle, no two alike (as the SVG's)
  function labels(names, width) {
    const uniq = [...new Set(names)];
    const out = {};
    for (const n of uniq) out[n] = cut(n, width);
    const longest = Math.max(0, ...uniq.map((n) => n.length));
    let w = width;
    let first = true;
    for (;;) {
      const seen = {};
      for (const n of uniq) (seen[out[n]] = seen[out[n]] || []).push(n);
      const clashes = Object.values(seen).filter((g) => g.length > 1);
      if (!clashes.length || w > longest) return out;
      for (const g of clashes) {
        const common = commonSuffix(g);
        for (const n of g) out[n] = first ? around(n, common, w) : cut(n, w);
      }
      if (!first) w += 8;
      first = false;
    }
  }

  // -- values: compact JSON, a cut one marked ------------------------------------------------

  function isCut(v) {
    return v !== null && typeof v === "object" && !Array.isArray(v) && "$truncated" in v;
  }

  function valueNode(v, width) {
    if (v === undefined) return "";
    if (isCut(v)) {
      const w = width || 80;
      return el("details", { class: "value cut", title: "too long to show whole: its first characters" },
        el("summary", {}, el("code", {}, String(v.preview).slice(0, w) + "\u2026"), " ",
          el("span", { class: "cut-note" }, "(" + v.$truncated + " characters, cut)")),
        el("pre", {}, v.preview + "\u2026"));
    }
    const text = typeof v === "string" ? JSON.stringify(v) : JSON.stringify(v, null, 0);
    if (text === undefined) return "";
    if (text.length <= (width || 80)) return el("code", { class: "value" }, text);
    return el("details", { class: "value long" },
      el("summary", {}, el("code", {}, text.slice(0, (width || 80) - 1) + "\u2026")),
      el("pre", {}, JSON.stringify(v, null, 2)));
  }

  function badge(state, extra) {
    return el("span", { class: "badge state-" + state + (extra ? " " + extra : ""), "data-state": state }, state);
  }

  function failedBadge() {
    return el("span", { class: "badge failed-badge", title: "this task failed the flow" }, "\u2716 failed");
  }

  // -- the API -------------------------------------------------------------------------------

  function authHeaders() {
    const field = $("token");
    const token = field ? field.value : "";
    return token ? { Authorization: "Bearer " + token } : {};
  }

  async function getJSON(path) {
    const resp = await fetch(API + path, { cache: "no-store", headers: authHeaders() });
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      const err = new Error(body.error || resp.statusText);
      err.status = resp.status;
      throw err;
    }
    return body;
  }

  function setStatus(text) { $("status").textContent = text; }

  function bumpRefreshes() {
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
    const d = new Date();
    setStatus("updated " + pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()));
  }

  // -- the flows table: newest first, filters in the address -------------------------------

  function filters() {
    const f = { state: $("state-filter").value, name: $("name-filter").value.trim(), since: "", until: "" };
    const when = $("since-filter").value;
    if (when === "range") {
      const from = $("from-filter").value;
      const to = $("to-filter").value;
      if (from) f.since = String(new Date(from).getTime() / 1000);  // the browser's zone
      if (to) f.until = String(new Date(to).getTime() / 1000);
    } else {
      f.since = when;
    }
    return f;
  }

  function listQuery(f, cursor) {
    const q = new URLSearchParams({ limit: $("page-size").value || "50" });
    for (const k of ["state", "name", "since", "until"]) if (f[k]) q.set(k, f[k]);
    if (cursor) q.set("after", cursor);
    return q;
  }

  function saveFilters() {
    const q = new URLSearchParams();
    const created = $("since-filter").value;
    if ($("state-filter").value) q.set("state", $("state-filter").value);
    if ($("name-filter").value.trim()) q.set("name", $("name-filter").value.trim());
    if (created) q.set("created", created);
    if ($("page-size").value !== "50") q.set("limit", $("page-size").value);
    if (created === "range") {
      if ($("from-filter").value) q.set("from", $("from-filter").value);
      if ($("to-filter").value) q.set("to", $("to-filter").value);
    }
    const hash = q.toString() ? "#/?" + q.toString() : "#/";
    if (location.hash !== hash) window.history.replaceState(null, "", hash);
  }

  function loadFilters() {
    const m = location.hash.match(/^#\/\?(.*)$/);
    const q = new URLSearchParams(m ? m[1] : "");
    $("state-filter").value = q.get("state") || "";
    if ($("state-filter").value !== (q.get("state") || "")) {  // a state list of its own
      const options = [...$("state-filter").options].map((o) => o.value);
      if (!options.includes(q.get("state"))) {
        $("state-filter").append(el("option", { value: q.get("state") }, q.get("state")));
      }
      $("state-filter").value = q.get("state");
    }
    $("name-filter").value = q.get("name") || "";
    $("since-filter").value = q.get("created") || "";
    $("from-filter").value = q.get("from") || "";
    $("to-filter").value = q.get("to") || "";
    $("page-size").value = q.get("limit") || "50";
    if (!$("page-size").value) $("page-size").value = "50";
    $("range").hidden = $("since-filter").value !== "range";
  }

  function filtersChanged() {
    $("range").hidden = $("since-filter").value !== "range";
    cursors = [null];
    lastTable = "";
    $("search-result").textContent = "";
    saveFilters();
    poll();
  }

  function anyFilter(f) { return !!(f.state || f.name || f.since || f.until); }

  async function refreshList() {
    const f = filters();
    const cursor = cursors[cursors.length - 1];
    const data = await getJSON("/flows?" + listQuery(f, cursor).toString());
    if (view !== "list") return;
    nextCursor = data.next;
    $("next-page").disabled = !nextCursor;
    $("prev-page").disabled = cursors.length <= 1;
    $("first-page").disabled = cursors.length <= 1;
    $("page-info").textContent = "page " + cursors.length + " \u00b7 newest first";
    const flows = data.flows;  // newest first, as the server pages them
    const key = JSON.stringify([f, cursors.length, flows.map((x) => [x.flow_id, x.state, x.updated_at, x.running_here])]);
    if (key !== lastTable) {
      lastTable = key;
      const rows = flows.map((x) =>
        el("tr", { "data-flow-id": x.flow_id, "data-state": x.state,
          class: x.state === "REVERTED" || x.state === "FAILED" ? "bad" : null },
          el("td", {}, el("a", { href: "#/flows/" + encodeURIComponent(x.flow_id) },
            el("code", {}, x.flow_id))),
          el("td", { class: "name-cell" }, x.name),
          el("td", {}, badge(x.state), x.running_here ? el("span", { class: "muted small" }, " here") : null),
          el("td", {}, el("time", { title: fmtTime(x.created_at, true) }, fmtTime(x.created_at))),
          el("td", {}, el("time", { title: fmtTime(x.updated_at, true) }, fmtTime(x.updated_at)))));
      $("flows").tBodies[0].replaceChildren(...rows);
      const empty = $("flows-empty");
      empty.hidden = flows.length > 0;
      empty.textContent = anyFilter(f) ? "No flows match these filters." : "No flows yet.";
    }
  }

  async function search(text) {
    const q = text.trim();
    const out = $("search-result");
    if (!q) return;
    try {
      await getJSON("/flows/" + encodeURIComponent(q));
      out.textContent = "";
      location.hash = "#/flows/" + encodeURIComponent(q);
      return;
    } catch (err) {
      if (err.status !== 404 && err.status !== 400) { out.textContent = "search failed: " + err.message; return; }
    }
    const pattern = /[*?]/.test(q) ? q : "*" + q + "*";
    $("name-filter").value = pattern;
    out.textContent = "no flow has the id " + JSON.stringify(q) + ": flows named " + pattern + " below";
    $("range").hidden = $("since-filter").value !== "range";
    cursors = [null];
    lastTable = "";
    saveFilters();
    poll();
  }

  // -- one flow: what went wrong, at the top -------------------------------------------------

  function failureBox(f, label, key) {
    if (!f) return null;
    return el("details", { class: "failure", "data-key": key },
      el("summary", {}, (label ? label + ": " : "") + f.type + ": " + f.message),
      el("pre", {}, f.traceback || ""));
  }

  function names(list) {
    if (!list.length) return "";
    const shown = list.slice(0, 8).join(", ");
    return list.length > 8 ? shown + " and " + (list.length - 8) + " more" : shown;
  }

  function plural(n, one, many) { return n + " " + (n === 1 ? one : many || one + "s"); }

  function renderSummary(f) {
    const box = $("flow-failure");
    const s = f.summary;
    const key = JSON.stringify([s, f.state, f.finished, f.failure]);
    if (box.dataset.key === key) return;  // rebuilt only when it changes: an open one stays open
    box.dataset.key = key;
    box.hidden = !s;
    if (!s) { box.replaceChildren(); box.removeAttribute("data-cause"); return; }
    box.dataset.cause = s.cause || "";
    const parts = [];
    const workflow = f.kind === "workflow";
    const what = workflow ? "Step" : "Task";
    if (s.cause === "failure" && s.task) {
      const fail = s.failure || f.failure;
      parts.push(el("p", { class: "headline" },
        el("span", { class: "mark failed-mark" }, "\u2716"), " ", what, " ",
        el("strong", { class: "failed-task", "data-task": s.task }, s.task), " failed",
        fail ? el("span", { class: "why" }, ": " + fail.type + ": " + fail.message) : null));
      const when = [];
      if (s.attempt) when.push("attempt " + s.attempt);
      if (s.at) when.push("at " + fmtTime(s.at, true));
      if (s.at && f.created_at) when.push(fmtOffset(s.at - f.created_at) + " after the flow was created");
      if (s.failed.length > 1) when.push("also failed: " + names(s.failed.slice(1)));
      parts.push(el("p", { class: "when muted" }, when.join(" \u00b7 ")));
    } else if (s.cause === "cancelled") {
      parts.push(el("p", { class: "headline" }, el("span", { class: "mark" }, "\u2298"), " Cancelled",
        s.revert_started_at ? el("span", { class: "why" }, " at " + fmtTime(s.revert_started_at, true)) : null));
    } else {
      parts.push(el("p", { class: "headline" }, el("span", { class: "mark" }, "\u26a0"), " The flow ended " + f.state));
    }
    const after = [];
    const reverted = s.reverted.filter((n) => !s.failed.includes(n));
    if (f.state === "REVERTING" || s.reverting.length) {
      after.push("reverting now" + (s.reverting.length ? " (" + names(s.reverting) + ")" : ""));
    }
    if (reverted.length) {
      const other = s.failed.length ? "other " : "";
      after.push(plural(reverted.length, other + (workflow ? "step compensated" : "task reverted"),
        other + (workflow ? "steps compensated" : "tasks reverted")) + " (" + names(reverted) + ")");
    }
    if (s.failed.some((n) => s.reverted.includes(n))) {
      after.push("the failed " + (workflow ? "step compensated" : "task reverted") + " too");
    }
    if (after.length) parts.push(el("p", { class: "after" }, after.join(" \u00b7 ")));
    const times = [];
    if (s.revert_started_at && s.cause !== "cancelled") {
      times.push("the " + (workflow ? "compensation" : "revert") + " began at " + fmtTime(s.revert_started_at, true));
    }
    if (s.ended_at) times.push("ended " + f.state + " at " + fmtTime(s.ended_at, true));
    if (times.length) parts.push(el("p", { class: "when muted" }, times.join(" \u00b7 ")));
    for (const name of s.revert_failed) {
      const t = (f.tasks || []).find((x) => x.name === name);
      const rf = t && t.revert_failure;
      parts.push(el("p", { class: "revert-failed", "data-task": name },
        el("span", { class: "mark" }, "\u26a0"), " The " + (workflow ? "compensation" : "revert") + " of ",
        el("strong", {}, name), " failed" + (rf ? ": " + rf.type + ": " + rf.message : "") +
        " \u2014 what it did is not undone"));
    }
    const fail = s.failure || f.failure;
    const tools = el("div", { class: "summary-tools" });
    if (fail) tools.append(failureBox(fail, "traceback", "summary"));
    if (f.finished && s.task) {
      tools.append(el("button", { type: "button", class: "retry-here", "data-task": s.task,
        onclick: () => ask("retry", s.task) }, "retry from " + s.task + "\u2026"));
    }
    if (tools.childNodes.length) parts.push(tools);
    box.replaceChildren(...parts);
  }

  function progressText(f) {
    const s = f.summary;
    const tasks = f.tasks || [];
    if (!s) return f.progress.done + " / " + f.progress.total + " tasks done";
    const n = (pred) => tasks.filter(pred).length;
    const parts = [plural(tasks.length, "task")];
    if (s.failed.length) parts.push("\u2716 " + s.failed.length + " failed");
    const reverted = s.reverted.filter((x) => !s.failed.includes(x)).length;
    if (reverted) parts.push(reverted + " reverted");
    if (s.reverting.length) parts.push(s.reverting.length + " reverting");
    if (s.revert_failed.length) parts.push("\u26a0 " + s.revert_failed.length + " revert failed");
    const ok = n((t) => t.state === "SUCCESS");
    if (ok) parts.push(ok + " succeeded");
    const running = n((t) => t.state === "RUNNING");
    if (running) parts.push(running + " running");
    const pending = n((t) => t.state === "PENDING");
    if (pending) parts.push(pending + " not run");
    return parts.join(" \u00b7 ");
  }

  // -- inputs ------------------------------------------------------------------------------

  function renderInputs(f) {
    const inputs = f.inputs || {};
    const key = JSON.stringify(inputs);
    if (key === lastInputs) return;
    lastInputs = key;
    const rows = Object.entries(inputs).map(([k, v]) =>
      el("tr", { "data-input": k }, el("td", {}, el("code", {}, k)), el("td", {}, valueNode(v, 120))));
    $("inputs").tBodies[0].replaceChildren(...rows);
    $("inputs").hidden = rows.length === 0;
    $("inputs-empty").hidden = rows.length > 0;
  }

  // -- a pattern flow's timeline: each task's attempts and reverts on one time axis --------

  function niceStep(span) {
    const raw = span / 5;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
  }

  function makeScale(t0, t1, openEnd) {
    const span = Math.max(t1 - t0, 1e-3);
    const step = niceStep(span);
    const ticks = [];
    for (let k = 0; k * step <= span * 1.0001; k++) ticks.push(t0 + k * step);
    return { t0, span, step, ticks, openEnd, x: (t) => Math.min(Math.max(((t - t0) / span) * 100, 0), 100) };
  }

  function axisTrack(scale) {
    const track = el("div", { class: "track axis-track" });
    const gap = (scale.step / scale.span) * 100;  // between two ticks, in % of the track
    for (const t of scale.ticks) {
      const x = scale.x(t);
      if (x > 92 && gap < 16 && x > 0) continue;  // no room for its label at the end
      const tick = el("span", { class: x > 92 ? "tick end" : "tick" }, fmtOffset(t - scale.t0));
      tick.style.left = x.toFixed(3) + "%";
      track.append(tick);
    }
    return track;
  }

  function place(node, scale, start, end) {
    const left = scale.x(start);
    node.style.left = left.toFixed(3) + "%";
    node.style.width = Math.max(Math.min(scale.x(end) - left, 100 - left), 0).toFixed(3) + "%";
    return node;
  }

  function bands(f, openEnd) {
    const out = [];
    const phases = f.phases || [];
    phases.forEach((p, i) => {
      if (p.state !== "REVERTING" && p.state !== "SUSPENDED") return;
      const end = i + 1 < phases.length ? phases[i + 1].at : (f.finished ? f.updated_at : openEnd);
      out.push({ state: p.state, start: p.at, end: end, reason: p.reason });
    });
    return out;
  }

  const SPAN_WORDS = {
    RUNNING: "running", SUCCESS: "succeeded", FAILURE: "failed", INTERRUPTED: "cut short",
    REVERTING: "reverting", REVERTED: "reverted", REVERT_FAILURE: "revert failed",
  };

  function renderTimeline(f) {
    const box = $("timeline");
    const tasks = (f.tasks || []).filter((t) => (t.spans || []).some((s) => s.started_at || s.finished_at));
    const running = tasks.some((t) => t.spans.some((s) => !s.finished_at));
    const key = JSON.stringify([f.state, f.updated_at, tasks.map((t) => [t.name, t.failed, t.spans]), f.phases]);
    if (key === lastTimeline && !running) return;
    lastTimeline = key;
    if (!tasks.length) {
      box.replaceChildren(el("p", { class: "muted" }, "No task has started yet."));
      return;
    }
    const now = Math.max(Date.now() / 1000, f.updated_at || 0);
    const openEnd = f.finished ? f.updated_at : now;
    const times = [];
    for (const t of tasks) {
      for (const s of t.spans) {
        if (s.started_at) times.push(s.started_at);
        times.push(s.finished_at || openEnd);
      }
    }
    const t0 = Math.min(...times);
    const scale = makeScale(t0, Math.max(...times), openEnd);
    const phaseBands = bands(f, openEnd);
    const decisions = (f.retry_decisions || []).filter((d) => d.at);
    const shown = labels(tasks.map((t) => t.name), 34);

    const head = axisTrack(scale);
    for (const b of phaseBands) {
      head.append(place(el("span", { class: "band-label band-" + b.state },
        b.state === "REVERTING" ? "\u21b6 reverting" : "suspended"), scale, b.start, b.end));
    }
    for (const d of decisions) {
      const m = el("span", { class: "retry-mark", "data-decision": d.decision || "",
        title: "retry decision of " + d.scope + ": " + d.decision + " (attempt " + d.attempt + ")" +
          (d.reset && d.reset.length ? "; runs again: " + d.reset.join(", ") : "") }, "\u21bb");
      m.style.left = scale.x(d.at).toFixed(3) + "%";
      head.append(m);
    }
    const rows = [el("div", { class: "trow head", role: "row" },
      el("span", { class: "label" }, "task \u00b7 0 = " + fmtTime(t0, true)), head,
      el("span", { class: "dur" }, "duration"), el("span", { class: "states" }, "state"))];
    const order = tasks.slice().sort((a, b) => {
      const sa = Math.min(...a.spans.map((s) => s.started_at || s.finished_at));
      const sb = Math.min(...b.spans.map((s) => s.started_at || s.finished_at));
      return sa - sb || (a.name < b.name ? -1 : 1);
    });
    for (const t of order) {
      const track = el("div", { class: "track" });
      for (const b of phaseBands) track.append(place(el("i", { class: "band band-" + b.state }), scale, b.start, b.end));
      for (const tk of scale.ticks) {
        const line = el("i", { class: "gridline" });
        line.style.left = scale.x(tk).toFixed(3) + "%";
        track.append(line);
      }
      const runs = t.spans.filter((s) => s.kind === "run");
      const lastRun = runs[runs.length - 1];
      t.spans.forEach((s) => {
        const end = s.finished_at || openEnd;
        const start = s.started_at || end;
        const failing = t.failed && s === lastRun && s.state === "FAILURE";
        const cls = ["bar", s.kind, "state-" + s.state];
        if (failing) cls.push("failing");
        if (!s.started_at) cls.push("unknown-start");
        const tip = t.name + " \u00b7 " + (s.kind === "revert" ? "revert" : "attempt " + (s.attempt || "?")) +
          ": " + SPAN_WORDS[s.state] + (s.started_at ? " \u00b7 " + fmtDur(end - start) + (s.finished_at ? "" : "\u2026") : "") +
          " \u00b7 " + fmtTime(start, true);
        track.append(place(el("div", { class: cls.join(" "), "data-task": t.name, "data-kind": s.kind, "data-state": s.state,
          "data-attempt": s.attempt, title: tip }), scale, start, end));
      });
      // how long it ran: its first attempt's start to its latest attempt's end (no revert)
      const first = Math.min(...runs.map((s) => s.started_at || s.finished_at || openEnd));
      const lastEnd = Math.max(...runs.map((s) => s.finished_at || openEnd));
      const open = runs.some((s) => !s.finished_at && s.state !== "INTERRUPTED");
      const attempts = runs.length > 1 ? el("span", { class: "attempts", title: runs.length + " attempts" }, "\u00d7" + runs.length) : null;
      rows.push(el("div", {
        class: "trow" + (t.failed ? " failed" : ""), role: "row", "data-task": t.name, "data-state": t.state,
        "data-failed": t.failed ? "true" : null,
      },
        el("span", { class: "label", title: t.name },
          t.failed ? el("span", { class: "mark failed-mark", title: "this task failed the flow" }, "\u2716") : null,
          el("span", { class: "task-label" }, shown[t.name]), attempts),
        track,
        el("span", { class: "dur" }, runs.length ? fmtDur(lastEnd - first) + (open ? "\u2026" : "") : ""),
        el("span", { class: "states" }, badge(t.state))));
    }
    const notStarted = (f.tasks || []).length - tasks.length;
    if (notStarted) rows.push(el("p", { class: "muted small not-started" }, plural(notStarted, "task") + " never started"));
    box.replaceChildren(...rows);
  }

  // -- the tasks table -----------------------------------------------------------------------

  function renderTasks(f) {
    const key = JSON.stringify([f.finished, f.tasks.map((t) => [t.name, t.state, t.failed, t.attempt, t.duration, t.result, t.failure, t.revert_failure]), f.children]);
    if (key === lastTasks) return;
    lastTasks = key;
    const body = $("tasks").tBodies[0];
    const open = new Set([...body.querySelectorAll("details[open]")].map((d) => d.dataset.key));
    const child = {};  // task name -> the child flow its latest attempt started
    for (const c of f.children || []) child[c.step] = c.flow_id;
    const rows = f.tasks.map((t) => {
      const cutShort = t.failure && (t.failure.types || []).some((x) => /(FlowCancelled|CancelledError)$/.test(x));
      const why = t.failed ? "failed" : cutShort ? "cut short" : "an earlier attempt failed";
      const failures = [failureBox(t.failure, why, t.name + "/failure"),
        failureBox(t.revert_failure, "revert failed", t.name + "/revert")].filter(Boolean);
      const name = child[t.name]
        ? el("a", { href: "#/flows/" + encodeURIComponent(child[t.name]), title: "its child flow" }, t.name)
        : el("span", { class: "task-name" }, t.name);
      return el("tr", { "data-task": t.name, "data-state": t.state, "data-failed": t.failed ? "true" : null,
        class: t.failed ? "failed" : (t.revert_failure ? "revert-failed" : null) },
        el("td", { class: "name-cell" }, t.failed ? el("span", { class: "mark failed-mark", title: "this task failed the flow" }, "\u2716 ") : null, name),
        el("td", {}, badge(t.state), t.failed ? failedBadge() : null),
        el("td", {}, t.attempt || ""),
        el("td", {}, fmtDur(t.duration)),
        el("td", { class: "result-cell" }, t.state === "SUCCESS" || t.result !== null ? valueNode(t.result, 60) : ""),
        el("td", { class: "failure-cell" }, ...failures),
        el("td", {}, f.finished ? el("button", { type: "button", class: "retry-here small", "data-task": t.name,
          title: "re-run the flow from this task, as a new flow", onclick: () => ask("retry", t.name) }, "retry from here") : ""));
    });
    body.replaceChildren(...rows);
    for (const d of body.querySelectorAll("details")) if (open.has(d.dataset.key)) d.open = true;
  }

  // -- the journal as a history --------------------------------------------------------------

  const EVENT_WORDS = {
    "flow.created": "flow created",
    "flow.state": "flow",
    "store": "values stored",
    "task.started": "started",
    "task.succeeded": "succeeded",
    "task.failed": "failed",
    "revert.started": "revert started",
    "revert.done": "reverted",
    "revert.failed": "revert failed",
    "retry.decision": "retry decision",
    "flow.checkpoint": "checkpoint",
  };

  function failureText(fd) {
    if (!fd || typeof fd !== "object") return "";
    const types = fd.exc_types || fd.types || [];
    return (types[0] || fd.type || "Exception") + ": " + (fd.message || "");
  }

  function entryDetails(e) {
    const d = e.data;
    if (d === null || typeof d !== "object") return typeof d === "string" ? el("code", {}, d.slice(0, 200)) : "";
    switch (e.kind) {
      case "flow.created": {
        const parts = [];
        if (d.inputs && Object.keys(d.inputs).length) parts.push("inputs ", valueNode(d.inputs, 100));
        if (d.parent) parts.push(" child of " + d.parent);
        if (d.forked_from) parts.push(" re-run of " + d.forked_from);
        if (Array.isArray(d.tasks)) parts.push(" \u00b7 " + plural(d.tasks.length, "task"));
        return el("span", {}, ...parts);
      }
      case "flow.state":
        return el("span", {}, d.reason ? "reason: " + d.reason : "", d.failure ? " " + failureText(d.failure) : "",
          "result" in d ? el("span", {}, "result ", valueNode(d.result, 80)) : "");
      case "task.succeeded": return "result" in d ? valueNode(d.result, 80) : "";
      case "task.failed": case "revert.failed": return el("span", { class: "error" }, failureText(d.failure));
      case "retry.decision":
        return (d.decision || "") + (d.reset && d.reset.length ? " \u00b7 runs again: " + d.reset.join(", ") : "");
      case "flow.checkpoint":
        return plural(Array.isArray(d.tasks) ? d.tasks.length : 0, "success", "successes") + " summed up";
      case "store": return valueNode(d.values, 80);
      case "task.started": return d.child ? "child flow " + d.child : "";
      default: return "";
    }
  }

  function historyRow(e, t0) {
    const d = e.data && typeof e.data === "object" ? e.data : {};
    let event = EVENT_WORDS[e.kind] || e.kind;
    if (e.kind === "flow.state") event = "flow \u2192 " + e.state;
    const cls = ["ev", "ev-" + e.kind.replace(".", "-")];
    const types = d.failure && Array.isArray(d.failure.exc_types) ? d.failure.exc_types : [];
    if (e.kind === "task.failed" && types.some((x) => /(FlowCancelled|CancelledError)$/.test(x))) {
      event = "cut short";  // by a cancel: it did not fail the flow
      cls[1] = "ev-cut-short";
    }
    if (e.kind === "flow.state") cls.push("ev-state-" + e.state);
    return el("tr", { class: cls.join(" "), "data-seq": e.seq, "data-kind": e.kind },
      el("td", { class: "num" }, e.seq),
      el("td", {}, timeCell(e.at)),
      el("td", { class: "num" }, t0 ? fmtOffset(e.at - t0) : ""),
      el("td", { class: "event", title: e.kind }, event),
      el("td", { class: "name-cell" }, e.task || ""),
      el("td", { class: "num" }, typeof d.attempt === "number" ? d.attempt : ""),
      el("td", { class: "details" }, entryDetails(e)));
  }

  async function refreshHistory(id) {
    if (journalDone || journalRows.length >= HISTORY_MAX) return;
    const after = journalRows.length ? journalRows[journalRows.length - 1].seq : -1;
    const page = await getJSON("/flows/" + encodeURIComponent(id) + "/journal?limit=500&after_seq=" + after);
    if (view !== "flow" || flowId !== id) return;
    if (!page.entries.length) return;
    const t0 = journalRows.length ? journalRows[0].at : page.entries[0].at;
    journalRows.push(...page.entries);
    $("history").tBodies[0].append(...page.entries.map((e) => historyRow(e, t0)));
    const more = $("history-more");
    if (journalRows.length >= HISTORY_MAX && page.next_seq !== null) {
      more.hidden = false;
      more.replaceChildren("The first " + journalRows.length + " entries; the rest: ",
        el("a", { href: API + "/flows/" + encodeURIComponent(id) + "/journal?after_seq=" + journalRows[journalRows.length - 1].seq }, "the journal (JSON)"));
    }
  }

  // -- actions, each asked for again in a dialog -------------------------------------------

  const ACTIONS = {
    cancel: {
      title: "Cancel this flow?",
      text: "Its running tasks are cancelled and the tasks that completed are reverted, newest " +
        "first; it ends CANCELLED. A flow no engine here runs is taken over from the journal first.",
      ok: "cancel the flow", force: true, danger: true,
    },
    suspend: {
      title: "Suspend this flow?",
      text: "No new task starts; the running ones finish. The flow waits in SUSPENDED until resumed.",
      ok: "suspend", force: false,
    },
    stop: {
      title: "Stop this flow?",
      text: "The running tasks finish, then this server stops working on the flow without reverting " +
        "it: it stays SUSPENDED in the journal, and any engine can resume it.",
      ok: "stop", force: false,
    },
    resume: {
      title: "Resume this flow?",
      text: "It goes on from where its journal says it is; what is done is not run again. A flow " +
        "no engine here runs is taken over from the journal (its previous owner is fenced out).",
      ok: "resume", force: true,
    },
    retry: {
      title: "Retry from a task?",
      text: "A new flow re-runs this one from the task chosen: the tasks before it keep their " +
        "journaled results, the task and everything after it run again. This flow is not changed.",
      ok: "start the new flow", force: false,
    },
  };

  let asking = null;  // the action the dialog asks about

  function ask(action, task) {
    const a = ACTIONS[action];
    const dlg = $("confirm");
    asking = action;
    $("confirm-title").textContent = a.title;
    $("confirm-text").textContent = a.text;
    $("confirm-flow").replaceChildren(el("code", {}, flowId),
      flow ? " \u00b7 " + flow.name + " \u00b7 " + flow.state + (flow.running_here ? " \u00b7 running here" : "") : "");
    $("confirm-ok").textContent = a.ok;
    $("confirm-ok").className = a.danger ? "danger" : "primary";
    $("confirm-ok").disabled = false;
    $("force-field").hidden = !a.force;
    $("confirm-force").checked = false;
    $("confirm-error").hidden = true;
    $("retry-fields").hidden = action !== "retry";
    dlg.dataset.action = action;
    if (action === "retry") {
      const options = (flow && flow.tasks ? flow.tasks : []).map((t) =>
        el("option", { value: t.name, selected: t.name === task }, t.name + (t.failed ? "  \u2716 failed" : "")));
      $("retry-task").replaceChildren(...options);
      if (task) $("retry-task").value = task;
      $("retry-id").value = "";
    }
    dlg.showModal();
    $("confirm-back").focus();
  }

  async function confirmed() {
    const action = asking;
    if (!action) return;
    const id = flowId;
    const token = $("token").value;
    sessionStorage.setItem("flowcoord-token", token);
    const body = {};
    if (ACTIONS[action].force && $("confirm-force").checked) body.force = true;
    if (action === "retry") {
      body.from_task = $("retry-task").value;
      if ($("retry-id").value.trim()) body.flow_id = $("retry-id").value.trim();
    }
    $("confirm-ok").disabled = true;
    let resp = null;
    let answer = {};
    try {
      resp = await fetch(API + "/flows/" + encodeURIComponent(id) + "/" + action, {
        method: "POST",
        headers: Object.assign({ "Content-Type": "application/json" }, token ? { Authorization: "Bearer " + token } : {}),
        body: JSON.stringify(body),
      });
      answer = await resp.json().catch(() => ({}));
    } catch (err) {
      answer = { error: err.message };
    }
    $("confirm-ok").disabled = false;
    const out = $("action-result");
    if (resp && resp.ok) {
      $("confirm").close();
      asking = null;
      out.className = "muted";
      out.textContent = action + ": " + (answer.action || "ok");
      if (action === "retry" && answer.flow_id) {
        out.replaceChildren("retry: the new flow is ", flowLink(answer.flow_id));
        location.hash = "#/flows/" + encodeURIComponent(answer.flow_id);
        return;
      }
      poll();
      return;
    }
    const text = action + " failed: " + (answer.error || (resp ? resp.statusText : "no answer")) +
      (answer.hint ? " (" + answer.hint + ")" : "");
    const err = $("confirm-error");
    err.textContent = text;
    err.hidden = false;
    if (resp && (resp.status === 401 || resp.status === 403)) {
      $("confirm").close();  // the token is typed in the page's header
      asking = null;
      $("token").focus();
    }
    out.className = "error";
    out.textContent = text;
  }

  function renderActions(f) {
    const active = f.running_here && !f.finished;
    const liveRunning = active && (f.live_state || f.state) === "RUNNING";
    $("cancel-flow").disabled = f.finished;
    $("suspend-flow").disabled = !liveRunning;
    $("stop-flow").disabled = !active;
    $("resume-flow").disabled = f.finished || (f.running_here && f.state !== "SUSPENDED");
    $("retry-flow").disabled = !f.finished;
    $("retry-flow").textContent = f.kind === "workflow" ? "retry from a step\u2026" : "retry from a task\u2026";
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

  function valueText(s) {
    const v = s.result;
    if (s.kind === "patch") return "taken";
    if (s.name === "now" && typeof v === "number") return fmtTime(v, true).slice(11);
    if (s.name === "sleep" && typeof v === "number") return "until " + fmtTime(v, true).slice(11);
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
      s.kind === "child" && s.child ? el("a", { href: "#/flows/" + encodeURIComponent(s.child) }, (scale.labels && scale.labels[s.key]) || shown)
        : el("span", { class: "step-name" }, (scale.labels && scale.labels[s.key]) || shown),
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
    scale.labels = {};
    {
      // the names as shown, cut in the middle, no two alike (one position may repeat a name)
      const shownNames = steps.map((s) => (s.kind === "patch" ? s.name.replace(/^patch:/, "") : s.name));
      const cutNames = labels([...new Set(shownNames)], 26);
      steps.forEach((s, i) => { scale.labels[s.key] = cutNames[shownNames[i]]; });
    }

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


  function workflowProgress(f) {
    const steps = (f.steps || []).filter((s) => !VALUE_KINDS.has(s.kind));
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
    const f = await getJSON(path);
    const workflow = f.kind === "workflow";
    let svg = "";
    if (!workflow) {
      const svgResp = await fetch(API + path + "/graph.svg", { cache: "no-store", headers: authHeaders() });
      svg = svgResp.ok ? await svgResp.text() : "";
    }
    if (view !== "flow" || flowId !== id) return;
    flow = f;
    $("pattern-view").hidden = workflow;
    $("workflow-view").hidden = !workflow;
    const kind = $("flow-kind");
    kind.hidden = !workflow;
    kind.textContent = workflow ? "workflow" : "";
    document.body.dataset.flowKind = f.kind || "pattern";
    $("flow-name").textContent = f.name;
    const st = $("flow-state");
    st.textContent = f.state;
    st.className = "badge state-" + f.state;
    st.dataset.state = f.state;
    $("flow-id").textContent = f.flow_id;
    $("flow-created").textContent = fmtTime(f.created_at, true);
    $("flow-updated").textContent = fmtTime(f.updated_at, true);
    $("flow-took").textContent = f.finished && f.created_at && f.updated_at
      ? " · took " + fmtDur(f.updated_at - f.created_at) : "";
    $("flow-progress").textContent = (workflow ? workflowProgress(f) : progressText(f)) +
      (f.running_here ? " · running here" : "");
    $("journal-link").href = API + path + "/journal";
    renderActions(f);
    renderSummary(f);
    renderLinks(f);
    renderInputs(f);
    if (svg && svg !== lastSvg) {
      lastSvg = svg;
      $("graph").innerHTML = svg;  // our own server's SVG; every name in it is escaped
    }
    if (workflow) renderSteps(f);
    else {
      renderTimeline(f);
      renderTasks(f);
    }
    await refreshHistory(id);
    if (f.finished && journalRows.length && journalRows[journalRows.length - 1].seq >= f.last_seq) {
      journalDone = true;
    }
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
    if (/^#\/(queues|members)\b/.test(location.hash)) {  // the job board's pages: board.js
      view = "board";
      clearTimeout(timer);
      $("list-view").hidden = true;
      $("flow-view").hidden = true;
      return;
    }
    if (m) {
      view = "flow";
      flowId = decodeURIComponent(m[1]);
      flow = null;
      lastSvg = lastSteps = lastTimeline = lastTasks = lastInputs = "";
      journalRows = [];
      journalDone = false;
      $("graph").replaceChildren();
      $("steps").replaceChildren();
      $("timeline").replaceChildren();
      $("tasks").tBodies[0].replaceChildren();
      $("history").tBodies[0].replaceChildren();
      $("history-more").hidden = true;
      $("flow-links").hidden = true;
      $("flow-failure").hidden = true;
      delete $("flow-failure").dataset.key;
      $("action-result").textContent = "";
      $("action-result").className = "muted";
    } else {
      view = "list";
      lastTable = "";
      loadFilters();
    }
    $("list-view").hidden = view !== "list";
    $("flow-view").hidden = view !== "flow";
    poll();
  }

  for (const id of ["state-filter", "since-filter", "from-filter", "to-filter", "page-size"]) {
    $(id).addEventListener("change", filtersChanged);
  }
  let typing = null;
  $("name-filter").addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(filtersChanged, 300); });
  $("clear-filters").addEventListener("click", () => {
    $("state-filter").value = "";
    $("name-filter").value = "";
    $("since-filter").value = "";
    $("from-filter").value = "";
    $("to-filter").value = "";
    filtersChanged();
  });
  $("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); search($("search").value); });
  $("next-page").addEventListener("click", () => { if (nextCursor) { cursors.push(nextCursor); lastTable = ""; poll(); } });
  $("prev-page").addEventListener("click", () => { if (cursors.length > 1) { cursors.pop(); lastTable = ""; poll(); } });
  $("first-page").addEventListener("click", () => { cursors = [null]; lastTable = ""; poll(); });
  for (const action of ["cancel", "suspend", "stop", "resume", "retry"]) {
    $(action + "-flow").addEventListener("click", () => ask(action, flow && flow.summary ? flow.summary.task : null));
  }
  $("confirm-ok").addEventListener("click", confirmed);
  $("confirm-back").addEventListener("click", () => { $("confirm").close(); asking = null; });
  $("confirm").addEventListener("close", () => { asking = null; });
  $("token").value = sessionStorage.getItem("flowcoord-token") || "";
  const zone = zoneName();
  $("zone").textContent = "times in UTC" + zoneOffset(new Date()) + (zone ? " (" + zone + ")" : "");
  window.addEventListener("hashchange", route);
  // what the job board's pages (board.js) share with these
  window.flowcoordUI = { API, el, fmtTime, authHeaders, setStatus, bumpRefreshes };
  route();
})();
