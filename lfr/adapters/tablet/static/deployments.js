/* Supervisor overview: windows, cameras and counters, refreshed every few seconds. */
"use strict";

(() => {
  const root = document.getElementById("overview");
  const template = document.getElementById("window-template");
  const status = document.getElementById("overview-status");
  const REFRESH_MS = 5000;
  const canAuthorise = root.dataset.canAuthorise === "true";
  const canClose = root.dataset.canClose === "true";
  const notes = new Map(); // window id -> { verdict, message }: kept across re-renders
  const LABELS = {
    alert: "Raised an alert", no_match: "No match", rejected: "Rejected", not_armed: "Not armed",
    open: "Open", awaiting_verification: "Awaiting 2nd officer", confirmed: "Confirmed",
    false_alert: "False alert", not_engaged: "Not engaged",
  };

  function labelled(counts) {
    return Object.entries(counts).sort().map(([key, n]) => [LABELS[key] || key, n]);
  }

  function counters(dl, entries) {
    dl.replaceChildren(...entries.map(([label, value]) => {
      const div = document.createElement("div");
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = label;
      dd.textContent = String(value);
      div.append(dt, dd);
      return div;
    }));
  }

  function camera(c, serverNow) {
    const li = document.createElement("li");
    li.className = "chip";
    let state = "unknown";
    let text = c.camera_id;
    if (c.connected === true) { state = "connected"; text += " · connected"; }
    else if (c.connected === false) {
      state = "disconnected";
      // Measured against the server's clock, so a tablet with a wrong clock still reads it right.
      const ago = c.last_seen ? (Date.parse(serverNow) - Date.parse(c.last_seen)) / 1000 : null;
      text += ago === null ? " · disconnected (not seen yet)" : " · disconnected (last seen " + lfr.duration(ago) + " ago)";
    }
    text += " · " + c.faces_seen + (c.faces_seen === 1 ? " face" : " faces");
    // Counters carry no times: the last activity is when this server saw them grow.
    if (c.last_activity) text += ", last at " + lfr.clockTime(c.last_activity);
    li.dataset.state = state;
    li.textContent = text;
    return li;
  }

  function render(overview) {
    root.replaceChildren(...overview.windows.map((o) => {
      const w = o.window;
      const el = template.content.firstElementChild.cloneNode(true);
      el.dataset.windowId = w.id;
      lfr.setText(el, ".location", w.location);
      const badge = lfr.setText(el, ".state-badge", w.armed ? "Armed" : w.state === "closed" ? "Closed" : "Not armed");
      badge.dataset.state = w.armed ? "armed" : "disarmed";
      lfr.setText(el, ".time-left", w.armed ? lfr.duration(w.seconds_left) + " left" : "");
      lfr.setText(el, ".purpose", w.purpose);
      lfr.setText(el, ".legal", w.legal_basis);
      lfr.setText(el, ".span", lfr.clockTime(w.starts_at) + " – " + lfr.clockTime(w.ends_at));
      lfr.setText(el, ".win-threshold", w.threshold.toFixed(3));
      el.querySelector(".cameras").replaceChildren(...o.cameras.map((c) => camera(c, overview.server_now)));
      counters(el.querySelector(".faces-counters"), [
        ["Seen", o.faces_seen], ["Deleted at once", o.faces_discarded],
        ...labelled(o.faces_by_outcome)]);
      const alerts = labelled(o.alerts_by_outcome);
      counters(el.querySelector(".alert-counters"), alerts.length ? alerts : [["none", 0]]);
      controls(el, w);
      return el;
    }));
    if (!overview.windows.length) root.textContent = "No deployment windows.";
  }

  function controls(el, w) {
    const authorise = el.querySelector(".authorise");
    const close = el.querySelector(".close-window");
    authorise.hidden = !(canAuthorise && w.state === "pending");
    close.hidden = !(canClose && w.state !== "closed");
    const note = notes.get(w.id) || {};
    if (w.state === "pending" && canAuthorise && !note.verdict && !note.asked) {
      notes.set(w.id, { ...note, asked: true });
      // What the equity gate says before the supervisor decides (outcome and reasons, as it words them).
      lfr.api("/api/deployments/" + w.id + "/equity").then((verdict) => {
        notes.set(w.id, { ...notes.get(w.id), verdict: describeVerdict(verdict) });
        load();
      }).catch(() => {});
    }
    const verdict = el.querySelector(".verdict");
    verdict.hidden = !note.verdict;
    verdict.textContent = note.verdict || "";
    lfr.setText(el, ".message", note.message || "");
    authorise.addEventListener("click", () => act(w.id, "/api/deployments/" + w.id + "/authorise", undefined,
      (reply) => ({ verdict: describeVerdict(reply.verdict), message: "Authorised." })));
    close.addEventListener("submit", (event) => {
      event.preventDefault();
      const reason = close.querySelector(".close-reason").value;
      act(w.id, "/api/deployments/" + w.id + "/close", { reason },
        () => ({ message: "Closed: every matcher disarms this window now." }));
    });
  }

  function describeVerdict(verdict) {
    // Whatever the equity gate returns: its outcome, reasons and any warnings recorded.
    const parts = Object.entries(verdict || {}).filter(([, value]) => value !== null).map(([key, value]) => {
      const text = Array.isArray(value) ? (value.length ? value.join("; ") : "none") : String(value);
      return key.replace(/_/g, " ") + ": " + text;
    });
    return "Equity gate – " + (parts.length ? parts.join(". ") : "no verdict recorded");
  }

  async function act(id, path, body, describe) {
    try {
      notes.set(id, describe(await lfr.api(path, { method: "POST", body })));
    } catch (error) {
      notes.set(id, { message: "Refused: " + error.message });
    }
    await load();
    await loadAudit();
  }

  async function loadAudit() {
    const status = document.getElementById("chain-status");
    const body = document.getElementById("audit-records");
    try {
      const check = await lfr.api("/api/audit/verification");
      status.dataset.ok = String(check.ok);
      status.textContent = check.ok
        ? "Audit chain verified: " + check.records_checked + " records intact."
        : "AUDIT CHAIN BROKEN at record " + check.first_bad_seq + ": " + check.reason;
      const from = Math.max(1, check.records_checked - 49);
      const records = await lfr.api("/api/audit?limit=50&from_seq=" + from);
      body.replaceChildren(...records.reverse().map((r) => {
        const tr = document.createElement("tr");
        for (const text of [r.seq, lfr.clockTime(r.at), r.actor, r.action, r.subject_kind + " " + r.subject_id,
          JSON.stringify(r.details)]) {
          const td = document.createElement("td");
          td.textContent = String(text);
          tr.append(td);
        }
        return tr;
      }));
    } catch (error) {
      status.dataset.ok = "false";
      status.textContent = "Could not check the audit chain: " + error.message;
    }
  }

  async function load() {
    // Re-rendering would wipe a reason being typed: wait until the supervisor is done with it.
    if (root.contains(document.activeElement) && document.activeElement.tagName === "INPUT") return;
    try {
      render(await lfr.api("/api/deployments/overview"));
      status.dataset.state = "live";
      status.textContent = "Updated " + new Date().toLocaleTimeString();
    } catch (error) {
      status.dataset.state = "offline";
      status.textContent = "Could not refresh: " + error.message;
    }
  }

  load();
  loadAudit();
  setInterval(load, REFRESH_MS);
  setInterval(loadAudit, 6 * REFRESH_MS);
})();
