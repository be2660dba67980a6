// uacsta web admin: filter and sort tables, toggle phones, live message ladder. No build step.
(function () {
  "use strict";

  function cellValue(row, index) {
    var cell = row.cells[index];
    if (!cell) return "";
    var v = cell.getAttribute("data-value");
    return (v !== null ? v : cell.textContent).trim().toLowerCase();
  }

  function ipKey(text) {
    var m = text.match(/^(\d+)\.(\d+)\.(\d+)\.(\d+)/);
    if (!m) return text;
    return m.slice(1, 5).map(function (p) { return ("00" + p).slice(-3); }).join(".");
  }

  // Sortable tables: click a header with data-sort.
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var headers = table.querySelectorAll("th");
    headers.forEach(function (th, index) {
      if (!th.hasAttribute("data-sort")) return;
      th.addEventListener("click", function () {
        var asc = !th.classList.contains("asc");
        headers.forEach(function (h) { h.classList.remove("asc", "desc"); });
        th.classList.add(asc ? "asc" : "desc");
        var kind = th.getAttribute("data-sort");
        var body = table.tBodies[0];
        var rows = Array.prototype.filter.call(body.rows, function (r) { return !r.classList.contains("empty"); });
        rows.sort(function (a, b) {
          var x = cellValue(a, index), y = cellValue(b, index);
          if (kind === "ip") { x = ipKey(x); y = ipKey(y); }
          return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });

  // Phone filter box.
  var filter = document.getElementById("phone-filter");
  var phones = document.getElementById("phones");
  function applyFilter() {
    if (!filter || !phones) return;
    var words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0, total = 0;
    Array.prototype.forEach.call(phones.tBodies[0].rows, function (row) {
      if (row.classList.contains("empty")) return;
      total += 1;
      var text = row.textContent.toLowerCase() + " " + (row.getAttribute("data-mac") || "").toLowerCase();
      var ok = words.every(function (w) { return text.indexOf(w) >= 0; });
      row.hidden = !ok;
      if (ok) shown += 1;
    });
    var label = document.getElementById("phone-shown");
    if (label) label.textContent = words.length ? shown + " of " + total + " shown" : "";
  }
  if (filter) filter.addEventListener("input", applyFilter);

  // Enabled checkboxes: POST with the CSRF token, update the row in place.
  document.querySelectorAll(".enabled-toggle").forEach(function (box) {
    box.addEventListener("change", function () {
      var form = box.form, row = box.closest("tr");
      if (!box.checked) {
        var what = form.getAttribute("data-phone") || "this phone";
        if (!window.confirm("Disable " + what + "? Its CSTA link is closed: its lines are no longer controlled or monitored until you enable it again.")) {
          box.checked = true;
          return;
        }
      }
      var body = new URLSearchParams();
      body.set("csrf", form.elements.csrf.value);
      body.set("enabled", box.checked ? "1" : "0");
      row.classList.add("busy");
      box.disabled = true;
      fetch(form.action, {
        method: "POST", body: body, credentials: "same-origin",
        headers: { "Accept": "application/json" }
      }).then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      }).then(function (data) {
        box.checked = data.enabled;
        form.elements.enabled.value = data.enabled ? "0" : "1";
        var cell = row.querySelector(".status-cell");
        cell.setAttribute("data-value", data.state);
        cell.innerHTML = "";
        var s = document.createElement("span");
        s.className = "state state-" + data.state; s.textContent = data.state;
        var reason = document.createElement("span");
        reason.className = "reason"; reason.textContent = data.reason;
        if (data.state_text) s.title = data.state_text;
        cell.appendChild(s); cell.appendChild(reason);
        var notice = document.getElementById("phone-notice");
        if (notice && data.message) { notice.textContent = data.message; notice.hidden = false; }
        row.cells[box.closest("td").cellIndex].setAttribute("data-value", data.enabled ? "1" : "0");
        Object.keys(data.counts || {}).forEach(function (state) {
          var pill = document.querySelector('#state-counts [data-state="' + state + '"] b');
          if (pill) pill.textContent = data.counts[state];
        });
      }).catch(function (err) {
        box.checked = !box.checked;
        alert("Could not change the phone: " + err.message + ". Reload the page.");
      }).then(function () {
        row.classList.remove("busy");
        box.disabled = false;
      });
    });
  });

  // Confirmations for destructive forms.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      if (!window.confirm(form.getAttribute("data-confirm"))) ev.preventDefault();
    });
  });

  // Copy buttons.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var input = document.querySelector(button.getAttribute("data-copy"));
      input.select();
      if (navigator.clipboard) navigator.clipboard.writeText(input.value).catch(function () {});
      else document.execCommand("copy");
      button.textContent = "Copied";
    });
  });

  // Live SIP/CSTA ladder.
  var ladder = document.getElementById("ladder");
  if (ladder) {
    var body = document.getElementById("ladder-body");
    var live = document.getElementById("ladder-live");
    var showSip = document.getElementById("ladder-sip");
    var showCsta = document.getElementById("ladder-csta");
    var last = null;
    var opened = {}; // rows the operator opened stay open across refreshes
    body.querySelectorAll("details.msg").forEach(function (row) {
      var key = row.getAttribute("data-key");
      row.addEventListener("toggle", function () {
        if (row.open) opened[key] = true; else delete opened[key];
      });
    });
    function render(entries) {
      var atBottom = body.scrollTop + body.clientHeight >= body.scrollHeight - 4;
      body.innerHTML = "";
      var shown = entries.filter(function (e) {
        return (e.kind === "sip" && showSip.checked) || (e.kind === "csta" && showCsta.checked);
      });
      if (!shown.length) {
        var p = document.createElement("p");
        p.className = "muted empty-ladder"; p.textContent = "No messages traced for this phone yet.";
        body.appendChild(p);
      }
      shown.forEach(function (e) {
        var key = e.time + " " + e.dir + " " + e.kind + " " + e.text;
        var row = document.createElement("details");
        row.className = "msg " + e.dir + " " + e.kind;
        row.title = (e.dir === "out" ? "uacsta → phone" : "phone → uacsta") + ": " + e.text;
        row.setAttribute("data-key", key);
        if (opened[key]) row.open = true;
        row.addEventListener("toggle", function () {
          if (row.open) opened[key] = true; else delete opened[key];
        });
        var summary = document.createElement("summary");
        var t = document.createElement("span"); t.className = "t"; t.textContent = e.clock;
        var arrow = document.createElement("span"); arrow.className = "arrow";
        var label = document.createElement("span"); label.className = "label"; label.textContent = e.text;
        var lane = document.createElement("span"); lane.className = "lane";
        arrow.appendChild(label); lane.appendChild(arrow); summary.appendChild(t); summary.appendChild(lane);
        var full = document.createElement("pre"); full.className = "full";
        full.textContent = e.detail || "(the full text is no longer kept)";
        row.appendChild(summary); row.appendChild(full);
        body.appendChild(row);
      });
      if (atBottom) body.scrollTop = body.scrollHeight;
    }
    // The lines' current calls (from the call tracker), refreshed with the ladder.
    function renderCalls(calls) {
      var box = document.getElementById("phone-calls");
      if (!box) return;
      box.innerHTML = "";
      if (!calls.length) {
        var none = document.createElement("p");
        none.className = "muted phone-calls"; none.textContent = "No calls on this phone's lines now.";
        box.appendChild(none);
        return;
      }
      var table = document.createElement("table");
      table.className = "data compact phone-calls";
      var head = table.createTHead().insertRow();
      ["Line", "State", "Other party", "Direction", "For"].forEach(function (name) {
        var th = document.createElement("th"); th.textContent = name; head.appendChild(th);
      });
      var tbody = table.createTBody();
      calls.forEach(function (c) {
        var row = tbody.insertRow();
        row.setAttribute("data-state", c.state);
        row.insertCell().textContent = c.extension;
        var state = document.createElement("span");
        state.className = "call-state call-" + c.state; state.textContent = c.state_text;
        row.insertCell().appendChild(state);
        var party = row.insertCell();
        party.textContent = c.remote;
        if (c.internal) {
          var badge = document.createElement("span");
          badge.className = "badge"; badge.textContent = "internal";
          party.appendChild(document.createTextNode(" ")); party.appendChild(badge);
        }
        row.insertCell().textContent = c.direction;
        var since = row.insertCell(); since.className = "mono"; since.textContent = c.since;
      });
      box.appendChild(table);
    }
    function refresh() {
      if (!live.checked || document.hidden) return;
      fetch(ladder.getAttribute("data-src"), { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) {
          if (r.redirected || !r.ok) throw new Error("HTTP " + r.status);
          return r.json();
        })
        .then(function (data) {
          last = data.entries;
          render(last);
          var state = document.getElementById("phone-state");
          if (state) { state.textContent = data.state; state.className = "state big state-" + data.state; }
          if (data.calls) renderCalls(data.calls);
          var reason = document.getElementById("phone-reason");
          if (reason) reason.textContent = data.reason || data.state_text || "";
        })
        .catch(function () { /* logged out or server gone: keep the last picture */ });
    }
    [showSip, showCsta].forEach(function (box) {
      box.addEventListener("change", function () { if (last) render(last); else refresh(); });
    });
    body.scrollTop = body.scrollHeight;
    refresh();
    setInterval(refresh, 2000);
  }
})();
