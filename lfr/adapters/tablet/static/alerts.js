/* The live alert feed: server-sent events in, cards out, decisions back through the JSON API. */
"use strict";

(() => {
  const openList = document.getElementById("open-alerts");
  const decidedList = document.getElementById("decided-alerts");
  const template = document.getElementById("alert-card-template");
  const memberTemplate = document.getElementById("alert-member-template");
  const referenceTemplate = document.getElementById("reference-template");
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

  // One card per group of repeat sightings (the server names each alert's group); in it, one member per
  // alert, each decided on its own.
  const groups = new Map(); // group id -> { el, members: Map(alert id -> { el, alert }), ... }
  const groupOf = new Map(); // alert id -> group id
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

  function memberOf(id) {
    const group = groups.get(groupOf.get(id));
    return group ? group.members.get(id) : undefined;
  }

  function buildGroup(id) {
    const el = template.content.firstElementChild.cloneNode(true);
    el.dataset.groupId = id;
    el.setAttribute("aria-labelledby", "title-g-" + id);
    el.querySelector(".card-title").id = "title-g-" + id;
    return el;
  }

  function buildMember(alert) {
    const el = memberTemplate.content.firstElementChild.cloneNode(true);
    el.dataset.alertId = alert.id;
    el.setAttribute("aria-labelledby", "title-" + alert.id);
    el.querySelector(".member-title").id = "title-" + alert.id;
    const notes = el.querySelector(".notes");
    notes.id = "notes-" + alert.id;
    el.querySelector(".notes-label").htmlFor = notes.id;
    const form = el.querySelector(".adjudicate");
    form.addEventListener("submit", (event) => decide(event, alert.id));
    form.querySelector(".btn-confirm-cancel").addEventListener("click", () => confirming(form, false));
    el.querySelector(".amend").addEventListener("submit", (event) => amend(event, alert.id));
    el.querySelector(".verify").addEventListener("submit", (event) => verify(event, alert.id));
    el.querySelector(".show-capture").addEventListener("click", () => {
      // Fetching a crop is an audited consultation: only when the officer asks for this one.
      const current = groups.get(groupOf.get(alert.id));
      current.shown = alert.id;
      fillGroup(current);
    });
    return el;
  }

  function fillMember(el, alert) {
    lfr.setText(el, ".member-title", "Camera " + alert.camera_id + " · " + lfr.clockTime(alert.first_seen_at));
    lfr.setText(el, ".score", alert.score.toFixed(3));
    lfr.setText(el, ".threshold", "threshold " + alert.threshold.toFixed(3));
    el.querySelector(".scorefill").style.width = Math.min(100, Math.max(0, alert.score * 100)) + "%";
    el.querySelector(".scoremark").style.left = Math.min(100, Math.max(0, alert.threshold * 100)) + "%";
    lfr.setText(el, ".score-words", alert.score_words);
    lfr.setText(el, ".camera", alert.camera_id);
    lfr.setText(el, ".location", alert.location);
    let seen = lfr.clockTime(alert.captured_at);
    if (alert.sightings > 1) {  // one alert per passage: later faces of the same track update it
      const span = (Date.parse(alert.last_seen_at) - Date.parse(alert.first_seen_at)) / 1000;
      seen += " · seen " + alert.sightings + " times over " + Math.max(0, span).toFixed(0) + " s";
    }
    lfr.setText(el, ".time", seen);
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

  function fillReferences(group, images) {
    // Listed by the group's first alert: the subject is the same for every member.
    const key = images.map((image) => image.url).join(" ");
    if (group.references === key) return;
    group.references = key;
    group.el.querySelector(".references").replaceChildren(...images.map((image, n) => {
      const figure = referenceTemplate.content.firstElementChild.cloneNode(true);
      const img = figure.querySelector(".reference");
      img.src = image.url;
      img.alt = "Watchlist reference image " + (n + 1) + " of " + images.length;
      figure.querySelector(".reference-caption").textContent =
        "Watchlist reference" + (image.provenance ? ": " + image.provenance : "");
      return figure;
    }));
    group.el.querySelector(".no-reference").hidden = images.length > 0;
  }

  function fillGroup(group) {
    // The group is decided on the server (alert_views); what the card sums is what its members say.
    const alerts = Array.from(group.members.values(), (entry) => entry.alert)
      .sort((a, b) => a.sequence - b.sequence);
    const latest = alerts[alerts.length - 1];
    const el = group.el;
    const s = latest.subject;
    lfr.setText(el, ".category", s.category || "Watchlist match");
    lfr.setText(el, ".subject", [s.name, s.reference].filter(Boolean).join(" · ") || "—");
    lfr.setText(el, ".reason", s.reason || "—");
    const count = lfr.setText(el, ".group-count", alerts.length + " sightings");
    count.hidden = alerts.length < 2;
    el.dataset.count = String(alerts.length);
    const first = Math.min(...alerts.map((a) => Date.parse(a.first_seen_at)));
    const last = Math.max(...alerts.map((a) => Date.parse(a.last_seen_at)));
    let span = lfr.clockTime(new Date(first).toISOString());
    if (alerts.length > 1 || last > first) span += " – " + lfr.clockTime(new Date(last).toISOString());
    lfr.setText(el, ".seen-span", span);
    fillReferences(group, alerts[0].reference_images);

    const best = alerts.reduce((a, b) => (b.score > a.score ? b : a));
    const shown = group.members.has(group.shown) ? group.members.get(group.shown).alert : best;
    const probe = el.querySelector(".probe");
    if (probe.dataset.alertId !== shown.id) {
      probe.dataset.alertId = shown.id;
      probe.src = shown.crop_url;
    }
    let caption = "Camera capture";
    if (alerts.length > 1) {
      caption = shown === best ? "Best camera capture" : "Camera capture";
      caption += " (" + shown.camera_id + ", " + lfr.clockTime(shown.first_seen_at) + ")";
    }
    lfr.setText(el, ".probe-caption", caption);

    const list = el.querySelector(".members");
    alerts.slice().reverse().forEach((alert, n) => {  // newest first; only what is out of place moves
      const member = group.members.get(alert.id).el;
      member.querySelector(".show-capture").hidden = alerts.length < 2 || alert.id === shown.id;
      if (list.children[n] !== member) list.insertBefore(member, list.children[n] || null);
    });
    group.latest = latest.sequence;
    group.open = alerts.some(isOpen);
    el.dataset.state = group.open
      ? (alerts.some((a) => a.state === "raised") ? "raised" : "awaiting_verification")
      : "adjudicated";
  }

  function forget(group) {
    group.el.remove();
    group.members.forEach((_, id) => groupOf.delete(id));
    groups.delete(group.el.dataset.groupId);
  }

  function place(group) {
    const list = group.open ? openList : decidedList;
    // Newest first within each list, by the latest alert of each card.
    const after = Array.from(list.children).find(
      (other) => other !== group.el && groups.get(other.dataset.groupId).latest < group.latest);
    if (group.el.parentElement !== list || (after && group.el.nextElementSibling !== after)) {
      list.insertBefore(group.el, after || null);
    }
    while (decidedList.children.length > MAX_DECIDED) {
      forget(groups.get(decidedList.lastElementChild.dataset.groupId));
    }
    let open = 0;
    groups.forEach((g) => g.members.forEach((entry) => { if (isOpen(entry.alert)) open += 1; }));
    openCount.textContent = String(open);
    openCount.dataset.zero = String(open === 0);
    noOpen.hidden = openList.children.length > 0;
  }

  function upsert(alert, live) {
    const id = alert.group_id || alert.id;
    let entry = memberOf(alert.id);
    if (entry && entry.alert.version > alert.version) return; // an older copy arrived late
    const was = groupOf.get(alert.id);
    if (entry && was !== id) {
      // Regrouped (an earlier passage's times grew since this tablet was told): move the member.
      const old = groups.get(was);
      old.members.delete(alert.id);
      entry.el.remove();
      if (old.members.size === 0) forget(old);
      else { fillGroup(old); place(old); }
    }
    let group = groups.get(id);
    if (!group) {
      group = { el: buildGroup(id), members: new Map(), shown: null, references: null, latest: 0, open: true };
      groups.set(id, group);
    }
    if (!group.members.has(alert.id)) {
      entry = entry || { el: buildMember(alert), alert };
      group.members.set(alert.id, entry);
      groupOf.set(alert.id, id);
      if (live && isOpen(alert) && serverNow() - Date.parse(alert.raised_at) < ANNOUNCE_WITHIN_MS) {
        announcer.textContent = "New alert: " + (alert.subject.category || "watchlist match") +
          " at " + alert.location + ", camera " + alert.camera_id +
          (group.members.size > 1 ? " (sighting " + group.members.size + " of this person)" : "");
      }
    }
    entry.alert = alert;
    fillMember(entry.el, alert);
    fillGroup(group);
    tick(group);
    place(group);
  }

  function serverNow() {
    return Date.now() + clockOffset;
  }

  function tick(group) {
    let raised = 0;
    group.members.forEach((entry) => { raised = Math.max(raised, Date.parse(entry.alert.raised_at)); });
    lfr.setText(group.el, ".ago", "raised " + lfr.duration((serverNow() - raised) / 1000) + " ago");
  }

  async function refresh(id) {
    // The list endpoint is not an audited consultation, unlike fetching the alert itself.
    const entry = memberOf(id);
    const page = await lfr.api("/api/alerts?limit=1&after=" + (entry.alert.sequence - 1));
    if (page.alerts.length && page.alerts[0].id === id) upsert(page.alerts[0], false);
  }

  async function submit(form, id, path, body) {
    const message = form.closest(".member").querySelector(".message");
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
    const entry = memberOf(id);
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
      expected_version: memberOf(id).alert.version });
  }

  function verify(event, id) {
    event.preventDefault();
    submit(event.target, id, "/api/alerts/" + id + "/verification", {
      agree: event.submitter.value === "agree", expected_version: memberOf(id).alert.version });
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

  setInterval(() => groups.forEach(tick), 1000);
  setInterval(() => loadWindows().catch(() => {}), 30000);
  loadWindows().catch(() => {});
  connect();
})();
