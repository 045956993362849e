// Shared by the fan's page and the console: DOM helpers, formatting, and one way to call the
// gateway that never throws (a network failure is status 0, code "NETWORK").
"use strict";

(function () {
  const T = (window.Ticketing = {});

  T.$ = (selector, root) => (root || document).querySelector(selector);

  /** An element with attributes (text via `text`, properties via `prop:`) and children. */
  T.el = (tag, attrs, ...children) => {
    const node = tag.startsWith("svg:")
      ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
      : document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false) {
        node.append(child instanceof Node ? child : document.createTextNode(String(child)));
      }
    }
    return node;
  };

  const integers = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const decimals = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });
  T.int = (n) => (Number.isFinite(n) ? integers.format(n) : "–");
  T.dec = (n) => (Number.isFinite(n) ? decimals.format(n) : "–");

  /** "45 s", "3 min 05 s", "1 h 02 min". */
  T.duration = (seconds) => {
    if (!Number.isFinite(seconds)) return "–";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
    return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
  };

  /** A rough wait in words, for estimates: "under a minute", "about 4 minutes". */
  T.roughWait = (seconds) => {
    if (!Number.isFinite(seconds)) return "unknown";
    // The queue says a day at most: a line that has all but stopped.
    if (seconds >= 86400) return "more than a day";
    if (seconds <= 5) return "a few seconds";
    if (seconds < 60) return "under a minute";
    const minutes = Math.round(seconds / 60);
    if (minutes < 90) return `about ${minutes} minute${minutes === 1 ? "" : "s"}`;
    return `about ${Math.round(minutes / 60)} hours`;
  };

  T.when = (iso) => {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return "–";
    return date.toLocaleString("en-GB", {
      weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
    });
  };

  /** Milliseconds to add to Date.now() for the gateway's clock (from its Date headers). */
  T.clockOffset = 0;
  T.now = () => Date.now() + T.clockOffset;

  /** A fresh Idempotency-Key (randomUUID needs a secure context; fall back to random bytes). */
  T.newKey = () => {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  };

  /**
   * One call to the gateway: {status, ok, json, code, message, retryAfter}. `ok` is any 2xx or
   * 303 (reserve answers 303 with the reservation and no Location, so fetch does not follow).
   */
  T.call = async (method, path, options) => {
    const { body, bearer, headers, timeoutMs } = options || {};
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs || 10000);
    const init = { method, headers: { accept: "application/json", ...(headers || {}) }, signal: controller.signal, cache: "no-store" };
    if (bearer) init.headers.authorization = `Bearer ${bearer}`;
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    try {
      const response = await fetch(path, init);
      const date = Date.parse(response.headers.get("date") || "");
      if (Number.isFinite(date)) T.clockOffset = date + 500 - Date.now();
      let json = null;
      try {
        json = await response.json();
      } catch (_) {
        json = null;
      }
      const ok = (response.status >= 200 && response.status < 300) || response.status === 303;
      const retryAfter = Number(response.headers.get("retry-after")) || null;
      return {
        status: response.status,
        ok,
        json,
        code: ok ? null : (json && json.code) || `HTTP_${response.status}`,
        message: ok ? null : (json && json.message) || response.statusText,
        retryAfter,
      };
    } catch (error) {
      return { status: 0, ok: false, json: null, code: "NETWORK", message: String(error), retryAfter: null };
    } finally {
      clearTimeout(timer);
    }
  };

  /** Whether a failed call is worth repeating as it was: busy, slow, or unreachable. */
  T.transient = (reply) =>
    reply.status === 0 || reply.status === 429 || reply.status === 503 || reply.status === 504 || reply.status === 408;

  /** How long to wait before repeating a transient failure, in seconds. */
  T.retryDelay = (reply, attempt) =>
    Math.min(30, reply.retryAfter || Math.min(2 ** attempt, 10));

  T.sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  /** The claims of a JWT (not verified: only to show who is signed in), or null. */
  T.jwtClaims = (token) => {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
    } catch (_) {
      return null;
    }
  };

  T.storage = (area) => ({
    get(key) {
      try {
        return JSON.parse(area.getItem(key));
      } catch (_) {
        return null;
      }
    },
    set(key, value) {
      try {
        area.setItem(key, JSON.stringify(value));
      } catch (_) { /* storage full or disabled: the page still works until a reload */ }
    },
    remove(key) {
      try {
        area.removeItem(key);
      } catch (_) { /* as above */ }
    },
  });
})();
