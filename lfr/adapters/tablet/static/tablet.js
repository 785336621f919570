/* Shared helpers for the tablet pages. Plain JS, no build step, nothing fetched from elsewhere. */
"use strict";

window.lfr = (() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  function signIn(notice) {
    window.location.assign("/login?notice=" + encodeURIComponent(notice));
  }

  async function api(path, options = {}) {
    const headers = { Accept: "application/json", "X-CSRF-Token": csrf };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method: options.method || "GET",
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      credentials: "same-origin",
      cache: "no-store",
    });
    let payload = null;
    try {
      payload = await response.json();
    } catch (_) {
      payload = null;
    }
    if (response.status === 401) {
      signIn((payload && payload.detail) || "Please sign in again");
      throw new ApiError(401, "signed out");
    }
    if (!response.ok) {
      throw new ApiError(response.status, (payload && payload.detail) || response.statusText);
    }
    return payload;
  }

  function plural(n, unit) {
    return n + " " + unit;
  }

  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return plural(s, "s");
    const m = Math.floor(s / 60);
    if (m < 60) return plural(m, "min") + (m < 10 ? " " + plural(s % 60, "s") : "");
    const h = Math.floor(m / 60);
    return plural(h, "h") + " " + plural(m % 60, "min");
  }

  function clockTime(iso) {
    return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function setText(root, selector, text) {
    const el = root.querySelector(selector);
    if (el) el.textContent = text;
    return el;
  }

  return { api, ApiError, duration, clockTime, setText, signIn };
})();
