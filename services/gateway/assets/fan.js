// The fan's page: join the line, wait (polling at the pace the queue asks), choose a date and a
// seat when admitted, hold it, top up, pay, and see the confirmation. State lives in the URL
// fragment (a bearer token handed over once), sessionStorage (who this tab is) and
// localStorage (each user's place in line, hold and confirmation), so a reload loses nothing.
"use strict";

(function () {
  const T = window.Ticketing;
  const { $, el } = T;
  const fan = $("#fan");
  const local = T.storage(window.localStorage);
  const session = T.storage(window.sessionStorage);

  const VIEWS = {
    join: "join", waiting: "waiting", paused: "waiting", prequeue: "prequeue", admitted: "admitted",
    held: "held", paid: "paid", dropped: "ended", expired: "ended", "sold-out": "ended",
    "sold-out-final": "ended", "not-open": "ended", error: "ended",
  };

  let config = { auth: "trusted", devSignIn: false, embedOrigins: [] };
  let me = null; // {userId, bearer?}
  let record = {}; // this user's stored place: {token, firstPosition, lastStatus, opensAt, concertId, hold, paid, payKey, soldOutForGood}
  let activeUntil = null; // ms, the gateway's clock
  let options = []; // the concert options offered, with free counts
  let current = null; // the option whose seat map is open
  let busy = false; // an action (hold, top up, pay) is under way
  let opensAt = null; // ms, the gateway's clock: when the pre-queue's order is drawn
  let queueSoldOut = false; // the queue itself said SOLD_OUT: it, not the seat counts, speaks for the line
  const seatGrades = local.get("ticketing.fan.v1.grades") || {}; // optionId -> {seatNo: [grade, price]}
  const timers = {};

  // ---- small helpers -------------------------------------------------------------------

  const schedule = (name, fn, ms) => {
    clearTimeout(timers[name]);
    timers[name] = setTimeout(fn, ms);
  };
  // The queue's advice plus up to a second at random: fans whose answers came back together
  // (after a store stall, a restart, a resume) would otherwise poll in the same instant for
  // ever after, and the admitted among them would all choose seats at once.
  const advised = (seconds) => seconds * 1000 + Math.random() * 1000;
  const cancel = (...names) => names.forEach((name) => {
    clearTimeout(timers[name]);
    delete timers[name];
  });

  const recordKey = () => `ticketing.fan.v1.user.${me.userId}`;
  const save = () => me && local.set(recordKey(), record);

  const setState = (state) => {
    fan.dataset.state = state;
    const view = VIEWS[state];
    for (const section of fan.querySelectorAll("section[data-view]")) {
      section.hidden = section.dataset.view !== view;
    }
    fan.setAttribute("aria-busy", "false");
  };

  /** Shows a sentence and the next step in #message (role=alert); empty hides it. */
  const say = (text, kind) => {
    const box = $("#message");
    box.textContent = text || "";
    box.hidden = !text;
    box.className = kind || "";
  };

  const userPart = () => (config.auth === "trusted" ? { userId: me.userId } : {});
  const call = (method, path, body, headers) =>
    T.call(method, path, { body, headers, bearer: me && me.bearer });

  /**
   * A call repeated while the gateway is busy, slow or unreachable (429/503/504/network),
   * after Retry-After, saying so; returns the first other answer. Safe to repeat: reads, and
   * writes carrying an Idempotency-Key (the first answer is replayed).
   */
  const persistent = async (method, path, body, headers, attempts) => {
    for (let attempt = 0; ; attempt++) {
      const reply = await call(method, path, body, headers);
      if (!T.transient(reply) || attempt + 1 >= (attempts || 6)) {
        if (attempt > 0 && reply.ok) say("");
        return reply;
      }
      const wait = T.retryDelay(reply, attempt);
      say(`${busyReason(reply)} Trying again in ${wait} s; you keep your place.`, "warn");
      await T.sleep(wait * 1000);
    }
  };

  const busyReason = (reply) => {
    if (reply.status === 0) return "The ticket system cannot be reached (check your connection).";
    if (reply.status === 429) return "Too many requests from you in a short time.";
    if (reply.status === 504 || reply.status === 408) return "The ticket system took too long to answer.";
    return "The ticket system is busy.";
  };

  /** Every error code of the HTTP contract as a sentence and the next step. */
  const describe = (reply) => {
    const sentences = {
      INVALID_JSON: "The page sent a request the system could not read. Reload the page and try again.",
      INVALID_BODY: "The page sent an incomplete request. Reload the page and try again.",
      INVALID_QUERY: "The page sent an incomplete request. Reload the page and try again.",
      INVALID_PATH: "The page asked for something that does not exist. Reload the page and try again.",
      INVALID_USER_ID: "A user number is a whole number from 1 up. Correct it and join again.",
      INVALID_CONCERT_ID: "The link names a concert that cannot exist. Check the link you followed.",
      INVALID_CONCERT_OPTION_ID: "That date cannot exist. Choose a date from the list.",
      INVALID_SEAT_ID: "That seat cannot exist. Choose a seat from the map.",
      INVALID_RESERVATION_ID: "That booking cannot exist. Choose a seat again.",
      CONCERT_NOT_FOUND: "That concert does not exist (any more). Check the link you followed.",
      OPTION_NOT_FOUND: "That date is no longer offered. Choose another date.",
      SEAT_NOT_FOUND: "That seat does not exist on this date. Choose another seat.",
      PAYLOAD_TOO_LARGE: "The request was too large. Reload the page and try again.",
      TOKEN_MISSING: "Your place in line was lost. Join the line again.",
      TOKEN_NOT_FOUND: "Your place in line is no longer known. Join the line again.",
      TOKEN_EXPIRED: "Your time ran out. Join the line again for a new turn.",
      TOKEN_NOT_ACTIVE: "It is not your turn yet. Stay on this page; it moves on by itself.",
      TOKEN_USER_MISMATCH: "This place in line belongs to another user. Join the line as yourself.",
      TOKEN_WRONG_ROOM: "That concert has its own line, and this place does not admit you to it. Choose a date listed here, or join that concert's line.",
      USER_MISMATCH: "You are signed in as someone else than this page expected. Reload the page.",
      SALE_NOT_OPEN: "The sale for this date has not opened yet. Try again when it opens.",
      ROOM_NOT_OPEN: "This waiting room is not open yet. Come back when it opens.",
      SEAT_LIMIT_REACHED: "You already hold or own as many seats for this concert as one person may. Pay for the seat you hold, or leave it.",
      SEAT_TAKEN: "Someone else took that seat a moment ago. The map is refreshed: choose another seat.",
      RESERVATION_NOT_FOUND: "That booking is not known. Choose a seat again.",
      NOT_YOUR_RESERVATION: "That booking belongs to another user. Choose a seat again.",
      INSUFFICIENT_BALANCE: "Your balance does not cover the price. Top up, then pay.",
      HOLD_EXPIRED: "Your hold ran out before the payment and the seat went back on sale. Choose a seat again.",
      ALREADY_PAID: "This seat is already paid for. Nothing more to do.",
      IDEMPOTENCY_KEY_REUSED: "The page repeated an earlier request by mistake. Try once more.",
      INVALID_AMOUNT: "A top-up must be more than zero. Try again.",
      AMOUNT_TOO_LARGE: "That top-up is larger than one top-up may be. Top up a smaller amount.",
      BALANCE_LIMIT_EXCEEDED: "That top-up would take your balance over its limit. Pay with what you have, or top up less.",
      AUTH_REQUIRED: "You are not signed in. Return to the site you came from and open this page again.",
      AUTH_INVALID: "Your sign-in was not accepted or has run out. Return to the site you came from and sign in again.",
      TOO_MANY_REQUESTS: "Too many requests in a short time. Wait a moment, then try again.",
      OVERLOADED: "The ticket system is very busy. Wait a moment, then try again.",
      SERVICE_UNAVAILABLE: "Part of the ticket system is unavailable. Wait a moment, then try again.",
      UPSTREAM_TIMEOUT: "The ticket system took too long to answer. Try again.",
      REQUEST_TIMEOUT: "The ticket system took too long to answer. Try again.",
      BODY_TIMEOUT: "The request took too long to send. Check your connection and try again.",
      NOT_FOUND: "This page is out of date. Reload it.",
      METHOD_NOT_ALLOWED: "This page is out of date. Reload it.",
      INTERNAL: "Something went wrong on our side. Try again in a moment.",
      NETWORK: "The ticket system cannot be reached. Check your connection and try again.",
    };
    return sentences[reply.code] || `Something went wrong (${reply.code}). Try again in a moment.`;
  };

  // ---- identity --------------------------------------------------------------------------

  const showSignedIn = () => {
    const badge = $("#signed-in-as");
    badge.hidden = !me;
    badge.textContent = !me ? "" : me.bearer ? `Signed in as user ${me.userId}` : `User ${me.userId}`;
  };

  const becomeUser = (userId, bearer) => {
    me = { userId, bearer };
    session.set("ticketing.fan.v1.me", me);
    if (!bearer) local.set("ticketing.fan.v1.lastUser", userId);
    record = local.get(recordKey()) || {};
    showSignedIn();
  };

  /** A bearer token handed over by the embedding site (or the development sign-in). */
  const acceptBearer = (token, quiet) => {
    const claims = T.jwtClaims(token);
    const userId = claims && Number(claims.sub);
    if (!Number.isSafeInteger(userId) || userId < 1) {
      say("The sign-in handed to this page is not one it can use. Return to the site you came from and open the page again.", "error");
      return false;
    }
    if (claims.exp && claims.exp * 1000 <= T.now()) {
      session.remove("ticketing.fan.v1.me");
      if (!quiet) say("Your sign-in has run out. Return to the site you came from and open this page again.", "error");
      return false;
    }
    becomeUser(userId, token);
    return true;
  };

  const signedOut = (reply) => {
    cancelAll();
    session.remove("ticketing.fan.v1.me");
    me = null;
    showSignedIn();
    showJoin();
    say(describe(reply), "error");
  };

  // ---- joining and waiting ----------------------------------------------------------------

  const showJoin = () => {
    setState("join");
    const trusted = config.auth === "trusted";
    $("#trusted-join").hidden = !trusted;
    $("#jwt-join").hidden = trusted || !!me;
    $("#join").disabled = !trusted && !me;
    $("#dev-sign-in").hidden = trusted || !config.devSignIn || !!me;
    if (trusted) {
      const last = (me && me.userId) || local.get("ticketing.fan.v1.lastUser");
      if (last && !$("#user-id").value) $("#user-id").value = last;
    }
  };

  const join = async () => {
    if (config.auth === "trusted") {
      const typed = $("#user-id").value.trim();
      const userId = typed ? Number(typed) : me ? me.userId : NaN;
      if (!Number.isSafeInteger(userId) || userId < 1) {
        say("Enter your user number (a whole number from 1 up), then join.", "error");
        $("#user-id").focus();
        return;
      }
      becomeUser(userId);
    } else if (!me) {
      say("You are not signed in yet. Return to the site you came from and open this page again.", "error");
      return;
    }
    say("");
    $("#join").disabled = true;
    const concertId = Number(new URLSearchParams(location.search).get("concert")) || undefined;
    const reply = await persistent("POST", "/queue/issue-token", { ...userPart(), concertId });
    $("#join").disabled = false;
    if (!reply.ok) return failed(reply);
    record = { firstPosition: reply.json.position, concertId: reply.json.concertId || concertId };
    onEntry(reply.json);
  };

  /** A queue entry from issue-token or check-queue. */
  const onEntry = (entry) => {
    record.token = entry.token;
    record.lastStatus = entry.status;
    record.soldOutForGood = false;
    if (entry.concertId) record.concertId = entry.concertId;
    const pace = Math.min(30, Math.max(1, entry.pollAfterSeconds || 2));
    const wasQueueSoldOut = queueSoldOut;
    queueSoldOut = entry.status === "SOLD_OUT";
    if (entry.status === "PREQUEUE") {
      record.opensAt = entry.opensAt || null;
      save();
      showPrequeue();
      return schedule("poll", poll, advised(pace));
    }
    if (entry.status === "SOLD_OUT") {
      save();
      if (!entry.seatsMayReturn) return soldOutForGood();
      showQueueSoldOut(entry);
      return schedule("poll", poll, advised(pace));
    }
    if (entry.status === "ACTIVE") {
      // Before the first hold the turn ends at chooseBy, if the room sets one.
      const until = Date.parse(entry.activeUntil) || null;
      const chooseBy = Date.parse(entry.chooseBy) || null;
      activeUntil = chooseBy && until ? Math.min(chooseBy, until) : until;
      $("#choose-hint").hidden = !chooseBy;
      save();
      cancel("poll");
      schedule("poll", poll, 5000);
      if (record.hold && Date.parse(record.hold.expiresAt) > T.now()) {
        if (fan.dataset.state !== "held") showHeld();
      } else {
        record.hold = null;
        const shown = ["admitted", "sold-out", "not-open"].includes(fan.dataset.state);
        if (!shown || !timers.browse) showAdmitted();
      }
      return;
    }
    save();
    // A seat came back (the queue says WAITING again), or the pre-queue's order was drawn.
    if (wasQueueSoldOut && fan.dataset.state === "sold-out") say("");
    // Sold out or not open by the seat counts: the place is kept (polling goes on) but the
    // page keeps saying why.
    const held = ["sold-out", "not-open"].includes(fan.dataset.state) && !wasQueueSoldOut;
    if (!held) showWaiting(entry);
    schedule("poll", poll, advised(pace));
  };

  /** "today at 10:00", "on Tuesday 15 January at 10:00" (the fan's own time zone). */
  const localMoment = (ms) => {
    const date = new Date(ms);
    const time = date.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
    const today = new Date(T.now());
    if (date.toDateString() === today.toDateString()) return `today at ${time}`;
    const day = date.toLocaleDateString("en-GB", { weekday: "long", day: "numeric", month: "long" });
    return `on ${day} at ${time}`;
  };

  /** In the pre-queue: when the sale opens, why there is no rush, and a countdown. */
  const showPrequeue = () => {
    const at = Date.parse(record.opensAt || "");
    opensAt = Number.isFinite(at) ? at : null;
    if (fan.dataset.state !== "prequeue") setState("prequeue");
    // The sentence is the page's (fan.html); only the moment is filled in.
    const time = $("#opens-at");
    const moment = opensAt ? localMoment(opensAt) : "soon";
    if (time.textContent !== moment) time.textContent = moment;
    if (opensAt) time.setAttribute("datetime", new Date(opensAt).toISOString());
    else time.removeAttribute("datetime");
    tick();
  };

  /** The queue says no seat is free, but held seats may come back: the place is kept. */
  const showQueueSoldOut = (entry) => {
    const text = "Every seat is taken right now. Some are held by fans who have not paid yet: if their time runs out, those seats come back and the line moves again. You keep your place.";
    if (fan.dataset.state !== "sold-out") setState("sold-out");
    $("#ended-title").textContent = "Every seat is taken";
    $("#ended-detail").textContent = entry.position ? `Your place in line: ${T.int(entry.position)}. This page checks again by itself.` : "This page checks again by itself.";
    $("#ended-detail").hidden = false;
    if ($("#message").textContent !== text) say(text, "warn");
    $("#rejoin").hidden = true;
  };

  /** Every seat is sold: nothing can come back, so the page stops asking. */
  const soldOutForGood = () => {
    cancelAll();
    record.soldOutForGood = true;
    save();
    setState("sold-out-final");
    $("#ended-title").textContent = "Sold out";
    $("#ended-detail").hidden = true;
    say("Sold out: every seat has been sold.", "error");
    $("#rejoin").hidden = false;
    $("#rejoin").textContent = "Check again";
  };

  /** Joining refused before the waiting room opens: when it does (the queue's message says). */
  const roomNotOpen = (reply) => {
    const stamp = /\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})/.exec(reply.message || "");
    const at = stamp ? Date.parse(stamp[0]) : NaN;
    if (Number.isFinite(at)) {
      return say(`This waiting room opens ${localMoment(at)}. Come back then: everyone who joins between then and the start of the sale is put in a random order, so there is no need to be first.`, "warn");
    }
    say(reply.message ? `This waiting room is not open yet: ${reply.message}` : describe(reply), "warn");
  };

  const showWaiting = (entry) => {
    const wasWaiting = fan.dataset.state === "waiting" || fan.dataset.state === "paused";
    const before = Number($("#position").textContent);
    setState(entry.paused ? "paused" : "waiting");
    record.firstPosition = Math.max(record.firstPosition || 0, entry.position);
    save();
    $("#position").textContent = String(entry.position);
    $("#waiting-title").textContent = entry.paused ? "The line is paused" : "You are in line";
    $("#eta").textContent = entry.paused ? "paused" : `${T.roughWait(entry.etaSeconds)} (${T.duration(entry.etaSeconds)})`;
    const progress = $("#progress");
    progress.max = record.firstPosition;
    progress.value = record.firstPosition - entry.position + 1;
    let sentence;
    if (entry.paused) {
      sentence = `The organiser has paused admission. You keep place ${entry.position}; the line moves again when they resume.`;
    } else if (!wasWaiting || !Number.isFinite(before)) {
      sentence = entry.position === 1 ? "You are next in line." : `You are number ${entry.position} in line.`;
    } else if (entry.position < before) {
      sentence = entry.position === 1 ? "You moved up: you are next in line." : `You moved up to number ${entry.position}.`;
    } else {
      sentence = null; // unchanged: say nothing new
    }
    const status = $("#status");
    if (sentence && status.textContent !== sentence) status.textContent = sentence;
    if (!timers.browse) watchSupply();
  };

  const poll = async () => {
    if (!record.token) return;
    const reply = await call("GET", `/queue/check-queue?token=${encodeURIComponent(record.token)}`);
    if (reply.ok) {
      if (!["sold-out", "not-open"].includes(fan.dataset.state) && $("#message").className === "warn") say("");
      return onEntry(reply.json);
    }
    if (T.transient(reply)) {
      const wait = T.retryDelay(reply, 1);
      say(`${busyReason(reply)} Checking again in ${wait} s; you keep your place.`, "warn");
      return schedule("poll", poll, advised(wait));
    }
    failed(reply);
  };

  /** The place in line is gone: dropped while waiting, expired once admitted. */
  const lost = (reply) => {
    cancelAll();
    const wasActive = record.lastStatus === "ACTIVE";
    record = { paid: record.paid };
    save();
    setState(wasActive ? "expired" : "dropped");
    $("#ended-detail").hidden = true;
    $("#ended-title").textContent = wasActive ? "Your turn has ended" : "You lost your place in line";
    say(
      wasActive
        ? "Your time to choose a seat ran out, so the turn went to the next person. Join the line again for a new turn."
        : reply.code === "TOKEN_EXPIRED"
          ? "This page stopped checking in with the line for too long (for example the computer slept or the tab was closed), so the place was given up. Join the line again for a new place."
          : "Your place in line is no longer known. Join the line again for a new place.",
      "error",
    );
    $("#rejoin").hidden = false;
    $("#rejoin").focus();
  };

  /** Whatever went wrong, said in words, with the state it leads to. */
  const failed = (reply) => {
    switch (reply.code) {
      case "TOKEN_EXPIRED":
      case "TOKEN_NOT_FOUND":
      case "TOKEN_MISSING":
        return lost(reply);
      case "AUTH_REQUIRED":
      case "AUTH_INVALID":
        return signedOut(reply);
      case "TOKEN_NOT_ACTIVE":
        say(describe(reply), "warn");
        return poll();
      case "SALE_NOT_OPEN":
        return notOpen();
      case "ROOM_NOT_OPEN":
        cancelAll();
        if (fan.dataset.state !== "join") showJoin();
        return roomNotOpen(reply);
      default:
        if (fan.dataset.state === "join") return say(describe(reply), "error");
        if (["admitted", "held"].includes(fan.dataset.state)) return say(describe(reply), "error");
        setState("error");
        $("#ended-title").textContent = "Something went wrong";
        $("#ended-detail").hidden = true;
        $("#rejoin").hidden = false;
        $("#rejoin").textContent = "Try again";
        say(describe(reply), "error");
    }
  };

  // ---- concerts, options, seats ------------------------------------------------------------

  /** The options of the concerts this place in line admits to, with free-seat counts. */
  const loadOptions = async () => {
    let concertIds;
    if (record.concertId) {
      concertIds = [record.concertId];
    } else {
      const concerts = await persistent("GET", "/api/concert/get-concerts");
      if (!concerts.ok) return null;
      concertIds = concerts.json.map((c) => c.id);
      record.titles = Object.fromEntries(concerts.json.map((c) => [c.id, c.title]));
    }
    const lists = await Promise.all(
      concertIds.slice(0, 10).map((id) => persistent("GET", `/api/concert/concert/${id}/available-concert-options`)),
    );
    if (lists.some((list) => !list.ok)) return null;
    return lists.flatMap((list) => list.json);
  };

  const isOpen = (option) => !option.saleOpensAt || Date.parse(option.saleOpensAt) <= T.now();

  /** While waiting or admitted: whether there is anything left to choose. */
  const watchSupply = async () => {
    const found = await loadOptions();
    const state = fan.dataset.state;
    if (state === "sold-out-final") return; // nothing can come back: stop asking
    // The queue speaks for the line while it says SOLD_OUT, and in the pre-queue.
    if (found && (queueSoldOut || state === "prequeue")) {
      options = found;
    } else if (found) {
      options = found;
      const free = options.some((o) => o.availableSeats > 0);
      const open = options.some(isOpen);
      if (!free && options.length) return soldOut();
      if (state === "sold-out") {
        say("");
        if (record.lastStatus === "ACTIVE") showAdmitted();
        else {
          setState("waiting");
          poll();
        }
      }
      if (!open && options.length && record.lastStatus === "ACTIVE") return notOpen();
      if (state === "not-open" && open) showAdmitted();
      if (fan.dataset.state === "admitted") renderOptions();
    }
    schedule("browse", watchSupply, fan.dataset.state === "admitted" ? 10000 : 15000);
  };

  const soldOut = () => {
    setState("sold-out");
    $("#ended-title").textContent = "Every seat is taken";
    $("#ended-detail").hidden = true;
    say(
      "Every seat is sold or held right now. Held seats that are not paid return in a few minutes; this page keeps your place and checks again by itself.",
      "warn",
    );
    $("#rejoin").hidden = true;
    schedule("browse", watchSupply, 5000);
  };

  const notOpen = () => {
    const opens = options.map((o) => Date.parse(o.saleOpensAt)).filter(Number.isFinite).sort((a, b) => a - b)[0];
    setState("not-open");
    $("#ended-title").textContent = "The sale has not opened yet";
    $("#ended-detail").hidden = true;
    say(
      opens ? `The sale opens on ${T.when(new Date(opens).toISOString())}. This page checks again by itself.`
        : "The sale has not opened yet. This page checks again by itself.",
      "warn",
    );
    $("#rejoin").hidden = true;
    schedule("browse", watchSupply, 10000);
  };

  const showAdmitted = () => {
    setState("admitted");
    tick();
    watchSupply();
    if (current) openSeats(current.id);
  };

  const optionLabel = (o) => {
    const title = record.titles && record.titles[o.concertId];
    return `${title ? `${title}, ` : ""}${T.when(o.startsAt)}, ${o.venue}`;
  };

  /** One concert: its title goes in the heading and each date is just a date. */
  const oneConcert = () => options.length > 0 && options.every((o) => o.concertId === options[0].concertId);

  /** One button per option, updated in place (a keyboard user's focus stays put). */
  const renderOptions = () => {
    const box = $("#options");
    const ids = options.map((o) => o.id).join(",");
    if (box.dataset.ids !== ids) {
      box.dataset.ids = ids;
      box.replaceChildren(...options.map((o) => el("button", {
        type: "button", class: "option", "data-option-id": o.id, onclick: () => openSeats(o.id),
      }, el("span", { class: "option-when" }), el("span", { class: "option-free" }))));
    }
    const single = oneConcert();
    const title = single && record.titles && record.titles[options[0].concertId];
    $("#options-title").textContent = title ? `Choose a date for ${title}` : "Choose a date";
    for (const o of options) {
      const button = box.querySelector(`button[data-option-id="${o.id}"]`);
      const open = isOpen(o);
      const free = o.availableSeats;
      button.querySelector(".option-when").textContent = single ? T.when(o.startsAt) : optionLabel(o);
      button.querySelector(".option-free").textContent = (single ? `${o.venue} · ` : "") + (!open ? `sale opens ${T.when(o.saleOpensAt)}`
        : free === 0 ? "sold out" : `${T.int(free)} of ${T.int(o.totalSeats)} free`);
      button.disabled = !open || free === 0;
      button.setAttribute("aria-pressed", current && current.id === o.id ? "true" : "false");
    }
  };

  const openSeats = async (optionId) => {
    current = options.find((o) => o.id === optionId) || current;
    if (!current) return;
    renderOptions();
    const reply = await persistent("GET", `/api/concert/${optionId}/available-seats`);
    if (!current || current.id !== optionId || fan.dataset.state !== "admitted") return;
    if (!reply.ok) return say(describe(reply), "error");
    renderSeats(current, reply.json);
    schedule("seats", () => openSeats(optionId), 3000);
  };

  /**
   * The seat map: every seat of the option (1..totalSeats), grouped by grade, the free ones
   * (what the API lists) enabled. A taken seat's grade is remembered from an earlier look; one
   * never seen free takes its neighbour's (grades are laid out in blocks of seat numbers).
   */
  const renderSeats = (option, free) => {
    const known = (seatGrades[option.id] = seatGrades[option.id] || {});
    for (const seat of free) known[seat.id] = [seat.grade, seat.price];
    local.set("ticketing.fan.v1.grades", seatGrades);
    const freeIds = new Set(free.map((s) => s.id));
    const seats = [];
    let last = null;
    for (let n = 1; n <= option.totalSeats; n++) {
      if (known[n]) last = known[n];
      seats.push({ n, info: known[n] || last });
    }
    const firstKnown = seats.find((s) => s.info);
    for (const seat of seats) if (!seat.info) seat.info = firstKnown ? firstKnown.info : ["Seat", null];
    const grades = [];
    for (const seat of seats) if (!grades.some((g) => g[0] === seat.info[0])) grades.push(seat.info);

    const map = $("#seat-map");
    const same = map.dataset.optionId === String(option.id) && map.querySelectorAll("button.seat").length === seats.length;
    if (!same) {
      map.dataset.optionId = option.id;
      map.replaceChildren(
        ...grades.map(([grade, price], index) => el("div", { class: `grade-block grade-${index}` },
          el("h3", { text: `${grade}${price !== null ? ` · ${T.int(price)}` : ""}` }),
          el("div", { class: "seats" }, seats.filter((s) => s.info[0] === grade).map((s) => el("button", {
            type: "button", class: `seat grade-${index}`, "data-seat-id": s.n, "data-grade": grade,
            onclick: () => hold(option, s.n),
          }, String(s.n)))))),
      );
      $("#legend").replaceChildren(
        ...grades.map(([grade, price], index) => el("li", {}, el("span", { class: `swatch grade-${index}`, "aria-hidden": "true" }),
          `${grade}: ${price !== null ? T.int(price) : "price unknown"}`)),
        el("li", {}, el("span", { class: "swatch taken", "aria-hidden": "true" }), "taken"),
      );
    }
    for (const button of map.querySelectorAll("button.seat")) {
      const n = Number(button.dataset.seatId);
      const taken = !freeIds.has(n);
      const info = seats[n - 1].info;
      button.disabled = taken || busy;
      button.classList.toggle("taken", taken);
      button.setAttribute("aria-label", `Seat ${n}, ${info[0]}${info[1] !== null ? `, ${T.int(info[1])}` : ""}${taken ? ", taken" : ""}`);
    }
    $("#seat-help").textContent = freeIds.size
      ? `${T.int(freeIds.size)} seats free on ${optionLabel(option)}. Choose one to hold it while you pay (arrow keys move between free seats).`
      : `No seat is free on ${optionLabel(option)} right now. Choose another date, or wait: unpaid holds return.`;
  };

  const setBusy = (value) => {
    busy = value;
    fan.setAttribute("aria-busy", value ? "true" : "false");
    for (const button of fan.querySelectorAll("#seat-map button.seat:not(.taken), #top-up, #pay")) button.disabled = value;
  };

  const hold = async (option, seatNo) => {
    if (busy) return;
    setBusy(true);
    say(`Holding seat ${seatNo}…`, "info");
    const body = { token: record.token, concertOptionId: option.id, seatId: seatNo, ...userPart() };
    const reply = await persistent("POST", "/api/reserve", body, { "idempotency-key": T.newKey() });
    setBusy(false);
    if (reply.ok) {
      say("");
      record.hold = { ...reply.json, label: optionLabel(option) };
      record.payKey = null;
      save();
      cancel("seats");
      return showHeld();
    }
    if (reply.code === "SEAT_TAKEN" || reply.code === "SEAT_NOT_FOUND") {
      say(reply.code === "SEAT_TAKEN"
        ? `Someone else took seat ${seatNo} a moment ago. The map is refreshed: choose another seat.`
        : describe(reply), "error");
      await openSeats(option.id);
      const next = $("#seat-map button.seat:not(:disabled)");
      if (next) next.focus();
      return;
    }
    failed(reply);
  };

  // ---- hold, top-up, payment -------------------------------------------------------------------

  const showHeld = async () => {
    const h = record.hold;
    setState("held");
    $("#held-seat").textContent = `Seat ${h.seatId} (${h.grade}), ${h.label || `date ${h.concertOptionId}`}.`;
    $("#held-price").textContent = T.int(h.price);
    tick();
    await refreshBalance();
    $("#pay").focus();
  };

  const refreshBalance = async () => {
    const reply = await persistent("GET", `/api/users/${me.userId}/balance`);
    if (!reply.ok) return failed(reply);
    showBalance(reply.json.balance);
  };

  const showBalance = (balance) => {
    record.balance = balance;
    $("#balance").textContent = T.int(balance);
    const short = record.hold ? record.hold.price - balance : 0;
    const topUp = $("#top-up");
    topUp.disabled = short <= 0 || busy;
    topUp.textContent = short > 0 ? `Top up ${T.int(short)}` : "Balance covers the price";
  };

  const topUp = async () => {
    const short = record.hold.price - (record.balance || 0);
    if (short <= 0 || busy) return;
    setBusy(true);
    const reply = await persistent("POST", `/api/users/${me.userId}/balance/charge`, { amount: short }, { "idempotency-key": T.newKey() });
    setBusy(false);
    if (!reply.ok) return failed(reply);
    say(`Topped up ${T.int(short)}. Now pay to keep the seat.`, "info");
    showBalance(reply.json.balance);
    $("#pay").focus();
  };

  const pay = async () => {
    if (busy) return;
    setBusy(true);
    say("Paying…", "info");
    const h = record.hold;
    const body = { reservationId: h.reservationId, token: record.token, ...userPart() };
    // One key while the outcome is unknown (a repeat then gets the first answer); a fresh one
    // after a definite answer, so a payment refused for the balance can go through after a top-up.
    record.payKey = record.payKey || T.newKey();
    save();
    const reply = await persistent("POST", "/api/payments", body, { "idempotency-key": record.payKey });
    if (!T.transient(reply)) record.payKey = null;
    setBusy(false);
    if (reply.ok) {
      say("");
      return paid(reply.json);
    }
    switch (reply.code) {
      case "INSUFFICIENT_BALANCE":
        say(`Your balance is short by ${T.int(h.price - (record.balance || 0))}. Top up, then pay.`, "error");
        await refreshBalance();
        return $("#top-up").focus();
      case "HOLD_EXPIRED":
        record.hold = null;
        save();
        showAdmitted();
        return say(describe(reply), "error");
      case "ALREADY_PAID":
        return paid({ reservationId: h.reservationId, amount: h.price });
      case "RESERVATION_NOT_FOUND":
      case "NOT_YOUR_RESERVATION":
        record.hold = null;
        save();
        showAdmitted();
        return say(describe(reply), "error");
      default:
        failed(reply);
    }
  };

  const paid = (payment) => {
    cancelAll();
    record = { paid: { ...payment, hold: record.hold } };
    save();
    showPaid();
  };

  const showPaid = () => {
    const p = record.paid;
    const h = p.hold || {};
    setState("paid");
    const box = $("#confirmation");
    box.dataset.reservationId = p.reservationId;
    box.replaceChildren(
      el("p", { class: "seat-line", text: `Seat ${h.seatId || "–"} (${h.grade || "–"}), ${h.label || ""}` }),
      el("dl", { class: "sums" },
        el("dt", { text: "Paid" }), el("dd", { text: T.int(p.amount) }),
        el("dt", { text: "Booking" }), el("dd", { text: `#${p.reservationId}` }),
        p.paymentId ? [el("dt", { text: "Payment" }), el("dd", { text: `#${p.paymentId}` })] : null,
        Number.isFinite(p.balance) ? [el("dt", { text: "Balance left" }), el("dd", { text: T.int(p.balance) })] : null),
      el("p", { text: "Your place in line has been handed to the next person. Enjoy the concert." }),
    );
    $("#paid-title").focus();
  };

  // ---- clocks ----------------------------------------------------------------------------

  const tick = () => {
    const state = fan.dataset.state;
    if (state === "prequeue") {
      const left = opensAt ? (opensAt - T.now()) / 1000 : NaN;
      $("#opens-countdown").textContent = !Number.isFinite(left) ? "–"
        : left > 0 ? T.duration(left) : "any moment";
    }
    if (state === "admitted" || state === "held") {
      const left = activeUntil ? (activeUntil - T.now()) / 1000 : NaN;
      $("#admitted-until").textContent = Number.isFinite(left) ? T.duration(left) : "–";
      if (Number.isFinite(left) && left <= 0 && !timers.expiring) {
        timers.expiring = setTimeout(() => { timers.expiring = null; poll(); }, 1500);
      }
    }
    if (state === "held" && record.hold) {
      const left = (Date.parse(record.hold.expiresAt) - T.now()) / 1000;
      $("#hold-countdown").textContent = T.duration(left);
      if (left <= 0) {
        record.hold = null;
        save();
        showAdmitted();
        say("Your hold ran out and the seat went back on sale. Choose a seat again.", "error");
      }
    }
  };

  const cancelAll = () => cancel("poll", "browse", "seats");

  // ---- start -------------------------------------------------------------------------------

  const listenForEmbedder = () => {
    const allowed = [location.origin, ...(config.embedOrigins || [])];
    window.addEventListener("message", (event) => {
      const data = event.data;
      if (!data || data.type !== "ticketing-token" || typeof data.token !== "string") return;
      if (window.parent === window || event.source !== window.parent || !allowed.includes(event.origin)) return;
      if (acceptBearer(data.token)) resume();
    });
    if (window.parent !== window) {
      // Tell the embedding site it may send the token, if it is one the gateway trusts.
      let parent = location.ancestorOrigins && location.ancestorOrigins[0];
      try {
        parent = parent || new URL(document.referrer).origin;
      } catch (_) { /* no referrer: nothing to tell */ }
      if (allowed.includes(parent)) window.parent.postMessage({ type: "ticketing-ready" }, parent);
    }
  };

  const resume = () => {
    say("");
    if (!me) return showJoin();
    if (record.token && record.soldOutForGood) return soldOutForGood();
    if (record.token) {
      if (record.lastStatus === "PREQUEUE") {
        showPrequeue();
        return poll();
      }
      setState(record.lastStatus === "ACTIVE" ? "admitted" : "waiting");
      if (record.lastStatus !== "ACTIVE") $("#status").textContent = "Checking your place in line…";
      return poll();
    }
    if (record.paid) return showPaid();
    showJoin();
  };

  const start = async () => {
    const reply = await persistent("GET", "/app-config.json", undefined, undefined, 100);
    if (reply.ok) config = reply.json;
    else return failed(reply);

    $("#join-form").addEventListener("submit", (event) => { event.preventDefault(); join(); });
    $("#rejoin").addEventListener("click", () => {
      say("");
      const again = fan.dataset.state === "error";
      $("#rejoin").textContent = "Join the line again";
      if (again && (record.token || !me)) resume();
      else join();
    });
    $("#book-again").addEventListener("click", () => { record = {}; save(); join(); });
    $("#top-up").addEventListener("click", topUp);
    $("#pay").addEventListener("click", pay);
    $("#dev-sign-in").addEventListener("submit", async (event) => {
      event.preventDefault();
      const userId = Number($("#dev-user-id").value);
      const signIn = await T.call("POST", "/dev/sign-in", { body: { userId, admin: false } });
      if (!signIn.ok) return say(describe(signIn), "error");
      if (acceptBearer(signIn.json.token)) resume();
    });
    setInterval(tick, 1000);
    // Arrow keys, Home and End move between the free seats (Tab still goes through each).
    $("#seat-map").addEventListener("keydown", (event) => {
      const steps = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
      if (!(event.key in steps) && event.key !== "Home" && event.key !== "End") return;
      const seats = [...fan.querySelectorAll("#seat-map button.seat:not(:disabled)")];
      const at = seats.indexOf(document.activeElement);
      if (at < 0 || !seats.length) return;
      event.preventDefault();
      const next = event.key === "Home" ? 0 : event.key === "End" ? seats.length - 1
        : Math.min(seats.length - 1, Math.max(0, at + steps[event.key]));
      seats[next].focus();
    });

    if (config.auth === "jwt") {
      listenForEmbedder();
      const fragment = new URLSearchParams(location.hash.slice(1));
      const handed = fragment.get("token");
      if (handed) {
        // Out of the address bar, the history and any bookmark at once.
        history.replaceState(null, "", location.pathname + location.search);
        acceptBearer(handed);
      } else {
        const stored = session.get("ticketing.fan.v1.me");
        if (stored && stored.bearer) acceptBearer(stored.bearer, true);
      }
    } else {
      const stored = session.get("ticketing.fan.v1.me");
      if (stored && Number.isSafeInteger(stored.userId) && !stored.bearer) becomeUser(stored.userId);
    }
    resume();
  };

  start();
})();
