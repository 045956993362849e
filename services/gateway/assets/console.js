// The operator's console: every room live (GET /admin/rooms every 2 s) with its phase, the rate
// in effect and why, its seats and idle give-backs, charts of the last minutes drawn as inline
// SVG from the history routes, pause/resume, the admission rate and active cap and the
// scheduled opening per room (PATCH /admin/rooms/{room}), and the change log. The credential (the
// admin token, or an operator's bearer JWT) is kept in sessionStorage: gone with the tab.
"use strict";

(function () {
  const T = window.Ticketing;
  const { $, el } = T;
  const root = $("#console");
  const session = T.storage(window.sessionStorage);
  const KEY = "ticketing.console.v1.credential";

  let config = { auth: "trusted", devSignIn: false };
  let credential = session.get(KEY);
  let live = false;
  const timers = {};
  const roomHistory = {}; // room -> samples
  let routeHistory = {}; // route -> samples
  let routeHistoryMissing = false; // an older gateway without GET /admin/routes/history

  const schedule = (name, fn, ms) => {
    clearTimeout(timers[name]);
    timers[name] = setTimeout(fn, ms);
  };
  const stopAll = () => Object.keys(timers).forEach((name) => clearTimeout(timers[name]));

  const setState = (state) => {
    root.dataset.state = state;
    for (const section of root.querySelectorAll("section[data-view]")) section.hidden = section.dataset.view !== state;
    root.setAttribute("aria-busy", "false");
    $("#sign-out").hidden = state === "sign-in";
    $("#operator").hidden = state === "sign-in";
  };

  const say = (text, kind) => {
    const box = $("#message");
    box.textContent = text || "";
    box.hidden = !text;
    box.className = kind || "";
  };

  const admin = (method, path, body) => T.call(method, path, { body, bearer: credential });

  /** What a refusal means for an operator, and what to do about it. */
  const refusal = (reply) => {
    switch (reply.code) {
      case "AUTH_REQUIRED":
        return "Sign in to use the console.";
      case "AUTH_INVALID":
        return config.auth === "jwt"
          ? "That bearer token was not accepted (wrong signature, issuer or audience, or it has run out). Get a fresh one and sign in again."
          : "That admin token is not the gateway's. Check GATEWAY_ADMIN_TOKEN and sign in again.";
      case "ADMIN_ROLE_REQUIRED":
        return "You are signed in, but this user is not an operator (the token's roles claim lacks the admin role). Sign in as an operator.";
      case "ADMIN_CLOSED":
        return "The console is closed: this gateway has no way to know an operator. Start it with GATEWAY_ADMIN_TOKEN set (trusted mode), or in jwt mode, where operators carry the admin role.";
      case "INVALID_ROOM":
        return "That is not a room name (default or concert-<id>).";
      case "ROOM_NOT_FOUND":
        return "That room does not exist (no such concert, or the concert waits in the default room).";
      case "INVALID_ROOM_SETTINGS":
        return /opensAt|prequeueOpensAt/.test(reply.message || "")
          ? `The schedule was refused: ${reply.message}`
          : `The settings were refused: ${reply.message}. The admission rate is a number from 0 up, the active cap a whole number from 0 up.`;
      case "ROOM_SETTINGS_CONTENDED":
        return "Other operators kept changing this room at the same moment. Check the room and try again.";
      case "INVALID_BODY":
      case "INVALID_JSON":
        return `The gateway could not read the change: ${reply.message}`;
      case "NOT_FOUND":
        return "This gateway has no admin API (it is older than this console). Upgrade it.";
      case "NETWORK":
        return "The gateway cannot be reached. Retrying.";
      default:
        return `The gateway answered ${reply.status} ${reply.code}: ${reply.message}`;
    }
  };

  const handleRefusal = (reply) => {
    if (reply.code === "AUTH_REQUIRED" || reply.code === "AUTH_INVALID" || reply.code === "ADMIN_ROLE_REQUIRED") {
      signOut();
      say(refusal(reply), "error");
      return true;
    }
    if (reply.code === "ADMIN_CLOSED" || reply.code === "NOT_FOUND") {
      live = false;
      stopAll();
      setState("error");
      say(refusal(reply), "error");
      return true;
    }
    return false;
  };

  // ---- sign-in -------------------------------------------------------------------------------

  const showSignIn = () => {
    setState("sign-in");
    const jwt = config.auth === "jwt";
    $("#admin-token-label").textContent = jwt ? "Operator's bearer token (JWT)" : "Admin token";
    $("#admin-token-hint").textContent = jwt
      ? "A token from your identity provider whose roles claim includes admin."
      : "The value of the gateway's GATEWAY_ADMIN_TOKEN.";
    $("#dev-sign-in").hidden = !(jwt && config.devSignIn);
    $("#admin-token").focus();
  };

  const signIn = async (value) => {
    credential = value.trim();
    if (!credential) {
      say("Enter the credential first.", "error");
      return;
    }
    const reply = await admin("GET", "/admin/rooms");
    if (!reply.ok) {
      if (!handleRefusal(reply)) say(refusal(reply), "error");
      return;
    }
    session.set(KEY, credential);
    $("#admin-token").value = "";
    say("");
    goLive(reply.json);
  };

  const signOut = () => {
    live = false;
    stopAll();
    credential = null;
    session.remove(KEY);
    showSignIn();
  };

  const showOperator = () => {
    const claims = config.auth === "jwt" ? T.jwtClaims(credential || "") : null;
    $("#operator").textContent = claims ? `Operator: user ${claims.sub}` : "Signed in with the admin token";
  };

  // ---- live ----------------------------------------------------------------------------------

  const goLive = (first) => {
    live = true;
    setState("live");
    showOperator();
    render(first);
    schedule("rooms", pollRooms, 2000);
    pollHistory();
    pollChanges();
  };

  const pollRooms = async () => {
    if (!live) return;
    const reply = await admin("GET", "/admin/rooms");
    if (!live) return;
    if (reply.ok) {
      if ($("#message").className === "warn") say("");
      render(reply.json);
    } else if (!handleRefusal(reply)) {
      say(`${refusal(reply)} (showing the last figures)`, "warn");
    }
    schedule("rooms", pollRooms, T.transient(reply) ? T.retryDelay(reply, 1) * 1000 : 2000);
  };

  const pollHistory = async () => {
    if (!live) return;
    const rooms = [...root.querySelectorAll("#rooms tr[data-room]")].map((row) => row.dataset.room);
    const replies = await Promise.all([
      routeHistoryMissing ? { ok: false } : admin("GET", "/admin/routes/history"),
      ...rooms.map((room) => admin("GET", `/admin/rooms/${encodeURIComponent(room)}/history`)),
    ]);
    if (!live) return;
    const [routes, ...histories] = replies;
    if (routes.ok) routeHistory = Object.fromEntries(routes.json.routes.map((r) => [r.route, r.samples]));
    if (routes.status === 404) routeHistoryMissing = true;
    histories.forEach((reply, i) => {
      if (reply.ok) roomHistory[rooms[i]] = reply.json.samples;
    });
    drawCharts();
    schedule("history", pollHistory, 4000);
  };

  const pollChanges = async () => {
    if (!live) return;
    const reply = await admin("GET", "/admin/changes");
    if (reply.ok) renderChanges(reply.json.changes);
    schedule("changes", pollChanges, 5000);
  };

  const fields = ["waiting", "active", "admittedPerSecond", "droppedPerSecond", "waitAtBackSeconds"];
  const show = {
    waiting: (r) => T.int(r.waiting),
    active: (r) => T.int(r.active),
    admittedPerSecond: (r) => T.dec(r.admittedPerSecond),
    droppedPerSecond: (r) => T.dec(r.droppedPerSecond),
    waitAtBackSeconds: (r) => T.duration(r.waitAtBackSeconds),
  };

  const render = (data) => {
    const body = $("#rooms tbody");
    const seen = new Set();
    for (const room of data.rooms) {
      seen.add(room.room);
      let row = body.querySelector(`tr[data-room="${CSS.escape(room.room)}"]`);
      if (!row) {
        row = buildRow(room);
        body.append(row, buildDetail(room));
      }
      updateRow(row, room);
    }
    for (const row of body.querySelectorAll("tr[data-room]")) {
      if (!seen.has(row.dataset.room)) {
        const detail = body.querySelector(`tr[data-detail-for="${CSS.escape(row.dataset.room)}"]`);
        row.remove();
        if (detail) detail.remove();
      }
    }
    renderRoutes(data.routes || []);
    $("#updated").textContent = `Updated ${new Date().toLocaleTimeString("en-GB")}`;
  };

  const buildRow = (room) => {
    const id = room.room.replace(/[^a-z0-9-]/gi, "_");
    const rate = el("input", { type: "number", min: "0", step: "0.1", inputmode: "decimal", id: `rate-${id}`, "data-setting": "admissionRate" });
    const cap = el("input", { type: "number", min: "0", step: "1", inputmode: "numeric", id: `cap-${id}`, "data-setting": "activeCap" });
    for (const input of [rate, cap]) input.addEventListener("input", () => { input.dataset.dirty = "true"; });
    const name = el("th", { scope: "row", class: "room-name" },
      el("span", { class: "room-id", text: room.room }),
      el("span", { class: "room-title" }),
      el("span", { class: "badge overridden", text: "settings changed", hidden: true }));
    return el("tr", { "data-room": room.room },
      name,
      el("td", { class: "admission" },
        el("span", { class: "pill", "data-field": "paused" }),
        el("span", { class: "in-effect", "data-field": "in-effect" })),
      ...fields.map((field) => el("td", { class: "num", "data-field": field })),
      el("td", {}, el("div", { class: "controls" },
        el("button", { type: "button", "data-action": "pause", onclick: () => change(room.room, { paused: true }) }, "Pause"),
        el("button", { type: "button", "data-action": "resume", onclick: () => change(room.room, { paused: false }) }, "Resume"),
        el("span", { class: "setting" }, el("label", { for: `rate-${id}`, text: "Rate /s" }), rate),
        el("span", { class: "setting" }, el("label", { for: `cap-${id}`, text: "Active cap" }), cap),
        el("button", { type: "button", "data-action": "apply", onclick: () => apply(room.room) }, "Apply"))));
  };

  const buildDetail = (room) => {
    const id = room.room.replace(/[^a-z0-9-]/gi, "_");
    const input = (setting, label) => {
      const field = el("input", { type: "datetime-local", step: "60", id: `${setting}-${id}`, "data-schedule": setting, "aria-describedby": `schedule-hint-${id}` });
      field.addEventListener("input", () => { field.dataset.dirty = "true"; });
      return el("div", { class: "setting" }, el("label", { for: `${setting}-${id}`, text: label }), field);
    };
    const form = el("form", { class: "schedule", "data-schedule-for": room.room, "aria-labelledby": `schedule-title-${id}`, novalidate: true },
      el("h3", { id: `schedule-title-${id}`, text: "Scheduled opening" }),
      el("div", { class: "controls" },
        input("prequeueOpensAt", "Pre-queue opens"),
        input("opensAt", "Sale opens"),
        el("button", { type: "submit", "data-action": "schedule" }, "Save schedule"),
        el("button", { type: "button", "data-action": "clear-schedule", onclick: () => clearSchedule(room.room) }, "Clear schedule")),
      el("p", { class: "hint", id: `schedule-hint-${id}`, text: "In your time zone. Before the pre-queue opens, joining is refused; everyone who joins the pre-queue is put in a random order when the sale opens. A field left empty is cleared." }));
    form.addEventListener("submit", (event) => { event.preventDefault(); saveSchedule(room.room); });
    return el("tr", { class: "detail", "data-detail-for": room.room },
      el("td", { colspan: "8" }, el("div", { class: "room-detail" },
        el("div", { class: "room-facts" },
          el("dl", { class: "facts" },
            el("dt", { text: "Admission" }), el("dd", { class: "outflow", "data-field": "outflow" }),
            el("dt", { text: "Schedule" }), el("dd", { "data-field": "schedule" }),
            el("dt", { text: "Seats left" }), el("dd", { "data-field": "seats" }),
            el("dt", { text: "Idle give-backs" }), el("dd", { "data-field": "idled" })),
          form),
        el("div", { class: "charts" },
          el("figure", { class: "chart", "data-chart": "line" }, el("figcaption", { text: "Waiting and active, last 5 min" })),
          el("figure", { class: "chart", "data-chart": "flow" }, el("figcaption", { text: "Admitted and dropped per second" }))),
        el("div", { class: "table-wrap" },
          el("table", { class: "options" },
            el("caption", { class: "sr-only", text: `Seats per concert option in ${room.room}` }),
            el("thead", {}, el("tr", {},
              ...["Option", "Starts", "Venue", "Seats", "Free", "Held", "Sold"].map((h, i) => el("th", { scope: "col", class: i >= 3 ? "num" : null, text: h })))),
            el("tbody"))))));
  };

  /** The configured admission, and what the admitter applies now. */
  const admissionFigures = (room) => {
    const s = room.settings || {};
    if (s.admissionRate > 0) return `${T.dec(room.admissionRateInEffect)}/s of ${T.dec(s.admissionRate)}/s`;
    return `up to ${T.int(room.activeCapInEffect)} active of a cap of ${T.int(s.activeCap)}`;
  };

  /** Why admission runs where it does, as a sentence from outflowLimit and outflowDetail. */
  const outflowSentence = (room) => {
    const detail = room.outflowDetail ? room.outflowDetail.trim() : "";
    const why = (fallback) => detail || fallback;
    switch (room.outflowLimit) {
      case "paused":
        return "Admitting nobody: paused by an operator.";
      case "not-open":
        return `Admitting nobody: ${why(room.phase === "prequeue" ? "the pre-queue is open, the sale is not" : "the room has not opened yet")}.`;
      case "sold-out":
        return `Admitting nobody: ${why("no seat of the concert is free")}.`;
      case "hold-latency":
        return `Admitting ${admissionFigures(room)}: ${why("the reservation service's holds are slow")}.`;
      case "holds-in-flight":
        return `Admitting ${admissionFigures(room)}: ${why("too many holds in flight at the reservation service")}.`;
      case "reservation-unreachable":
        return `Admitting ${admissionFigures(room)}: ${why("the reservation service does not answer")}.`;
      case "recovering":
        return `Admitting ${admissionFigures(room)}: recovering, ${why("the reservation service copes again")}.`;
      default:
        return `Admitting ${admissionFigures(room)}${detail ? `: ${detail}` : ": nothing holds it back"}.`;
    }
  };

  const PHASES = { "not-open": "not open yet", prequeue: "pre-queue" };

  const scheduleText = (room) => {
    const parts = [];
    if (room.prequeueOpensAt) parts.push(`pre-queue opens ${T.when(room.prequeueOpensAt)}`);
    if (room.opensAt) parts.push(`sale opens ${T.when(room.opensAt)}`);
    if (!parts.length) return "none: the room is open";
    const phase = { open: "open now", "not-open": "not open yet", prequeue: "pre-queue open now" }[room.phase] || room.phase;
    return `${parts.join(", ")} (${phase})`;
  };

  /** An instant as a datetime-local input's value, in the operator's time zone. */
  const localInput = (iso) => {
    const date = new Date(iso || "");
    if (Number.isNaN(date.getTime())) return "";
    const pad = (n) => String(n).padStart(2, "0");
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
  };

  const updateRow = (row, room) => {
    const s = room.settings || {};
    // Paused wins; then a scheduled room's phase; else it admits as set.
    const state = row.querySelector('[data-field="paused"]');
    state.textContent = s.paused ? "paused" : PHASES[room.phase] || "admitting";
    state.classList.toggle("paused", !!s.paused);
    state.classList.toggle("scheduled", !s.paused && !!PHASES[room.phase]);
    row.classList.toggle("is-paused", !!s.paused);
    row.dataset.phase = room.phase || "open";
    for (const field of fields) row.querySelector(`[data-field="${field}"]`).textContent = show[field](room);
    row.querySelector(".room-title").textContent = room.title ? ` ${room.title}` : room.concertId ? "" : " shared room";
    // The rate in effect next to the configured one; the pill says why when nobody is admitted.
    const heldBack = !!room.outflowLimit && room.outflowLimit !== "none";
    const inEffect = row.querySelector('[data-field="in-effect"]');
    inEffect.textContent = room.outflowLimit === "sold-out" ? "sold out"
      : ["paused", "not-open"].includes(room.outflowLimit) ? "" : admissionFigures(room);
    inEffect.classList.toggle("held-back", heldBack);
    row.querySelector(".overridden").hidden = !s.overridden;
    row.querySelector('[data-action="pause"]').disabled = !!s.paused;
    row.querySelector('[data-action="resume"]').disabled = !s.paused;
    for (const input of row.querySelectorAll("input[data-setting]")) {
      if (input.dataset.dirty || document.activeElement === input) continue;
      const value = s[input.dataset.setting];
      input.value = value === undefined || value === null ? "" : String(value);
    }
    const detailRow = row.parentElement.querySelector(`tr[data-detail-for="${CSS.escape(room.room)}"]`);
    if (detailRow) {
      const outflow = detailRow.querySelector('[data-field="outflow"]');
      const sentence = outflowSentence(room);
      if (outflow.textContent !== sentence) outflow.textContent = sentence;
      outflow.dataset.limit = room.outflowLimit || "none";
      outflow.classList.toggle("held-back", heldBack);
      detailRow.querySelector('[data-field="schedule"]').textContent = scheduleText(room);
      detailRow.querySelector('[data-field="seats"]').textContent = room.seats
        ? `${T.int(room.seats.free)} free, ${T.int(room.seats.held)} held (may come back), ${T.int(room.seats.sold)} sold`
        : room.concertId ? "not counted yet" : "per option, below";
      detailRow.querySelector('[data-field="idled"]').textContent = room.idledTotal
        ? `${T.int(room.idledTotal)} admitted fans gave their slot back by doing nothing`
        : "none yet";
      for (const input of detailRow.querySelectorAll("input[data-schedule]")) {
        if (input.dataset.dirty || document.activeElement === input) continue;
        input.value = localInput(room[input.dataset.schedule]);
      }
    }
    const detail = detailRow && detailRow.querySelector("table.options tbody");
    if (detail) {
      detail.replaceChildren(...(room.options || []).map((o) => el("tr", {},
        el("th", { scope: "row", text: `#${o.concertOptionId}` }),
        el("td", { text: T.when(o.startsAt) }),
        el("td", { text: o.venue }),
        ...[o.seats, o.free, o.held, o.sold].map((n) => el("td", { class: "num", text: T.int(n) })))));
      if (!(room.options || []).length) detail.append(el("tr", {}, el("td", { colspan: "7", class: "hint", text: "No concert options wait in this room." })));
    }
  };

  const renderRoutes = (routes) => {
    const body = $("#routes tbody");
    const sorted = [...routes].sort((a, b) => b.requestsPerSecond - a.requestsPerSecond || a.route.localeCompare(b.route));
    body.replaceChildren(...sorted.map((r) => el("tr", { "data-route": r.route },
      el("th", { scope: "row" }, el("code", { text: r.route })),
      el("td", { class: "num", text: T.dec(r.requestsPerSecond) }),
      el("td", { class: "num", text: T.dec(r.p50Ms) }),
      el("td", { class: "num", text: T.dec(r.p99Ms) }),
      el("td", { class: "spark-cell" }, routeSpark(r.route)))));
    if (!sorted.length) body.append(el("tr", {}, el("td", { colspan: "5", class: "hint", text: "No requests in the last 10 s." })));
  };

  const routeSpark = (route) => {
    const samples = routeHistory[route] || [];
    return sparkline([{ values: samples.map((s) => s.requestsPerSecond), cls: "s1", name: "requests/s" }], 160, 28);
  };

  const drawCharts = () => {
    for (const [room, samples] of Object.entries(roomHistory)) {
      const detail = $(`#rooms tr[data-detail-for="${CSS.escape(room)}"]`);
      if (!detail) continue;
      const line = detail.querySelector('[data-chart="line"]');
      const flow = detail.querySelector('[data-chart="flow"]');
      replaceChart(line, sparkline([
        { values: samples.map((s) => s.waiting), cls: "s1", name: "waiting" },
        { values: samples.map((s) => s.active), cls: "s2", name: "active" },
      ], 320, 64));
      replaceChart(flow, sparkline([
        { values: samples.map((s) => s.admittedPerSecond), cls: "s2", name: "admitted/s" },
        { values: samples.map((s) => s.droppedPerSecond), cls: "s3", name: "dropped/s" },
      ], 320, 64));
    }
    for (const row of document.querySelectorAll("#routes tr[data-route]")) {
      row.querySelector(".spark-cell").replaceChildren(routeSpark(row.dataset.route));
    }
  };

  const replaceChart = (figure, svg) => {
    figure.querySelectorAll("svg, .legend").forEach((node) => node.remove());
    figure.append(svg, svg.legend);
  };

  /**
   * A small chart of one or more series sharing a y axis from 0 to their maximum: a polyline
   * each, with a text summary for screen readers and a legend with the latest values.
   */
  const sparkline = (series, width, height) => {
    const all = series.flatMap((s) => s.values).filter(Number.isFinite);
    const max = Math.max(1, ...all);
    const longest = Math.max(2, ...series.map((s) => s.values.length));
    const summary = series.map((s) => {
      const last = s.values[s.values.length - 1];
      return `${s.name} now ${T.dec(last)}, peak ${T.dec(Math.max(0, ...s.values.filter(Number.isFinite)))}`;
    }).join("; ");
    const svg = el("svg:svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "spark", role: "img", "aria-label": summary || "no data yet" });
    svg.append(el("svg:line", { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, class: "axis" }));
    for (const s of series) {
      const offset = longest - s.values.length;
      const points = s.values.map((v, i) => {
        const x = ((i + offset) / (longest - 1)) * width;
        const y = height - 2 - (Math.max(0, v) / max) * (height - 4);
        return `${x.toFixed(1)},${y.toFixed(1)}`;
      });
      if (points.length) svg.append(el("svg:polyline", { points: points.join(" "), class: `series ${s.cls}` }));
    }
    svg.append(el("svg:text", { x: width - 2, y: 10, class: "max", "text-anchor": "end", text: T.dec(max) }));
    svg.legend = el("div", { class: "legend" }, series.map((s) =>
      el("span", {}, el("span", { class: `key ${s.cls}`, "aria-hidden": "true" }), `${s.name} ${T.dec(s.values[s.values.length - 1])}`)));
    return svg;
  };

  /** The latest changes, newest first (the full log stays in GET /admin/changes). */
  const SHOWN_CHANGES = 12;
  const renderChanges = (changes) => {
    const list = $("#changes");
    list.replaceChildren(...changes.slice(0, SHOWN_CHANGES).map((c) => {
      const what = [];
      if (c.paused === true) what.push("paused admission");
      if (c.paused === false) what.push("resumed admission");
      if (c.admissionRate !== null && c.admissionRate !== undefined) what.push(`set the admission rate to ${T.dec(c.admissionRate)}/s`);
      if (c.activeCap !== null && c.activeCap !== undefined) what.push(`set the active cap to ${T.int(c.activeCap)}`);
      // Absent: not changed; null: cleared.
      if ("prequeueOpensAt" in c) what.push(c.prequeueOpensAt === null ? "cleared the pre-queue's opening" : `scheduled the pre-queue to open ${T.when(c.prequeueOpensAt)}`);
      if ("opensAt" in c) what.push(c.opensAt === null ? "cleared the sale's opening" : `scheduled the sale to open ${T.when(c.opensAt)}`);
      const at = new Date(c.at);
      return el("li", {},
        el("time", { datetime: c.at, text: Number.isNaN(at.getTime()) ? c.at : at.toLocaleString("en-GB") }),
        " ", el("strong", { text: c.actor }), ` ${what.join(", ") || "changed nothing"} in `, el("code", { text: c.room }));
    }));
    if (!changes.length) list.append(el("li", { class: "hint", text: "No settings changed yet." }));
    if (changes.length > SHOWN_CHANGES) list.append(el("li", { class: "hint older", text: `and ${T.int(changes.length - SHOWN_CHANGES)} older changes` }));
  };

  // ---- controls --------------------------------------------------------------------------------

  const change = async (room, settings) => {
    const row = $(`#rooms tr[data-room="${CSS.escape(room)}"]`);
    const detail = $(`#rooms tr[data-detail-for="${CSS.escape(room)}"]`);
    const buttons = [row, detail].filter(Boolean).flatMap((r) => [...r.querySelectorAll("button")]);
    buttons.forEach((b) => { b.disabled = true; });
    const reply = await admin("PATCH", `/admin/rooms/${encodeURIComponent(room)}`, settings);
    buttons.forEach((b) => { b.disabled = false; });
    if (!reply.ok) {
      if (!handleRefusal(reply)) say(refusal(reply), "error");
      return false;
    }
    say(`Saved for ${room}; in effect within one admission tick.`, "info");
    updateRow(row, reply.json);
    pollChanges();
    return true;
  };

  const apply = async (room) => {
    const row = $(`#rooms tr[data-room="${CSS.escape(room)}"]`);
    const rateInput = row.querySelector('input[data-setting="admissionRate"]');
    const capInput = row.querySelector('input[data-setting="activeCap"]');
    const settings = {};
    if (rateInput.value.trim() !== "") {
      const rate = Number(rateInput.value);
      if (!Number.isFinite(rate) || rate < 0) return say("The admission rate is a number of people per second, 0 or more.", "error");
      settings.admissionRate = rate;
    }
    if (capInput.value.trim() !== "") {
      const cap = Number(capInput.value);
      if (!Number.isSafeInteger(cap) || cap < 0) return say("The active cap is a whole number of people, 0 or more.", "error");
      settings.activeCap = cap;
    }
    if (!Object.keys(settings).length) return say("Enter an admission rate or an active cap first.", "error");
    if (await change(room, settings)) {
      delete rateInput.dataset.dirty;
      delete capInput.dataset.dirty;
    }
  };

  /** The schedule form's two instants (local time in the inputs) as the PATCH takes them. */
  const saveSchedule = async (room) => {
    const detail = $(`#rooms tr[data-detail-for="${CSS.escape(room)}"]`);
    const inputs = [...detail.querySelectorAll("input[data-schedule]")];
    const settings = {};
    for (const input of inputs) {
      if (input.value.trim() === "") {
        settings[input.dataset.schedule] = null;
        continue;
      }
      const at = new Date(input.value);
      if (Number.isNaN(at.getTime())) {
        input.focus();
        return say("Enter a date and a time, or leave the field empty to clear it.", "error");
      }
      settings[input.dataset.schedule] = at.toISOString();
    }
    if (settings.prequeueOpensAt && !settings.opensAt) {
      return say("A pre-queue needs a sale opening: fill in when the sale opens too.", "error");
    }
    if (settings.prequeueOpensAt && settings.opensAt && Date.parse(settings.opensAt) <= Date.parse(settings.prequeueOpensAt)) {
      return say("The sale must open after the pre-queue opens.", "error");
    }
    if (await change(room, settings)) inputs.forEach((input) => { delete input.dataset.dirty; });
  };

  const clearSchedule = async (room) => {
    const detail = $(`#rooms tr[data-detail-for="${CSS.escape(room)}"]`);
    const inputs = [...detail.querySelectorAll("input[data-schedule]")];
    if (await change(room, { prequeueOpensAt: null, opensAt: null })) {
      inputs.forEach((input) => { delete input.dataset.dirty; input.value = ""; });
    }
  };

  const revoke = async () => {
    const input = $("#revoke-token");
    const token = input.value.trim();
    if (!token) return say("Paste the queue token to revoke first.", "error");
    const reply = await admin("DELETE", `/admin/tokens/${encodeURIComponent(token)}`);
    if (!reply.ok) {
      if (reply.code === "INVALID_TOKEN") return say("That is not a queue token: tokens look like 3f2b1c9e-0d4a-4c1e-9a7b-2f6d8e1a5c3b.", "error");
      if (!handleRefusal(reply)) say(refusal(reply), "error");
      return;
    }
    input.value = "";
    say(reply.json.revoked ? "Revoked: that token's next call is refused." : "That token was already gone (released, expired, dropped or revoked).", "info");
  };

  // ---- start ---------------------------------------------------------------------------------

  const start = async () => {
    let reply;
    for (let attempt = 0; ; attempt++) {
      reply = await T.call("GET", "/app-config.json");
      if (!T.transient(reply)) break;
      await T.sleep(T.retryDelay(reply, attempt) * 1000);
    }
    if (reply.ok) config = reply.json;
    $("#sign-in-form").addEventListener("submit", (event) => { event.preventDefault(); signIn($("#admin-token").value); });
    $("#sign-out").addEventListener("click", () => { signOut(); say("Signed out.", "info"); });
    $("#revoke-form").addEventListener("submit", (event) => { event.preventDefault(); revoke(); });
    $("#retry").addEventListener("click", () => { say(""); if (credential) signIn(credential); else showSignIn(); });
    $("#dev-sign-in").addEventListener("submit", async (event) => {
      event.preventDefault();
      const userId = Number($("#dev-user-id").value);
      const token = await T.call("POST", "/dev/sign-in", { body: { userId, admin: true } });
      if (!token.ok) return say(`The development sign-in failed: ${token.code}: ${token.message}`, "error");
      signIn(token.json.token);
    });
    if (credential) signIn(credential);
    else showSignIn();
  };

  start();
})();
