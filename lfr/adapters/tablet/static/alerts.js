/* The live alert feed: server-sent events in, cards out, decisions back through the JSON API. */
"use strict";

(() => {
  const openList = document.getElementById("open-alerts");
  const decidedList = document.getElementById("decided-alerts");
  const template = document.getElementById("alert-card-template");
  const status = document.getElementById("feed-status");
  const announcer = document.getElementById("announcer");
  const noOpen = document.getElementById("no-open");
  const openCount = document.getElementById("open-count");
  const canDecide = openList.dataset.canDecide === "true";
  const twoPerson = openList.dataset.twoPerson === "true";
  const me = openList.dataset.me;
  const canAmend = openList.dataset.canAmend === "true";
  const MAX_DECIDED = 50;
  const ANNOUNCE_WITHIN_MS = 60000;

  const cards = new Map(); // alert id -> { el, alert }
  let lastSequence = 0;
  let lastRevision = null; // the feed cursor (event id) to resume after, once the first replay is done
  let clockOffset = 0; // server time minus this tablet's time, so "ago" is right on a skewed tablet
  let source = null;
  let retryTimer = null;

  const OUTCOME_TEXT = {
    confirmed: "Confirmed – engaged",
    false_alert: "False alert",
    not_engaged: "Not engaged / could not locate",
  };

  function setStatus(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  function isOpen(alert) {
    return alert.state !== "adjudicated";
  }

  function build(alert) {
    const el = template.content.firstElementChild.cloneNode(true);
    el.dataset.alertId = alert.id;
    el.setAttribute("aria-labelledby", "title-" + alert.id);
    el.querySelector(".card-title").id = "title-" + alert.id;
    const notes = el.querySelector(".notes");
    notes.id = "notes-" + alert.id;
    el.querySelector(".notes-label").htmlFor = notes.id;
    el.querySelector(".probe").src = alert.crop_url;
    const reference = el.querySelector(".reference");
    if (alert.reference_url) {
      reference.src = alert.reference_url;
    } else {
      reference.hidden = true;
      el.querySelector(".no-reference").hidden = false;
    }
    const form = el.querySelector(".adjudicate");
    form.addEventListener("submit", (event) => decide(event, alert.id));
    form.querySelector(".btn-confirm-cancel").addEventListener("click", () => confirming(form, false));
    el.querySelector(".amend").addEventListener("submit", (event) => amend(event, alert.id));
    el.querySelector(".verify").addEventListener("submit", (event) => verify(event, alert.id));
    return el;
  }

  function fill(el, alert) {
    const s = alert.subject;
    lfr.setText(el, ".category", s.category || "Watchlist match");
    lfr.setText(el, ".score", alert.score.toFixed(3));
    lfr.setText(el, ".threshold", "threshold " + alert.threshold.toFixed(3));
    el.querySelector(".scorefill").style.width = Math.min(100, Math.max(0, alert.score * 100)) + "%";
    el.querySelector(".scoremark").style.left = Math.min(100, Math.max(0, alert.threshold * 100)) + "%";
    lfr.setText(el, ".score-words", alert.score_words);
    lfr.setText(el, ".subject", [s.name, s.reference].filter(Boolean).join(" · ") || "—");
    lfr.setText(el, ".reason", s.reason || "—");
    lfr.setText(el, ".camera", alert.camera_id);
    lfr.setText(el, ".location", alert.location);
    lfr.setText(el, ".time", lfr.clockTime(alert.captured_at));
    const badge = lfr.setText(el, ".state-badge", stateText(alert));
    badge.dataset.state = alert.outcome || alert.state;
    el.dataset.state = alert.state;

    const decision = el.querySelector(".decision");
    decision.hidden = alert.state === "raised";
    if (alert.state !== "raised") {
      let text = OUTCOME_TEXT[alert.outcome] + " by " + alert.adjudicated_by;
      if (alert.verified_by) text += ", verified by " + alert.verified_by;
      if (alert.notes) text += ". Notes: " + alert.notes;
      if (alert.amended_by) {
        text += ". Amended by " + alert.amended_by + " to " + OUTCOME_TEXT[alert.outcome] +
          ": " + alert.amendment_reason;
      }
      decision.textContent = text;
    }
    el.querySelector(".adjudicate").hidden = !(canDecide && alert.state === "raised");
    el.querySelector(".amend").hidden = !(canAmend && alert.state !== "raised");
    const awaiting = alert.state === "awaiting_verification";
    const verifyForm = el.querySelector(".verify");
    verifyForm.hidden = !(canDecide && awaiting && alert.adjudicated_by !== me);
    lfr.setText(el, ".verify-prompt",
      "Confirmed by " + alert.adjudicated_by + ". A second officer must verify before it counts.");
  }

  function stateText(alert) {
    if (alert.state === "raised") return "Open";
    if (alert.state === "awaiting_verification") return "Awaiting 2nd officer";
    return OUTCOME_TEXT[alert.outcome] || alert.outcome;
  }

  function place(entry) {
    const list = isOpen(entry.alert) ? openList : decidedList;
    // Newest first within each list, by sequence.
    const after = Array.from(list.children).find(
      (other) => cards.get(other.dataset.alertId).alert.sequence < entry.alert.sequence);
    if (entry.el.parentElement !== list || (after && entry.el.nextElementSibling !== after)) {
      list.insertBefore(entry.el, after || null);
    }
    while (decidedList.children.length > MAX_DECIDED) {
      const oldest = decidedList.lastElementChild;
      cards.delete(oldest.dataset.alertId);
      oldest.remove();
    }
    const open = openList.children.length;
    openCount.textContent = String(open);
    openCount.dataset.zero = String(open === 0);
    noOpen.hidden = open > 0;
  }

  function upsert(alert, live) {
    let entry = cards.get(alert.id);
    if (entry && entry.alert.version > alert.version) return; // an older copy arrived late
    if (!entry) {
      entry = { el: build(alert), alert };
      cards.set(alert.id, entry);
      if (live && isOpen(alert) && serverNow() - Date.parse(alert.raised_at) < ANNOUNCE_WITHIN_MS) {
        announcer.textContent = "New alert: " + (alert.subject.category || "watchlist match") +
          " at " + alert.location + ", camera " + alert.camera_id;
      }
    }
    entry.alert = alert;
    fill(entry.el, alert);
    tick(entry);
    place(entry);
  }

  function serverNow() {
    return Date.now() + clockOffset;
  }

  function tick(entry) {
    const seconds = (serverNow() - Date.parse(entry.alert.raised_at)) / 1000;
    lfr.setText(entry.el, ".ago", "raised " + lfr.duration(seconds) + " ago");
  }

  async function refresh(id) {
    // The list endpoint is not an audited consultation, unlike fetching the alert itself.
    const entry = cards.get(id);
    const page = await lfr.api("/api/alerts?limit=1&after=" + (entry.alert.sequence - 1));
    if (page.alerts.length && page.alerts[0].id === id) upsert(page.alerts[0], false);
  }

  async function submit(form, id, path, body) {
    const message = form.closest(".card").querySelector(".message");
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    message.textContent = "Saving…";
    try {
      upsert(await lfr.api(path, { method: "POST", body }), false);
      message.textContent = "Recorded.";
    } catch (error) {
      message.textContent = error.message;
      if (error.status === 409) refresh(id).catch(() => {});
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  function confirming(form, on) {
    // Confirming a match is the one decision that sends officers to a person: it asks once more.
    form.querySelector(".confirm-step").hidden = !on;
    form.querySelector(".actions").hidden = on;
    if (on) form.querySelector(".btn-confirm-final").focus();
  }

  function decide(event, id) {
    event.preventDefault();
    const form = event.target;
    if (event.submitter.value === "confirmed" && !event.submitter.classList.contains("btn-confirm-final")) {
      confirming(form, true);
      return;
    }
    confirming(form, false);
    const entry = cards.get(id);
    const notes = event.target.querySelector(".notes").value;
    submit(event.target, id, "/api/alerts/" + id + "/adjudication", {
      outcome: event.submitter.value, notes, expected_version: entry.alert.version });
  }

  function amend(event, id) {
    event.preventDefault();
    const form = event.target;
    submit(form, id, "/api/alerts/" + id + "/amendment", {
      outcome: form.querySelector(".amend-outcome").value,
      reason: form.querySelector(".amend-reason").value,
      expected_version: cards.get(id).alert.version });
  }

  function verify(event, id) {
    event.preventDefault();
    submit(event.target, id, "/api/alerts/" + id + "/verification", {
      agree: event.submitter.value === "agree", expected_version: cards.get(id).alert.version });
  }

  async function loadWindows() {
    const windows = await lfr.api("/api/deployments");
    const list = document.getElementById("windows");
    list.replaceChildren(...windows.filter((w) => w.state !== "closed").map((w) => {
      const li = document.createElement("li");
      li.className = "chip";
      li.dataset.armed = String(w.armed);
      li.textContent = w.location + (w.armed ? " · armed, " + lfr.duration(w.seconds_left) + " left" : " · not armed");
      return li;
    }));
  }

  function connect() {
    clearTimeout(retryTimer);
    if (source) source.close();
    setStatus("connecting", "Connecting…");
    let url = "/api/alerts/stream?after=" + lastSequence;
    if (lastRevision !== null) url += "&revision=" + lastRevision;
    source = new EventSource(url);
    source.addEventListener("hello", (event) => {
      clockOffset = Date.parse(JSON.parse(event.data).server_now) - Date.now();
      setStatus("live", "Live");
    });
    const received = (event, live) => {
      const alert = JSON.parse(event.data);
      lastSequence = Math.max(lastSequence, alert.sequence);
      if (event.lastEventId) lastRevision = event.lastEventId;
      upsert(alert, live);
    };
    source.addEventListener("alert", (event) => received(event, true));
    source.addEventListener("update", (event) => received(event, false));
    source.addEventListener("window", () => loadWindows().catch(() => {}));
    source.addEventListener("expired", (event) => {
      source.close();
      const detail = JSON.parse(event.data).detail || "your session expired";
      lfr.signIn(detail.charAt(0).toUpperCase() + detail.slice(1) + "; please sign in again");
    });
    source.onerror = () => {
      setStatus("offline", "Connection lost – reconnecting…");
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. an error status): check the session, then retry ourselves.
        retryTimer = setTimeout(() => lfr.api("/api/session").then(connect, connect), 2000);
      }
    };
  }

  setInterval(() => cards.forEach(tick), 1000);
  setInterval(() => loadWindows().catch(() => {}), 30000);
  loadWindows().catch(() => {});
  connect();
})();
