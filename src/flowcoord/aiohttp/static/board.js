// flowcoord dashboard: the job board's pages (#/queues, #/members), over GET /queues,
// /jobs, /members and /trash; trash, requeue and purge asked for again in a dialog.
"use strict";

(function () {
  const ui = window.flowcoordUI;
  const { API, el, fmtTime } = ui;
  const POLL_MS = 1000;
  const WAITING_SHOWN = 50;  // waiting jobs listed per queue; the count says how many more
  const $ = (id) => document.getElementById(id);

  let page = null;    // "queues" | "members" | null (another page)
  let timer = null;
  let lastQueues = "";
  let lastMembers = "";
  let asking = null;  // the action the dialog asks about: {kind, ...}

  // -- the pages' frames (made once, hidden until routed to) ---------------------------------

  function frames() {
    const main = $("view");
    main.append(
      el("section", { id: "queues-view", hidden: true },
        el("div", { class: "toolbar" }, el("h1", {}, "Queues"),
          el("span", { class: "muted" }, "the job board: what waits, what runs and who runs it")),
        el("p", { id: "board-result", class: "muted", "aria-live": "polite" }),
        el("div", { id: "board-notice", class: "notice", role: "status", hidden: true }),
        el("div", { id: "queues" }),
        el("div", { id: "trash-box", class: "trash-box" },
          el("div", { class: "toolbar" }, el("h2", {}, "Trash"),
            el("span", { id: "trash-count", class: "muted" }),
            el("button", { id: "purge-trash", type: "button", class: "danger small",
              title: "delete every trash entry (the jobs cannot be requeued then)",
              onclick: () => ask({ kind: "purge" }) }, "purge the trash\u2026")),
          el("table", { id: "trash" },
            el("thead", {}, el("tr", {}, ...["trash id", "queue", "flow", "reason", "trashed",
              "claims", ""].map((h) => el("th", {}, h)))),
            el("tbody")),
          el("p", { id: "trash-empty", class: "muted", hidden: true }, "The trash is empty."))),
      el("section", { id: "members-view", hidden: true },
        el("div", { class: "toolbar" }, el("h1", {}, "Members"),
          el("span", { class: "muted" }, "the live workers of the job board and what each holds")),
        el("div", { id: "members-notice", class: "notice", role: "status", hidden: true }),
        el("div", { id: "members" }),
        el("p", { id: "members-empty", class: "muted", hidden: true }, "No live members: no worker is connected.")));
    document.body.append(
      el("dialog", { id: "board-confirm", "aria-labelledby": "board-confirm-title" },
        el("form", { method: "dialog", id: "board-confirm-form" },
          el("h2", { id: "board-confirm-title" }),
          el("p", { id: "board-confirm-job", class: "muted" }),
          el("p", { id: "board-confirm-text" }),
          el("label", { id: "board-reason-field", hidden: true }, "reason ",
            el("input", { id: "board-reason", type: "text", autocomplete: "off",
              placeholder: "why (kept with the trash entry)" })),
          el("p", { id: "board-confirm-error", class: "error", hidden: true }),
          el("div", { class: "dialog-buttons" },
            el("button", { id: "board-confirm-back", type: "button", onclick: () => closeDialog() }, "back"),
            el("button", { id: "board-confirm-ok", type: "button", class: "danger", onclick: confirmed })))));
    $("board-confirm").addEventListener("close", () => { asking = null; });
    $("board-reason").addEventListener("input", () => { $("board-confirm-error").hidden = true; });
  }

  // -- small pieces --------------------------------------------------------------------------

  function flowLink(id) {
    return el("a", { href: "#/flows/" + encodeURIComponent(id), class: "flow-link", title: "the flow's journal" },
      el("code", {}, id));
  }

  function statusBadge(status) {  // waiting, delayed, running: not a flow's state
    return el("span", { class: "badge job-status job-" + status, "data-status": status }, status);
  }

  function jobCode(id) { return el("code", { class: "job-id", title: id }, id.slice(0, 12) + "\u2026"); }

  function limitsOf(config) {
    const out = [];
    for (const [k, v] of Object.entries(config)) {
      if (k === "name" || v === null || v === undefined || v === false) continue;
      if (k === "concurrency") out.push(el("span", { class: "limit", "data-limit": k,
        title: "at most this many of its jobs run at once across the board" }, "at most " + v + " at once"));
      else if (k === "partition_limit") out.push(el("span", { class: "limit", "data-limit": k,
        title: "at most this many jobs of one partition key run at once" }, "at most " + v + " per partition"));
      else if (k === "rate_limit" && Array.isArray(v)) out.push(el("span", { class: "limit", "data-limit": k,
        title: "at most this many starts in any such period, across the board" }, v[0] + " starts / " + v[1] + " s"));
      else out.push(el("span", { class: "limit", "data-limit": k }, k.replace(/_/g, " ") + " " +
        (typeof v === "object" ? JSON.stringify(v) : v)));
    }
    return out.length ? out : [el("span", { class: "limit none", "data-limit": "none" }, "no global limit")];
  }

  function notice(id, err) {
    const box = $(id);
    box.hidden = !err;
    box.replaceChildren(...(err ? [el("strong", {}, err.message), err.hint ? " \u2014 " + err.hint : ""] : []));
  }

  async function getJSON(path) {
    const resp = await fetch(API + path, { cache: "no-store", headers: ui.authHeaders() });
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      const err = new Error(body.error || resp.statusText);
      err.status = resp.status;
      err.hint = body.hint;
      throw err;
    }
    return body;
  }

  // -- the queues page -----------------------------------------------------------------------

  function partitionMark(j) {
    // the job's partition key: the queue's per-partition limit counts it
    return j.partition ? el("span", { class: "small muted partition", title: "partition key" },
      " \u00b7 " + j.partition) : null;
  }

  function runningTable(q) {
    if (!q.running.length) return el("p", { class: "muted small" }, "Nothing of it runs now.");
    return el("table", { class: "running" },
      el("thead", {}, el("tr", {}, ...["job", "flow", "run by", "claims", "posted"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...q.running.map((j) =>
        el("tr", { "data-job-id": j.job_id, "data-owner": j.owner, "data-status": "running" },
          el("td", {}, jobCode(j.job_id)),
          el("td", { class: "name-cell" }, j.flow, " ", flowLink(j.flow_id), partitionMark(j)),
          el("td", {}, el("span", { class: "owner" }, j.owner)),
          el("td", { class: "num" }, j.claims + (j.failures ? " (" + j.failures + " failed)" : "")),
          el("td", {}, fmtTime(j.created_at))))));
  }

  function waitingTable(q, jobs) {
    const waiting = jobs.filter((j) => j.status !== "running");
    if (!waiting.length) return el("p", { class: "muted small" }, "No job waits.");
    const rows = waiting.map((j) =>
      el("tr", { "data-job-id": j.job_id, "data-status": j.status, class: j.failures ? "failing" : null },
        el("td", {}, jobCode(j.job_id)),
        el("td", { class: "name-cell" }, j.flow, " ", flowLink(j.flow_id), partitionMark(j)),
        el("td", { class: "num" }, j.priority),
        el("td", {}, statusBadge(j.status),
          j.status === "delayed" ? el("span", { class: "small muted" }, " due " + fmtTime(j.not_before)) : null),
        el("td", { class: "num" }, j.claims + (j.failures ? " (" + j.failures + " failed)" : "")),
        el("td", {}, fmtTime(j.created_at)),
        el("td", {}, el("button", { type: "button", class: "small trash-job", "data-job-id": j.job_id,
          title: "move it to the trash (it will not run unless requeued)",
          onclick: () => ask({ kind: "trash", job: j }) }, "trash\u2026"))));
    const more = q.queued - waiting.length;
    return el("div", {},
      el("table", { class: "waiting" },
        el("thead", {}, el("tr", {}, ...["job", "flow", "priority", "status", "claims", "posted", ""].map((h) => el("th", {}, h)))),
        el("tbody", {}, ...rows)),
      more > 0 ? el("p", { class: "muted small" }, "and " + more + " more waiting (the first " + waiting.length + " in claim order)") : null);
  }

  function queueCard(q, jobs, complete) {
    const plus = complete ? "" : "+";
    const limit = q.config.concurrency;
    const served = q.served_by.length
      ? q.served_by.map((s, i) => [i ? ", " : "", el("span", { class: "member", "data-member": s.member },
        s.member, s.worker_limit ? el("span", { class: "muted small" }, " (at most " + s.worker_limit + " here)") : null)]).flat()
      : [el("span", { class: "warn" }, "no live worker serves it")];
    return el("article", { class: "queue", "data-queue": q.name },
      el("div", { class: "queue-head" },
        el("h2", {}, q.name),
        el("span", { class: "limits" }, ...limitsOf(q.config)),
        el("span", { class: "counts" },
          el("span", { class: "count", "data-count": "waiting" }, el("b", {}, q.waiting + plus), " waiting"),
          el("span", { class: "count", "data-count": "delayed" }, el("b", {}, q.delayed + plus), " delayed"),
          el("span", { class: "count", "data-count": "running" }, el("b", {}, String(q.running.length) +
            (limit ? " / " + limit : "")), " running"))),
      el("p", { class: "served small" }, "served by ", ...served),
      el("h3", {}, "Running"), runningTable(q),
      el("h3", {}, "Waiting"), waitingTable(q, jobs));
  }

  function trashRows(trash) {
    return trash.map((t) =>
      el("tr", { "data-trash-id": t.trash_id, "data-job-id": t.job.job_id },
        el("td", {}, el("code", { class: "trash-id", title: t.trash_id }, t.trash_id)),
        el("td", {}, t.job.queue),
        el("td", { class: "name-cell" }, t.job.flow, " ", flowLink(t.job.flow_id)),
        el("td", { class: "reason" }, t.reason),
        el("td", {}, fmtTime(t.trashed_at)),
        el("td", { class: "num" }, t.job.claims + (t.job.failures ? " (" + t.job.failures + " failed)" : "")),
        el("td", {}, el("button", { type: "button", class: "small requeue", "data-trash-id": t.trash_id,
          title: "post it again: same flow, inputs, queue and priority; claims reset",
          onclick: () => ask({ kind: "requeue", entry: t }) }, "requeue\u2026"))));
  }

  async function refreshQueues() {
    let overview;
    try {
      overview = await getJSON("/queues");
    } catch (err) {
      if (page !== "queues") return;
      notice("board-notice", err);
      $("queues").replaceChildren();
      $("trash-box").hidden = true;
      lastQueues = "";
      return;
    }
    const lists = {};
    for (const q of overview.queues) {
      lists[q.name] = q.queued ? (await getJSON("/jobs?limit=" + WAITING_SHOWN + "&queue=" + encodeURIComponent(q.name))).jobs : [];
    }
    if (page !== "queues") return;
    notice("board-notice", null);
    $("trash-box").hidden = false;
    const key = JSON.stringify([overview, lists]);
    if (key === lastQueues) return;
    lastQueues = key;
    $("queues").replaceChildren(...overview.queues.map((q) => queueCard(q, lists[q.name], overview.complete)));
    const trash = overview.trash;
    $("trash").tBodies[0].replaceChildren(...trashRows(trash));
    $("trash").hidden = !trash.length;
    $("trash-empty").hidden = trash.length > 0;
    $("purge-trash").disabled = !trash.length;
    $("trash-count").textContent = trash.length ? trash.length + (trash.length === 1 ? " entry" : " entries") : "";
  }

  // -- the members page ----------------------------------------------------------------------

  const INFO_SHOWN = new Set(["host", "pid", "started_at", "capacity", "queues", "worker_limits"]);

  function memberCard(m) {
    const info = m.info || {};
    const limits = info.worker_limits || {};
    const queues = (info.queues || []).map((q, i) => [i ? ", " : "", el("span", { class: "queue-name", "data-queue": q }, q,
      limits[q] ? el("span", { class: "muted small" }, " (at most " + limits[q] + ")") : null)]).flat();
    const other = Object.entries(info).filter(([k]) => !INFO_SHOWN.has(k));
    const holds = m.claims.length + (info.capacity ? " / " + info.capacity : "");
    return el("article", { class: "member-card", "data-member": m.name },
      el("div", { class: "queue-head" },
        el("h2", {}, m.name),
        el("span", { class: "counts" }, el("span", { class: "count", "data-count": "holds" }, el("b", {}, holds), " held"))),
      el("dl", { class: "info" },
        el("dt", {}, "host"), el("dd", { "data-info": "host" }, info.host !== undefined ? String(info.host) + (info.pid ? " \u00b7 pid " + info.pid : "") : "\u2013"),
        el("dt", {}, "started"), el("dd", {}, typeof info.started_at === "number" ? fmtTime(info.started_at) : "\u2013"),
        el("dt", {}, "serves"), el("dd", { "data-info": "queues" }, ...(queues.length ? queues : ["\u2013"])),
        ...other.flatMap(([k, v]) => [el("dt", {}, k.replace(/_/g, " ")),
          el("dd", { "data-info": k }, typeof v === "object" ? JSON.stringify(v) : String(v))])),
      m.jobs.length
        ? el("table", { class: "held" },
          el("thead", {}, el("tr", {}, ...["job", "queue", "flow", "claims", "posted"].map((h) => el("th", {}, h)))),
          el("tbody", {}, ...m.jobs.map((j) => el("tr", { "data-job-id": j.job_id, "data-queue": j.queue },
            el("td", {}, jobCode(j.job_id)), el("td", {}, j.queue),
            el("td", { class: "name-cell" }, j.flow, " ", flowLink(j.flow_id)),
            el("td", { class: "num" }, j.claims), el("td", {}, fmtTime(j.created_at))))))
        : el("p", { class: "muted small" }, "Holds no job."));
  }

  async function refreshMembers() {
    let data;
    try {
      data = await getJSON("/members");
    } catch (err) {
      if (page !== "members") return;
      notice("members-notice", err);
      $("members").replaceChildren();
      $("members-empty").hidden = true;
      lastMembers = "";
      return;
    }
    if (page !== "members") return;
    notice("members-notice", null);
    const key = JSON.stringify(data);
    if (key === lastMembers) return;
    lastMembers = key;
    $("members").replaceChildren(...data.members.map(memberCard));
    $("members-empty").hidden = data.members.length > 0;
  }

  // -- trash, requeue, purge: each asked for again -----------------------------------------

  const ASK = {
    trash: {
      title: "Move this job to the trash?",
      text: "It leaves its queue and no worker runs it, unless it is requeued from the trash. " +
        "Its key stays taken: posting it again answers the trashed job. A job a worker holds " +
        "cannot be trashed: cancel or stop its flow first.",
      ok: "move to the trash",
    },
    requeue: {
      title: "Requeue this job?",
      text: "It is posted again as it was (the same flow, flow id, inputs, queue, priority and " +
        "key), its claims and failures reset, and leaves the trash. A worker may run it at once.",
      ok: "requeue",
    },
    purge: {
      title: "Purge the trash?",
      text: "Every trash entry is deleted: none of these jobs can be requeued afterwards. Their " +
        "keys stay taken for the board's key retention.",
      ok: "purge the trash",
    },
  };

  function ask(what) {
    const a = ASK[what.kind];
    asking = what;
    const dlg = $("board-confirm");
    dlg.dataset.action = what.kind;
    $("board-confirm-title").textContent = a.title;
    $("board-confirm-text").textContent = a.text;
    const job = what.job || (what.entry && what.entry.job);
    $("board-confirm-job").replaceChildren(...(job ? [el("code", {}, job.job_id), " \u00b7 " + job.flow + " " +
      job.flow_id + " \u00b7 queue " + job.queue + (what.entry ? " \u00b7 trashed: " + what.entry.reason : "")] : []));
    $("board-reason-field").hidden = what.kind !== "trash";
    $("board-reason").value = "";
    $("board-confirm-ok").textContent = a.ok;
    $("board-confirm-ok").className = what.kind === "requeue" ? "primary" : "danger";
    $("board-confirm-ok").disabled = false;
    $("board-confirm-error").hidden = true;
    dlg.showModal();
    (what.kind === "trash" ? $("board-reason") : $("board-confirm-back")).focus();
  }

  function closeDialog() {
    $("board-confirm").close();
    asking = null;
  }

  async function confirmed() {
    const what = asking;
    if (!what) return;
    let path = "";
    let body = {};
    if (what.kind === "trash") {
      const reason = $("board-reason").value.trim();
      if (!reason) {
        $("board-confirm-error").textContent = "say why: the reason is kept with the trash entry";
        $("board-confirm-error").hidden = false;
        $("board-reason").focus();
        return;
      }
      path = "/jobs/" + encodeURIComponent(what.job.job_id) + "/trash";
      body = { reason };
    } else if (what.kind === "requeue") {
      path = "/trash/" + encodeURIComponent(what.entry.trash_id) + "/requeue";
    } else {
      path = "/trash/purge";
    }
    sessionStorage.setItem("flowcoord-token", $("token").value);
    $("board-confirm-ok").disabled = true;
    let resp = null;
    let answer = {};
    try {
      resp = await fetch(API + path, {
        method: "POST",
        headers: Object.assign({ "Content-Type": "application/json" }, ui.authHeaders()),
        body: JSON.stringify(body),
      });
      answer = await resp.json().catch(() => ({}));
    } catch (err) {
      answer = { error: err.message };
    }
    $("board-confirm-ok").disabled = false;
    const out = $("board-result");
    if (resp && resp.ok) {
      closeDialog();
      out.className = "muted";
      if (what.kind === "trash") out.textContent = "trashed " + what.job.flow_id + " (" + answer.trash_id + ")";
      else if (what.kind === "requeue") out.textContent = "requeued " + answer.flow_id + " on queue " + answer.queue;
      else out.textContent = "purged " + answer.purged + (answer.purged === 1 ? " entry" : " entries");
      lastQueues = "";
      poll();
      return;
    }
    const text = what.kind + " failed: " + (answer.error || (resp ? resp.statusText : "no answer")) +
      (answer.hint ? " (" + answer.hint + ")" : "");
    $("board-confirm-error").textContent = text;
    $("board-confirm-error").hidden = false;
    out.className = "error";
    out.textContent = text;
    if (resp && (resp.status === 401 || resp.status === 403)) {
      closeDialog();  // the token is typed in the page's header
      $("token").focus();
    }
  }

  // -- routing and polling -------------------------------------------------------------------

  async function tick() {
    try {
      if (page === "queues") await refreshQueues();
      else if (page === "members") await refreshMembers();
      ui.bumpRefreshes();
    } catch (err) {
      ui.setStatus("error: " + err.message);
    }
  }

  function poll() {
    clearTimeout(timer);
    const started = page;
    if (!started) return;
    tick().finally(() => {
      if (page === started) timer = setTimeout(poll, POLL_MS);
    });
  }

  function route() {
    const m = location.hash.match(/^#\/(queues|members)\b/);
    const flows = /^#\/flows\//.test(location.hash) || !m;
    page = m ? m[1] : null;
    for (const a of document.querySelectorAll("header .nav a")) {
      const current = a.dataset.page === (page || (flows ? "flows" : ""));
      if (current) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    $("queues-view").hidden = page !== "queues";
    $("members-view").hidden = page !== "members";
    if (page !== "queues" && $("board-confirm").open) closeDialog();
    lastQueues = lastMembers = "";
    if (page === "queues") $("board-result").textContent = "";
    poll();
  }

  frames();
  window.addEventListener("hashchange", route);
  route();
})();
