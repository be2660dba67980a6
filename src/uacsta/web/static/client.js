// uacsta web client: one line, its calls, DND and forwarding, over the JSON API (/api/v1)
// and its event WebSocket. Plain JavaScript, no build step. On every event of the line the
// calls are re-read from the server's call tracker (GET /devices/{d}/calls; SnapshotDevice
// where the server does not track calls), so the list is what the server knows, not a guess.
// The page speaks plain words: the WebSocket's normalized notices (call.ringing, ...) feed
// the activity list; CSTA events are used only where no notice says it (the far end holding).
(() => {
  "use strict";

  const body = document.body;
  const EXT = body.dataset.extension;
  const CSRF = body.dataset.csrf;
  const DEV = `/api/v1/devices/${encodeURIComponent(EXT)}`;
  const $ = (id) => document.getElementById(id);

  const state = {
    calls: [], // [{call_id, device_id, state}]
    parties: new Map(), // call_id → the other party, learnt from events
    ringback: new Set(), // call_ids of own calls ringing at the far end
    remoteHold: new Set(), // call_ids the other party put on hold
    firstSeen: new Map(), // call_id → when this page first saw it (snapshot fallback)
    forwardTo: "", // where "forward all calls" sends them
    ready: null,
    subscribed: false,
    ws: null,
  };

  // --- the API --------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, data) {
    const options = {
      method,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": CSRF },
    };
    if (data !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(data);
    }
    let response;
    try {
      response = await fetch(path, options);
    } catch (err) {
      throw new ApiError("The server cannot be reached.", 0);
    }
    let payload = null;
    try {
      payload = await response.json();
    } catch (err) {
      payload = null;
    }
    if (response.status === 401) {
      window.location.assign("/client/login");
      throw new ApiError("Your session has ended; log in again.", 401);
    }
    if (!response.ok) {
      const text = (payload && payload.error) || `${response.status} ${response.statusText}`;
      throw new ApiError(text, response.status);
    }
    return payload;
  }

  let messageTimer = null;
  function show(text, kind = "error") {
    const box = $("message");
    box.textContent = text;
    box.className = `flash ${kind}`;
    box.hidden = false;
    clearTimeout(messageTimer);
    messageTimer = setTimeout(() => {
      box.hidden = true;
    }, 6000);
  }

  async function act(label, fn) {
    try {
      return await fn();
    } catch (err) {
      show(`${label}: ${err.message}`);
      return undefined;
    }
  }

  // --- helpers --------------------------------------------------------------------------
  function userPart(device) {
    if (!device || typeof device !== "string") return "";
    const text = device.replace(/^(sips?|tel):/i, "");
    return text.split("@")[0].split(";")[0];
  }

  function isMine(device) {
    return userPart(device) === EXT;
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "class") node.className = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else if (key === "onclick") node.addEventListener("click", value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child !== null && child !== undefined) {
        node.append(child instanceof Node ? child : document.createTextNode(String(child)));
      }
    }
    return node;
  }

  function numberValue() {
    return $("number").value.trim();
  }

  // --- line status ----------------------------------------------------------------------
  function setReady(ready) {
    state.ready = ready;
    const pill = $("line-status");
    pill.textContent = ready ? "Ready" : "Out of service";
    pill.className = `pill ${ready ? "status-ready" : "status-out"}`;
    body.classList.toggle("out-of-service", !ready);
    for (const id of ["dnd", "fwd"]) $(id).disabled = !ready;
  }

  async function refreshStatus() {
    try {
      const devices = await api("GET", "/api/v1/devices");
      const ready = devices.some((d) => d.ready);
      const was = state.ready;
      setReady(ready);
      if (ready && !was) {
        refreshFeatures();
        refreshCalls();
      }
      if (ready && !state.subscribed) subscribe();
    } catch (err) {
      if (err.status !== 401) setReady(false);
    }
  }

  // --- DND and forwarding ---------------------------------------------------------------
  function showForward(on) {
    const target = $("fwd-target");
    target.hidden = !(on && state.forwardTo);
    target.textContent = state.forwardTo ? `Calls go to ${state.forwardTo}` : "";
  }

  async function refreshFeatures() {
    const note = [];
    try {
      const dnd = await api("GET", `${DEV}/dnd`);
      $("dnd").checked = !!dnd.on;
    } catch (err) {
      note.push(`Do not disturb: ${err.message}`);
    }
    try {
      const fwd = await api("GET", `${DEV}/forwarding`);
      const immediate = (fwd.forwarding || []).find((f) => f.type === "forwardImmediate");
      $("fwd").checked = !!(immediate && immediate.on);
      if (immediate && immediate.to) state.forwardTo = userPart(immediate.to) || immediate.to;
      showForward($("fwd").checked);
    } catch (err) {
      note.push(`Forwarding: ${err.message}`);
    }
    $("feature-note").textContent = note.join(" ");
  }

  $("dnd").addEventListener("change", async (event) => {
    const box = event.target;
    const on = box.checked;
    box.disabled = true;
    const result = await act("Do not disturb", () => api("PUT", `${DEV}/dnd`, { on }));
    if (result === undefined) box.checked = !on;
    box.disabled = !state.ready;
  });

  $("fwd").addEventListener("change", async (event) => {
    const box = event.target;
    const on = box.checked;
    let to = state.forwardTo;
    if (on) {
      to = await askNumber({
        title: "Forward all calls",
        hint: "Every call to your line goes straight to this number until you turn it off.",
        ok: "Forward",
        value: state.forwardTo,
      });
      if (!to) {
        box.checked = false;
        return;
      }
    }
    box.disabled = true;
    const payload = { type: "forwardImmediate", on, to: to || null };
    const result = await act("Forwarding", () => api("PUT", `${DEV}/forwarding`, payload));
    if (result === undefined) {
      box.checked = !on;
    } else if (on) {
      state.forwardTo = to;
    }
    showForward(box.checked);
    box.disabled = !state.ready;
  });

  // --- the number dialog (transfer, forward a ringing call, forward all calls) -----------
  // Resolves to the number typed, or null when cancelled.
  function askNumber({ title, hint, ok, value = "" }) {
    const dialog = $("number-dialog");
    const input = $("dialog-number");
    $("dialog-title").textContent = title;
    $("dialog-hint").textContent = hint || "";
    $("dialog-ok").textContent = ok;
    input.value = value;
    return new Promise((resolve) => {
      let done = false;
      const finish = (result) => {
        if (done) return;
        done = true;
        $("dialog-form").removeEventListener("submit", onSubmit);
        $("dialog-cancel").removeEventListener("click", onCancel);
        dialog.removeEventListener("close", onClose);
        if (dialog.open) dialog.close();
        resolve(result);
      };
      const onSubmit = (event) => {
        event.preventDefault();
        const number = input.value.trim();
        if (!number) {
          input.focus();
          return;
        }
        finish(number);
      };
      const onCancel = () => finish(null);
      const onClose = () => finish(null);
      $("dialog-form").addEventListener("submit", onSubmit);
      $("dialog-cancel").addEventListener("click", onCancel);
      dialog.addEventListener("close", onClose);
      dialog.showModal();
      input.focus();
    });
  }

  // --- calls ----------------------------------------------------------------------------
  let snapshotRunning = false;
  let snapshotAgain = false;
  let snapshotTimer = null;

  function scheduleCalls(delay = 80) {
    clearTimeout(snapshotTimer);
    snapshotTimer = setTimeout(refreshCalls, delay);
  }

  // The tracker's calls (direction, the other party, times); the phone's SnapshotDevice
  // where the server does not track calls.
  async function refreshCalls() {
    if (snapshotRunning) {
      snapshotAgain = true;
      return;
    }
    snapshotRunning = true;
    try {
      let calls;
      try {
        calls = (await api("GET", `${DEV}/calls`)).map((c) => ({ ...c, tracked: true }));
      } catch (err) {
        if (err.status !== 503) throw err;
        const snap = await api("GET", `${DEV}/snapshot`);
        calls = snap.calls || [];
      }
      renderCalls(calls);
    } catch (err) {
      if (err.status === 503 || err.status === 404) renderCalls([]);
    } finally {
      snapshotRunning = false;
      if (snapshotAgain) {
        snapshotAgain = false;
        refreshCalls();
      }
    }
  }

  const STATE_LABEL = {
    alerting: "Ringing",
    connected: "Connected",
    hold: "On hold",
    held: "On hold",
    initiated: "Dialling",
    queued: "Waiting",
    fail: "Call failed",
    null: "Call ended",
  };

  function callPath(call, action) {
    return `${DEV}/calls/${encodeURIComponent(call.call_id)}/${action}`;
  }

  function callButton(label, cls, onclick, title) {
    return el("button", { type: "button", class: `act ${cls}`, title: title || label, onclick }, label);
  }

  function clock(seconds) {
    const total = Math.max(0, Math.floor(seconds));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = String(total % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  }

  function tickTimers() {
    const now = Date.now() / 1000;
    for (const timer of document.querySelectorAll("#calls .timer")) {
      timer.textContent = clock(now - Number(timer.dataset.since));
    }
  }

  function partyOf(call) {
    const number = call.remote_number ? userPart(call.remote_number) || call.remote_number : "";
    return { name: call.remote_name || "", number: number || state.parties.get(call.call_id) || "" };
  }

  function renderCalls(calls) {
    state.calls = calls.filter((c) => c.call_id);
    const present = new Set(state.calls.map((c) => c.call_id));
    for (const id of state.ringback) if (!present.has(id)) state.ringback.delete(id);
    for (const id of state.remoteHold) if (!present.has(id)) state.remoteHold.delete(id);
    for (const id of state.firstSeen.keys()) if (!present.has(id)) state.firstSeen.delete(id);
    const list = $("calls");
    list.replaceChildren();
    const now = Date.now() / 1000;
    for (const call of state.calls) {
      const st = call.state || "unknown";
      if (!state.firstSeen.has(call.call_id)) state.firstSeen.set(call.call_id, now);
      const { name, number } = partyOf(call);
      const ringing =
        st === "connected" &&
        (state.ringback.has(call.call_id) ||
          (call.tracked && call.direction === "outgoing" && !call.answered));
      const heldByOther = st === "connected" && !ringing && state.remoteHold.has(call.call_id);
      const since = call.answered || call.started || state.firstSeen.get(call.call_id);
      const actions = el("div", { class: "actions" });
      if (st === "alerting") {
        actions.append(
          callButton("Answer", "act-answer good", () =>
            act("Answer", () => api("POST", callPath(call, "answer"))).then(() => scheduleCalls())
          ),
          callButton("Forward", "act-deflect", () => numberAction(call, "deflect", {
            title: "Forward this call",
            hint: `Send the call from ${name || number || "this caller"} to another number.`,
            ok: "Forward",
          }), "Send the ringing call to another number")
        );
      }
      if (st === "connected") {
        actions.append(
          callButton("Hold", "act-hold", () =>
            act("Hold", () => api("POST", callPath(call, "hold"))).then(() => scheduleCalls())
          ),
          callButton("Transfer", "act-transfer", () => numberAction(call, "single-step-transfer", {
            title: "Transfer the call",
            hint: `Connect ${name || number || "the caller"} with another number; you leave the call.`,
            ok: "Transfer",
          }), "Pass the call on to another number")
        );
      }
      if (st === "hold" || st === "held") {
        actions.append(
          callButton("Resume", "act-retrieve", () =>
            act("Resume", () => api("POST", callPath(call, "retrieve"))).then(() =>
              scheduleCalls()
            ), "Take the call off hold")
        );
      }
      actions.append(
        callButton(st === "alerting" ? "Reject" : "Hang up", "act-clear bad", () =>
          act("Hang up", () => api("POST", callPath(call, "clear"))).then(() => scheduleCalls())
        )
      );
      let label = STATE_LABEL[st] || "Call";
      let pillClass = `state-${st}`;
      if (ringing) {
        label = "Ringing…";
        pillClass = "state-ringback";
      } else if (heldByOther) {
        label = "On hold";
        pillClass = "state-held";
      }
      const direction =
        call.direction === "incoming" ? "Incoming call" : call.direction === "outgoing" ? "Outgoing call" : "";
      const note = heldByOther ? "The other party put you on hold" : direction;
      list.append(
        el(
          "li",
          {
            class: `call call-${st}`,
            "data-call-id": call.call_id,
            "data-state": st,
            "data-progress": ringing ? "ringing" : heldByOther ? "held-by-other" : "",
          },
          el("span", { class: `pill call-state ${pillClass}` }, label),
          el(
            "span",
            { class: "party" },
            el("b", {}, name || number || "Unknown number"),
            name && number ? el("span", { class: "muted small" }, ` ${number}`) : null,
            note ? el("span", { class: "muted small note" }, note) : null
          ),
          el("span", { class: "timer", "data-since": String(since), title: "Call time" }, clock(now - since)),
          actions
        )
      );
    }
    $("call-count").textContent = String(state.calls.length);
    $("no-calls").hidden = state.calls.length > 0;
    const held = state.calls.find((c) => c.state === "hold" || c.state === "held");
    const active = state.calls.find((c) => c.state === "connected");
    $("conference").disabled = !(held && active);
    $("transfer-held").disabled = !(held && active);
  }

  async function numberAction(call, action, question) {
    const to = await askNumber(question);
    if (!to) return;
    await act(question.ok, () => api("POST", callPath(call, action), { to }));
    scheduleCalls();
  }

  function pairAction(path, label) {
    const held = state.calls.find((c) => c.state === "hold" || c.state === "held");
    const active = state.calls.find((c) => c.state === "connected");
    if (!held || !active) return;
    act(label, () =>
      api("POST", `${DEV}/${path}`, { held_call: held.call_id, active_call: active.call_id })
    ).then(() => scheduleCalls());
  }

  $("conference").addEventListener("click", () => pairAction("conference", "Conference"));
  $("transfer-held").addEventListener("click", () => pairAction("transfer", "Transfer"));

  // --- dialling -------------------------------------------------------------------------
  // MakeCall from this line to `to`; the Call button and the history's "Call back" use it.
  async function makeCall(to, button) {
    if (button) button.disabled = true;
    const call = await act("Call", () => api("POST", `${DEV}/calls`, { to }));
    if (button) button.disabled = false;
    if (call && call.call_id) state.parties.set(call.call_id, to);
    scheduleCalls();
    return call;
  }

  $("dial-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const to = numberValue();
    if (!to) {
      show("Enter a number to call.");
      $("number").focus();
      return;
    }
    const call = await makeCall(to, $("call-btn"));
    if (call && call.call_id) $("number").value = "";
  });

  // --- history (the call journal of this line) ------------------------------------------
  const HISTORY_PAGE = 25;
  const OUTCOME_LABEL = {
    answered: "Answered",
    missed: "Missed",
    busy: "Busy",
    rejected: "Rejected",
    cancelled: "Cancelled",
    forwarded: "Forwarded",
    deflected: "Deflected",
    transferred: "Transferred",
    answered_elsewhere: "Answered elsewhere",
    unanswered: "Not answered",
    failed: "Failed",
    lost_with_phone: "Lost with the phone",
  };
  const DIRECTION = {
    incoming: ["←", "Incoming"],
    outgoing: ["→", "Outgoing"],
    internal: ["↔", "Internal"],
  };
  const history = { items: [], next: null, loading: false };

  function outcomeLabel(entry) {
    const words = OUTCOME_LABEL[entry.outcome] || entry.outcome;
    if (entry.target && ["forwarded", "deflected", "transferred"].includes(entry.outcome)) {
      return `${words} to ${userPart(entry.target) || entry.target}`;
    }
    if (entry.target && entry.outcome === "answered_elsewhere") {
      return `${words} (by ${userPart(entry.target) || entry.target})`;
    }
    return words;
  }

  function durationText(seconds) {
    const total = Math.max(0, Math.round(seconds));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = total % 60;
    const two = (n) => String(n).padStart(2, "0");
    if (h) return `${h} h ${two(m)} min`;
    if (m) return `${m} min ${two(s)} s`;
    return `${s} s`;
  }

  function whenText(epoch) {
    const moment = new Date(epoch * 1000);
    const today = new Date();
    const time = moment.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    if (moment.toDateString() === today.toDateString()) return `Today ${time}`;
    const yesterday = new Date(today);
    yesterday.setDate(today.getDate() - 1);
    if (moment.toDateString() === yesterday.toDateString()) return `Yesterday ${time}`;
    return `${moment.toLocaleDateString()} ${time}`;
  }

  function renderHistory() {
    const list = $("history");
    list.replaceChildren();
    let missed = 0;
    for (const entry of history.items) {
      const isMissed = entry.outcome === "missed";
      if (isMissed) missed += 1;
      const [arrow, dirText] = DIRECTION[entry.direction] || ["", entry.direction];
      const number = entry.remote_number ? userPart(entry.remote_number) || entry.remote_number : "";
      const name = entry.remote_name || "";
      const party = el(
        "span",
        { class: "party" },
        el("b", {}, name || number || "Unknown number"),
        name && number ? el("span", { class: "muted small" }, ` ${number}`) : null
      );
      const length =
        entry.answered !== null && entry.answered !== undefined
          ? durationText(entry.talk_seconds)
          : "";
      const actions = el("div", { class: "actions" });
      if (number) {
        const button = callButton(
          "Call back",
          "act-callback callback",
          () => makeCall(number, button),
          `Call ${number} from this line`
        );
        actions.append(button);
      }
      list.append(
        el(
          "li",
          {
            class: `hist${isMissed ? " missed" : ""}`,
            "data-id": entry.id,
            "data-outcome": entry.outcome,
          },
          el("span", { class: "dir", title: dirText, ariaLabel: dirText }, arrow),
          party,
          el("span", { class: "outcome" }, outcomeLabel(entry)),
          el("time", { class: "when", dateTime: new Date(entry.started * 1000).toISOString() },
            whenText(entry.started)),
          el("span", { class: "length" }, length),
          actions
        )
      );
    }
    $("no-history").hidden = history.items.length > 0;
    $("history-more").hidden = !history.next;
    const badge = $("missed-count");
    badge.textContent = `${missed} missed`;
    badge.hidden = missed === 0;
  }

  async function refreshHistory(more = false) {
    if (history.loading) return;
    history.loading = true;
    try {
      const params = new URLSearchParams({ limit: String(HISTORY_PAGE) });
      if (more && history.next) params.set("cursor", history.next);
      const page = await api("GET", `/api/v1/journal?${params}`);
      history.items = more ? history.items.concat(page.items) : page.items;
      history.next = page.next;
      renderHistory();
    } catch (err) {
      if (err.status !== 401) $("no-history").textContent = `History: ${err.message}`;
    } finally {
      history.loading = false;
    }
  }

  let historyTimer = null;
  function scheduleHistory(delay = 1000) {
    clearTimeout(historyTimer);
    historyTimer = setTimeout(() => refreshHistory(), delay);
  }

  $("history-more").addEventListener("click", () => refreshHistory(true));

  $("dialpad").addEventListener("click", (event) => {
    const key = event.target.closest(".key");
    if (!key) return;
    const digit = key.dataset.key;
    const active = state.calls.find((c) => c.state === "connected");
    if (active && !numberValue()) {
      act("Tones", () => api("POST", callPath(active, "digits"), { digits: digit }));
      logEvent(`Tone ${digit} sent`);
      return;
    }
    $("number").value += digit;
    $("number").focus();
  });

  $("backspace").addEventListener("click", () => {
    $("number").value = $("number").value.slice(0, -1);
  });

  // --- activity (plain words) ----------------------------------------------------------
  function logEvent(text) {
    const list = $("events");
    const now = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    list.prepend(el("li", {}, el("time", {}, now), " ", text));
    while (list.children.length > 30) list.lastChild.remove();
  }

  function learnParties(data) {
    const ids = [];
    for (const value of Object.values(data || {})) {
      if (value && typeof value === "object" && "call_id" in value && value.call_id) {
        ids.push(value.call_id);
      }
    }
    const candidates = [
      data.called_device,
      data.calling_device,
      data.alerting_device,
      data.answering_device,
      data.transferred_to_device,
      data.new_destination,
    ];
    const other = candidates.find((d) => d && typeof d === "string" && !isMine(d));
    if (other) for (const id of ids) state.parties.set(id, userPart(other) || other);
    return ids;
  }

  function deviceText(device) {
    if (!device) return "";
    if (typeof device === "object") device = device.device_id || device.device || "";
    return typeof device === "string" ? userPart(device) || device : "";
  }

  // A CSTA event of the line: kept for what no notice says, and to re-read the calls.
  function handleEvent(message) {
    const name = message.event || "";
    const data = message.data || {};
    const ids = learnParties(data);
    switch (name) {
      case "DeliveredEvent":
        if (data.alerting_device && !isMine(deviceText(data.alerting_device))) {
          for (const id of ids) state.ringback.add(id);
        }
        break;
      case "EstablishedEvent":
        for (const id of ids) state.ringback.delete(id);
        break;
      case "HeldEvent": {
        const holder = deviceText(data.holding_device);
        if (holder && !isMine(holder)) {
          for (const id of ids) state.remoteHold.add(id);
          logEvent(`${holder} put you on hold`);
        }
        break;
      }
      case "RetrievedEvent": {
        const retriever = deviceText(data.retrieving_device);
        if (retriever && !isMine(retriever)) {
          for (const id of ids) state.remoteHold.delete(id);
          logEvent(`${retriever} took you off hold`);
        }
        break;
      }
      case "ConferencedEvent":
        logEvent("Conference: you talk with both callers");
        break;
      case "TransferredEvent":
        logEvent("Call transferred");
        break;
      case "ConnectionClearedEvent":
      case "FailedEvent":
        for (const id of ids) {
          state.ringback.delete(id);
          state.remoteHold.delete(id);
        }
        scheduleHistory(); // the ended call reaches the journal when the tracker is done
        break;
      case "DoNotDisturbEvent":
        $("dnd").checked = !!data.do_not_disturb_on;
        break;
      case "ForwardingEvent":
        if (data.forwarding_type === "forwardImmediate") {
          $("fwd").checked = !!data.forward_status;
          if (data.forward_to) state.forwardTo = userPart(data.forward_to) || data.forward_to;
          showForward($("fwd").checked);
        }
        break;
      case "OutOfServiceEvent":
        setReady(false);
        logEvent("Your phone is out of service");
        break;
      case "BackInServiceEvent":
        if (state.ready === false) logEvent("Your phone is back in service");
        refreshStatus();
        break;
      case "MonitorEndedEvent":
        state.subscribed = false;
        setLive(false);
        setTimeout(subscribe, 2000);
        break;
      default:
        break;
    }
    scheduleCalls();
  }

  // A normalized notice (call.ringing, call.answered, ...): the activity list in plain words.
  function handleNotice(notice) {
    const who =
      notice.remote_name ||
      (notice.remote_number ? userPart(notice.remote_number) || notice.remote_number : "") ||
      (notice.call_id ? state.parties.get(notice.call_id) : "") ||
      "unknown number";
    if (notice.call_id && notice.remote_number) {
      state.parties.set(notice.call_id, userPart(notice.remote_number) || notice.remote_number);
    }
    const record = notice.call || {};
    switch (notice.type) {
      case "call.ringing":
        logEvent(`Ringing: call from ${who}`);
        break;
      case "call.dialing":
        logEvent(`Calling ${who}`);
        break;
      case "call.answered":
        logEvent(`Connected with ${who}`);
        break;
      case "call.held":
        logEvent(`On hold: ${who}`);
        break;
      case "call.retrieved":
        logEvent(`Back with ${who}`);
        break;
      case "call.missed":
        logEvent(`Missed call from ${who}`);
        scheduleHistory(300);
        break;
      case "call.ended": {
        const talk = record.talk_seconds ? ` after ${clock(record.talk_seconds)}` : "";
        logEvent(`Call ended: ${who}${talk}`);
        if (notice.call_id) state.remoteHold.delete(notice.call_id);
        scheduleHistory(300);
        break;
      }
      default:
        return;
    }
    scheduleCalls();
  }

  function setLive(on) {
    const dot = $("live");
    dot.className = `live ${on ? "on" : "off"}`;
    dot.title = on ? "Live: events arrive as they happen" : "Not live: reconnecting";
  }

  function subscribe() {
    if (state.ws && state.ws.readyState === WebSocket.OPEN && !state.subscribed) {
      state.ws.send(JSON.stringify({ subscribe: [EXT] }));
    }
  }

  let backoff = 500;
  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${window.location.host}/api/v1/events`);
    state.ws = ws;
    ws.addEventListener("open", () => {
      backoff = 500;
      state.subscribed = false;
      subscribe();
    });
    ws.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      if (message.type === "subscribed") {
        state.subscribed = !!message.ok;
        setLive(state.subscribed);
        if (state.subscribed) {
          refreshCalls();
        } else {
          setTimeout(subscribe, 5000); // the line is not ready yet; try again
        }
      } else if (message.type === "event") {
        handleEvent(message);
      } else if (typeof message.type === "string" && message.type.startsWith("call.")) {
        handleNotice(message);
      }
    });
    ws.addEventListener("close", () => {
      state.subscribed = false;
      setLive(false);
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 15000);
    });
  }

  // --- start ----------------------------------------------------------------------------
  renderCalls([]);
  refreshStatus(); // when the line is ready: DND, forwarding and calls
  refreshHistory();
  connect();
  setInterval(refreshStatus, 15000);
  setInterval(() => refreshHistory(), 60000);
  setInterval(tickTimers, 1000);
  setInterval(() => {
    if (!state.subscribed) refreshCalls(); // no events: poll instead
  }, 5000);
})();
