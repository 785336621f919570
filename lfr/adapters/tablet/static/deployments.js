/* Supervisor overview: windows, cameras and counters, refreshed every few seconds. */
"use strict";

(() => {
  const root = document.getElementById("overview");
  const template = document.getElementById("window-template");
  const status = document.getElementById("overview-status");
  const REFRESH_MS = 5000;
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
      return el;
    }));
    if (!overview.windows.length) root.textContent = "No deployment windows.";
  }

  async function load() {
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
  setInterval(load, REFRESH_MS);
})();
