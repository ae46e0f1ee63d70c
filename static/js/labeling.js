/* Spotcheck labeling screen: instant answers on a phone.
 *
 * - The next pictures are leased in small batches and preloaded, so the next one shows with no wait.
 * - Every answer gets a UUID made in the browser and goes into a queue kept in localStorage; the queue is
 *   uploaded in the background, in order, with retry and backoff. A tap never waits for the network, and a
 *   replayed answer is recognised by its UUID on the server, so nothing is lost or counted twice.
 * - Undo (Backspace) takes back the last answer: removed from the queue if not sent yet, else undone on
 *   the server (DELETE by UUID). Skip (S). Keys 1–9 answer, 0 "can't tell". Swipe on two-choice campaigns.
 */
(function () {
  "use strict";

  var cfg = JSON.parse(document.getElementById("lb-config").textContent);
  var QUEUE_KEY = "spotcheck.labeling.queue.v1";
  var AHEAD = 3; // pictures preloaded beyond the one on screen, at least
  var BATCH = 8; // lease up to this many at once (on screen + ahead), so most answers need no lease call
  var EXCLUDE_MAX = 200;
  var BACKOFF_MAX = 30000;

  var screen = document.getElementById("lb-screen");
  var figure = document.getElementById("lb-figure");
  var picture = document.getElementById("lb-picture");
  var empty = document.getElementById("lb-empty");
  var undoBtn = document.getElementById("lb-undo");
  var skipBtn = document.getElementById("lb-skip");
  var counterEl = document.getElementById("lb-counter");
  var syncEl = document.getElementById("lb-sync");
  var toastEl = document.getElementById("lb-toast");
  var guide = document.getElementById("lb-guide");
  var choiceButtons = Array.prototype.slice.call(document.querySelectorAll(".lb-choice"));

  var buffer = []; // leased items waiting to be shown
  var current = null;
  var history = []; // answers given on this page, newest last: {item, uuid}
  var seen = []; // item ids this page received (held, answered or skipped): excluded from the next lease
  var sessionCount = 0;
  var fetching = false;
  var refillTimer = null;
  var flushing = false;
  var flushTimer = null;
  var backoff = 1000;
  var inflight = null; // the queue entries being uploaded
  var shownAt = 0;
  var toastTimer = null;

  function csrfToken() {
    var m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  function newUuid() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
    // Older browsers or a non-secure context: a version-4 UUID from getRandomValues.
    var b = new Uint8Array(16);
    window.crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  /* ---- the upload queue (localStorage) ---- */
  function loadQueue() {
    try {
      var q = JSON.parse(window.localStorage.getItem(QUEUE_KEY) || "[]");
      return Array.isArray(q) ? q : [];
    } catch (e) {
      return [];
    }
  }
  var queue = loadQueue();

  function saveQueue() {
    try {
      window.localStorage.setItem(QUEUE_KEY, JSON.stringify(queue));
    } catch (e) {
      /* storage full or disabled: the queue still lives in memory for this page */
    }
    updateSync();
  }

  function updateSync() {
    var n = queue.length;
    screen.dataset.pending = String(n);
    var text = n === 0 ? "All saved" : n + " waiting to upload";
    if (n && !navigator.onLine) text += " (offline)";
    syncEl.textContent = text;
  }

  function toast(text) {
    toastEl.textContent = text;
    toastEl.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { toastEl.hidden = true; }, 4000);
  }

  function scheduleFlush(delay) {
    clearTimeout(flushTimer);
    flushTimer = setTimeout(flush, delay);
  }

  function request(method, url, body) {
    var opts = {
      method: method,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
    };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(url, opts);
  }

  function errorCode(response) {
    return response.json().then(
      function (data) { return (data && data.error && data.error.code) || ""; },
      function () { return ""; }
    );
  }

  // Queued answers go up together (POST votes/batch/: one result per answer, each idempotent by its UUID);
  // an undo goes alone, in its place in the queue.
  var BATCH_MAX = 50;

  function isInflight(op) {
    return inflight !== null && inflight.indexOf(op) >= 0;
  }

  function refusal(op, s, code) {
    if (op.kind === "undo" && s === 409) toast("Too late to undo: that picture was already decided.");
    else if (code === "item_closed") toast("That picture was decided before your answer arrived.");
    else if (s === 400) toast("An answer was refused by the server.");
  }

  function flush() {
    if (flushing || queue.length === 0) return;
    flushing = true;
    var ops = [queue[0]];
    if (queue[0].kind === "vote") {
      for (var k = 1; k < queue.length && ops.length < BATCH_MAX && queue[k].kind === "vote"; k++) ops.push(queue[k]);
    }
    inflight = ops;
    var call = ops[0].kind === "undo"
      ? request("DELETE", cfg.votesUrl + encodeURIComponent(ops[0].uuid) + "/")
      : request("POST", cfg.votesUrl + "batch/", {
          votes: ops.map(function (op) {
            return { item: op.item, label: op.label, client_uuid: op.uuid, ms_to_answer: op.ms };
          }),
        });
    call
      .then(function (response) {
        var s = response.status;
        if (s === 401 || s === 403) {
          toast("You are signed out: log in again, your answers are kept on this phone.");
          return [];
        }
        if (s === 429 || s >= 500) return [];
        if (ops[0].kind === "vote" && s === 200) {
          return response.json().then(function (data) {
            // 2xx recorded; 4xx the server will never accept this answer: say why and drop it.
            return ops.filter(function (op, i) {
              var r = data.results[i];
              if (r.status >= 400) refusal(op, r.status, (r.error && r.error.code) || "");
              return r.status < 500;
            });
          });
        }
        if (s >= 200 && s < 300) return ops;
        // 4xx other than auth: the server will never accept this entry; say why and drop it.
        return errorCode(response).then(function (code) {
          refusal(ops[0], s, code);
          return ops;
        });
      }, function () {
        return []; // network down: keep them, try again later
      })
      .then(function (done) {
        inflight = null;
        flushing = false;
        if (done.length) {
          done.forEach(function (op) {
            var i = queue.indexOf(op);
            if (i >= 0) queue.splice(i, 1);
          });
          saveQueue();
          backoff = 1000;
          if (queue.length) flush();
        } else {
          updateSync();
          scheduleFlush(backoff);
          backoff = Math.min(backoff * 2, BACKOFF_MAX);
        }
      });
  }

  /* ---- leasing and preloading ---- */
  function rememberSeen(id) {
    if (seen.indexOf(id) < 0) seen.push(id);
    if (seen.length > EXCLUDE_MAX) seen.shift();
  }

  function refill() {
    if (fetching || buffer.length > AHEAD) return;
    fetching = true;
    var queued = queue.filter(function (op) { return op.kind === "vote"; }).map(function (op) { return op.item; });
    var exclude = seen.concat(queued).slice(-EXCLUDE_MAX);
    request("POST", cfg.nextUrl, { count: BATCH - buffer.length - (current ? 1 : 0), exclude: exclude })
      .then(function (response) {
        if (response.status === 404) return { items: [], closed: true }; // the campaign was closed
        if (!response.ok) throw new Error("next " + response.status);
        return response.json();
      })
      .then(function (data) {
        fetching = false;
        var added = 0;
        data.items.forEach(function (item) {
          if (seen.indexOf(item.id) >= 0 || queued.indexOf(item.id) >= 0) return;
          rememberSeen(item.id);
          item.preload = new Image(); // keep a reference so the decoded picture stays in memory
          item.preload.src = item.image_url;
          buffer.push(item);
          added += 1;
        });
        if (!current) advance();
        if (added === 0 && !current) {
          screen.dataset.state = "empty";
          empty.hidden = false;
          if (data.closed) {
            empty.textContent = "This campaign is closed. Thank you!";
            return;
          }
          clearTimeout(refillTimer);
          refillTimer = setTimeout(refill, 15000); // others' leases expire; look again later
        }
      })
      .catch(function () {
        fetching = false;
        clearTimeout(refillTimer);
        refillTimer = setTimeout(refill, 3000);
      });
  }

  function show(item) {
    current = item;
    if (!item) {
      screen.dataset.state = buffer.length ? "ready" : "loading";
      figure.removeAttribute("data-item-id");
      return;
    }
    empty.hidden = true;
    screen.dataset.state = "ready";
    figure.dataset.itemId = String(item.id);
    picture.src = item.image_url;
    picture.classList.remove("lb-flash");
    void picture.offsetWidth; // restart the animation: a visible sign that the picture changed
    picture.classList.add("lb-flash");
    shownAt = performance.now();
  }

  function advance() {
    show(buffer.shift() || null);
    refill();
  }

  /* ---- the three actions ---- */
  function answer(label) {
    if (!current) return;
    var entry = {
      kind: "vote",
      uuid: newUuid(),
      item: current.id,
      label: label,
      ms: Math.min(Math.round(performance.now() - shownAt), 3600000),
    };
    queue.push(entry);
    saveQueue();
    history.push({ item: current, uuid: entry.uuid });
    sessionCount += 1;
    counterEl.textContent = sessionCount + " this session";
    undoBtn.disabled = false;
    advance();
    flush();
  }

  function undo() {
    var last = history.pop();
    if (!last) return;
    var i = -1;
    for (var k = 0; k < queue.length; k++) {
      if (queue[k].kind === "vote" && queue[k].uuid === last.uuid) i = k;
    }
    if (i >= 0 && !isInflight(queue[i])) {
      queue.splice(i, 1); // never sent: forget it
    } else {
      queue.push({ kind: "undo", uuid: last.uuid });
    }
    saveQueue();
    sessionCount -= 1;
    counterEl.textContent = sessionCount + " this session";
    undoBtn.disabled = history.length === 0;
    if (current) buffer.unshift(current);
    show(last.item);
    flush();
  }

  function skip() {
    if (!current) return;
    // Give the lease back so someone else can answer it now, not in ten minutes. Best effort: if it fails
    // (offline), the lease simply expires; this page never asks for the item again (it is in "seen").
    var leaseUrl = cfg.leaseUrl.replace("/0/", "/" + current.id + "/");
    request("DELETE", leaseUrl).catch(function () {});
    advance();
  }

  /* ---- wiring ---- */
  choiceButtons.forEach(function (button) {
    button.addEventListener("click", function () { answer(button.dataset.label); });
  });
  undoBtn.addEventListener("click", undo);
  skipBtn.addEventListener("click", skip);
  document.getElementById("lb-guide-open").addEventListener("click", function () {
    if (typeof guide.showModal === "function") guide.showModal();
    else guide.setAttribute("open", "");
  });

  var realChoices = cfg.choices.filter(function (c) { return c.value !== "cant_tell"; });
  document.addEventListener("keydown", function (event) {
    if (guide.open || event.ctrlKey || event.metaKey || event.altKey) return;
    var tag = (event.target && event.target.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
    if (event.key >= "1" && event.key <= "9") {
      var choice = realChoices[Number(event.key) - 1];
      if (choice) { event.preventDefault(); answer(choice.value); }
    } else if (event.key === "0") {
      event.preventDefault();
      answer("cant_tell");
    } else if (event.key === "Backspace") {
      event.preventDefault();
      undo();
    } else if (event.key === "s" || event.key === "S") {
      event.preventDefault();
      skip();
    }
  });

  if (cfg.swipe && realChoices.length === 2) {
    var start = null;
    figure.addEventListener("touchstart", function (e) {
      start = e.touches.length === 1 ? { x: e.touches[0].clientX, y: e.touches[0].clientY } : null;
    }, { passive: true });
    figure.addEventListener("touchend", function (e) {
      if (!start || !e.changedTouches.length) return;
      var dx = e.changedTouches[0].clientX - start.x;
      var dy = e.changedTouches[0].clientY - start.y;
      start = null;
      if (Math.abs(dx) > 60 && Math.abs(dx) > 2 * Math.abs(dy)) answer(realChoices[dx < 0 ? 0 : 1].value);
    }, { passive: true });
  }

  window.addEventListener("online", function () { backoff = 1000; updateSync(); flush(); refill(); });
  window.addEventListener("offline", updateSync);
  setInterval(function () { if (queue.length) flush(); }, 10000);

  updateSync();
  flush(); // answers left from an earlier visit
  refill();
})();
