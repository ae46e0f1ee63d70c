// Review page. Nothing here is needed to save (the form posts without JavaScript); it makes saving safe:
// - the dropdowns arrive with their selected option only; the full lists are copied from one <template> each;
// - changed rows are marked, the action bar counts pending changes, leaving with changes asks first;
// - pending changes are kept in this browser (localStorage) until the server confirms them, so a session that
//   expired is not a loss: Update sends them to the login page's "next" and they are re-sent after login;
// - Update posts in the background, then reloads the same URL (filters, page) at the same scroll position;
// - keyboard for the desktop grid, bulk edit of selected pictures, zoom on a picture;
// - while a scrape runs, a progress bar follows it and the page reloads when it ends (not over changes).
(function () {
  "use strict";
  var form = document.getElementById("sitemap-form");
  var STORE = form ? "spotcheck:review:" + form.dataset.slug : "";
  var SCROLL = "spotcheck:review-scroll";

  function storeGet() {
    try { return JSON.parse(localStorage.getItem(STORE) || "null"); } catch (e) { return null; }
  }
  function storeSet(value) {
    try {
      if (value) localStorage.setItem(STORE, JSON.stringify(value)); else localStorage.removeItem(STORE);
    } catch (e) { /* private mode: the beforeunload warning still protects the edits */ }
  }

  // --- dropdown options from the templates ------------------------------------------------------------
  var templates = {};
  ["type", "color"].forEach(function (kind) {
    var t = document.getElementById("options-" + kind);
    if (t) templates[kind] = t.content;
  });
  function fill(select) {
    if (select.dataset.filled) return;
    var kind = select.dataset.options, current = select.value;
    if (!templates[kind]) return;
    select.textContent = "";
    select.appendChild(templates[kind].cloneNode(true));
    select.value = current;
    select.dataset.filled = "1";
  }
  if (form) form.querySelectorAll("select[data-options]").forEach(fill);

  // --- pending changes ---------------------------------------------------------------------------------
  function shownOf(select) {
    var shown = form.querySelector('input[name="shown-' + select.name + '"]');
    return shown ? shown.value : null;
  }
  function rowOf(el) { return el.closest("tr.image-row"); }
  function pendingSelects() {
    return Array.prototype.filter.call(form.querySelectorAll("select[data-options]"), function (s) {
      return s.value !== shownOf(s);
    });
  }
  var pendingEl = document.getElementById("pending");
  function refresh() {
    if (!form) return;
    var changed = pendingSelects();
    form.querySelectorAll("tr.image-row.changed").forEach(function (tr) { tr.classList.remove("changed"); });
    form.querySelectorAll("select.changed").forEach(function (s) { s.classList.remove("changed"); });
    var saved = {};
    changed.forEach(function (s) {
      s.classList.add("changed");
      rowOf(s).classList.add("changed");
      saved[s.name] = { value: s.value, shown: shownOf(s) };
      var scope = form.querySelector('select[name="scope-' + s.name.split("-")[1] + '"]');
      if (scope) saved[scope.name] = { value: scope.value, shown: null };
    });
    if (pendingEl) {
      pendingEl.textContent = changed.length ? changed.length + " pending change" + (changed.length > 1 ? "s" : "") : "No pending change";
      pendingEl.classList.toggle("has-changes", changed.length > 0);
    }
    var old = storeGet();
    if (changed.length) storeSet({ url: location.pathname + location.search, fields: saved, resubmit: false });
    else if (old && !old.resubmit) storeSet(null);
  }
  if (form) {
    form.addEventListener("change", function (e) {
      if (e.target.matches("select[data-options], select.scope")) refresh();
      if (e.target.matches(".pick-box")) selection();
    });
  }
  var leaving = false;
  window.addEventListener("beforeunload", function (e) {
    if (!form || leaving || !pendingSelects().length) return;
    e.preventDefault();
    e.returnValue = "";
  });

  // --- saving ------------------------------------------------------------------------------------------
  function csrf() {
    var input = document.querySelector('input[name="csrfmiddlewaretoken"]');
    return input ? input.value : "";
  }
  function post(fields, url) {
    var body = new URLSearchParams();
    body.append("csrfmiddlewaretoken", csrf());
    Object.keys(fields).forEach(function (name) {
      body.append(name, fields[name].value);
      if (fields[name].shown !== null && fields[name].shown !== undefined) body.append("shown-" + name, fields[name].shown);
    });
    return fetch(url, {
      method: "POST", credentials: "same-origin", body: body,
      headers: { Accept: "application/json", "X-CSRFToken": csrf() },
    });
  }
  function sessionLost(stored) {
    // Keep the edits, sign in again, and come back here: the page then re-sends them.
    stored.resubmit = true;
    storeSet(stored);
    leaving = true;
    location.href = form.dataset.login + "?next=" + encodeURIComponent(stored.url);
  }
  function save(stored, button) {
    if (button) button.disabled = true;
    return post(stored.fields, stored.url).then(function (r) {
      var json = (r.headers.get("Content-Type") || "").indexOf("application/json") === 0;
      if (!json || r.status === 401 || r.status === 403) return sessionLost(stored);
      return r.json().then(function (answer) {
        if (!r.ok) {
          if (button) button.disabled = false;
          window.alert((answer.error && answer.error.message) || "Not saved.");
          return;
        }
        storeSet(null);
        leaving = true;
        sessionStorage.setItem(SCROLL, JSON.stringify({ url: stored.url, y: window.scrollY }));
        location.replace(stored.url);
      });
    }).catch(function () {
      if (button) button.disabled = false;
      window.alert("The server could not be reached; your changes are kept in this browser. Try Update again.");
    });
  }
  if (form) {
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var button = document.getElementById("update");
      if (button.disabled) return; // a double press never sends twice (and the server skips repeats anyway)
      refresh();
      var stored = storeGet() || { url: location.pathname + location.search, fields: {} };
      if (!Object.keys(stored.fields).length) {
        window.alert("Nothing to save: no dropdown was changed.");
        return;
      }
      save(stored, button);
    });
  }

  // On load: re-send edits kept over a lost session, restore the scroll position after a save.
  (function onLoad() {
    if (!form) return;
    var stored = storeGet();
    if (stored && stored.resubmit) {
      if (pendingEl) pendingEl.textContent = "Saving the changes kept from before you signed in…";
      save(stored, document.getElementById("update"));
      return;
    }
    if (stored && stored.url === location.pathname + location.search) {
      // Unsaved edits from an earlier visit of this page (e.g. a reload): put them back.
      Object.keys(stored.fields).forEach(function (name) {
        var el = form.querySelector('select[name="' + name + '"]');
        if (el) el.value = stored.fields[name].value;
      });
      refresh();
    }
    try {
      var scroll = JSON.parse(sessionStorage.getItem(SCROLL) || "null");
      sessionStorage.removeItem(SCROLL);
      if (scroll && scroll.url === location.pathname + location.search) window.scrollTo(0, scroll.y);
    } catch (e) { /* nothing to restore */ }
  })();

  // --- bulk edit ---------------------------------------------------------------------------------------
  var bulk = document.getElementById("bulk");
  function picked() { return form ? form.querySelectorAll("tr.image-row .pick-box:checked") : []; }
  function selection() {
    if (!bulk) return;
    var n = picked().length;
    bulk.hidden = n === 0;
    document.getElementById("selected-count").textContent = n + " selected";
    form.querySelectorAll("tr.image-row").forEach(function (tr) {
      tr.classList.toggle("picked", tr.querySelector(".pick-box").checked);
    });
  }
  function setAll(kind, value) {
    if (!value) return;
    picked().forEach(function (box) {
      var select = rowOf(box).querySelector('select[data-options="' + kind + '"]');
      if (select) { fill(select); select.value = value; }
    });
    refresh();
  }
  if (bulk) {
    document.getElementById("bulk-type").addEventListener("change", function (e) { setAll("type", e.target.value); e.target.value = ""; });
    document.getElementById("bulk-color").addEventListener("change", function (e) { setAll("color", e.target.value); e.target.value = ""; });
    document.getElementById("bulk-clear").addEventListener("click", function () {
      picked().forEach(function (box) { box.checked = false; });
      selection();
    });
  }

  // --- zoom --------------------------------------------------------------------------------------------
  var zoom = document.getElementById("zoom");
  function openZoom(button) {
    if (!zoom || !button) return;
    document.getElementById("zoom-img").src = button.dataset.src;
    document.getElementById("zoom-url").href = button.dataset.url;
    zoom.showModal();
  }
  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("button.zoom");
    if (button) openZoom(button);
  });
  if (zoom) {
    document.getElementById("zoom-close").addEventListener("click", function () { zoom.close(); });
    zoom.addEventListener("click", function (e) { if (e.target === zoom) zoom.close(); });
  }
  var keys = document.getElementById("keys");
  if (keys) {
    document.getElementById("keys-help").addEventListener("click", function () { keys.showModal(); });
    document.getElementById("keys-close").addEventListener("click", function () { keys.close(); });
  }

  // --- keyboard ----------------------------------------------------------------------------------------
  var TYPES = { d: "Dealer", s: "Stock", p: "Placeholder" };
  var current = null;
  function rows() { return form ? Array.prototype.slice.call(form.querySelectorAll("tr.image-row")) : []; }
  function activate(tr) {
    if (!tr) return;
    if (current) current.classList.remove("active");
    current = tr;
    tr.classList.add("active");
    tr.scrollIntoView({ block: "nearest" });
  }
  function move(step) {
    var all = rows(), at = all.indexOf(current);
    activate(all[Math.max(0, Math.min(all.length - 1, at < 0 ? 0 : at + step))]);
  }
  function setColor(letter) {
    var select = current && current.querySelector('select[data-options="color"]');
    if (!select) return;
    fill(select);
    var names = Array.prototype.map.call(select.options, function (o) { return o.value; })
      .filter(function (c) { return c[0].toLowerCase() === letter; });
    if (!names.length) return;
    var at = names.indexOf(select.value);
    select.value = names[(at + 1) % names.length];
    refresh();
  }
  document.addEventListener("keydown", function (e) {
    if (!form || e.altKey || e.metaKey) return;
    if ((e.ctrlKey && e.key === "Enter")) { e.preventDefault(); form.requestSubmit(); return; }
    if (e.ctrlKey) return;
    var tag = e.target.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || (tag === "SELECT" && !e.target.closest("tr.image-row"))) return;
    if (document.querySelector("dialog[open]")) return;
    var key = e.key, onSelect = tag === "SELECT"; // a focused dropdown keeps its own arrow keys
    if (key === "j" || (key === "ArrowDown" && !onSelect)) { e.preventDefault(); move(1); return; }
    if (key === "k" || (key === "ArrowUp" && !onSelect)) { e.preventDefault(); move(-1); return; }
    if (!current) return;
    if (e.shiftKey && /^[A-Z]$/.test(key)) { e.preventDefault(); setColor(key.toLowerCase()); return; }
    if (TYPES[key]) {
      e.preventDefault();
      var select = current.querySelector('select[data-options="type"]');
      if (select) { fill(select); select.value = TYPES[key]; refresh(); }
    } else if (key === "x") {
      e.preventDefault();
      var box = current.querySelector(".pick-box");
      box.checked = !box.checked;
      selection();
    } else if (key === "z") {
      e.preventDefault();
      openZoom(current.querySelector("button.zoom"));
    }
  });
  if (form) {
    form.addEventListener("focusin", function (e) { var tr = rowOf(e.target); if (tr && tr !== current) activate(tr); });
    form.addEventListener("click", function (e) { var tr = rowOf(e.target); if (tr && tr !== current) activate(tr); });
  }
})();

// Progress of a running scrape: poll the scrape API, update the bar, reload when done (not over changes).
(function () {
  "use strict";
  var box = document.getElementById("scrape-status");
  if (!box || box.dataset.finished === "1") return;
  var bar = box.querySelector(".progress > span");
  function set(name, value) {
    var el = box.querySelector('[data-field="' + name + '"]');
    if (el) el.textContent = value;
  }
  function poll() {
    fetch(box.dataset.api, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (s) {
        ["status", "done", "from_cache", "failed", "total"].forEach(function (k) { set(k, s[k]); });
        if (bar) {
          bar.style.width = s.percent + "%";
          bar.parentNode.setAttribute("aria-valuenow", s.percent);
        }
        if (s.status === "done" || s.status === "failed") {
          if (!document.querySelector("#sitemap-form select.changed")) window.location.reload();
          return;
        }
        window.setTimeout(poll, 2000);
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 1500);
})();
