/* Spotcheck labeling screen: instant answers on a phone, with or without a connection.
 *
 * - The next pictures are leased in small batches and preloaded, so the next one shows with no wait. The
 *   leased items are kept on the phone (per user and campaign) and their pictures in the service worker's
 *   cache, so the screen opens and works offline after one visit online.
 * - Every answer gets a UUID made in the browser and goes into the signed-in user's queue
 *   (static/js/labeling-queue.js), uploaded in the background, in order, with retry and backoff, and again
 *   whenever the connection comes back. A tap never waits for the network; a replay is recognised by its UUID.
 * - No accidental votes: an answer counts only once the picture is painted and has been on screen for
 *   ARM_MS; a second tap on the same picture does nothing.
 * - Undo (Backspace) takes back the last answer; Skip (S); keys 1–9 answer, 0 "can't tell"; swipe on
 *   two-choice campaigns.
 */
(function () {
  "use strict";

  var cfg = JSON.parse(document.getElementById("lb-config").textContent);
  var Q = window.SpotcheckQueue;
  var user = String(cfg.user);
  var AHEAD = 3; // pictures preloaded beyond the one on screen, at least
  var BATCH = 8; // lease up to this many at once (on screen + ahead), so most answers need no lease call
  var EXCLUDE_MAX = 200;
  var BACKOFF_MAX = 30000;
  var ARM_MS = 300; // a picture must have been painted this long before an answer counts

  var screen = document.getElementById("lb-screen");
  var figure = document.getElementById("lb-figure");
  var picture = document.getElementById("lb-picture");
  var empty = document.getElementById("lb-empty");
  var emptyText = document.getElementById("lb-empty-text");
  var undoBtn = document.getElementById("lb-undo");
  var skipBtn = document.getElementById("lb-skip");
  var counterEl = document.getElementById("lb-counter");
  var syncEl = document.getElementById("lb-sync");
  var offlineEl = document.getElementById("lb-offline");
  var toastEl = document.getElementById("lb-toast");
  var guide = document.getElementById("lb-guide");
  var choiceButtons = Array.prototype.slice.call(document.querySelectorAll(".lb-choice"));

  var buffer = []; // leased items waiting to be shown
  var current = null;
  var history = []; // answers given on this page, newest last: {item, uuid}
  var answered = {}; // item id → true once answered on this page (until undone)
  var seen = []; // item ids this page received (held, answered or skipped): excluded from the next lease
  var fetching = false;
  var refillTimer = null;
  var flushing = false;
  var flushTimer = null;
  var backoff = 1000;
  var inflight = null; // the queue entries being uploaded
  var shownAt = 0;
  var showToken = 0;
  var armed = false;
  var toastTimer = null;
  var signingOut = false;
  var campaignClosed = false;

  var dropped = Q.dropLegacy();
  var queue = Q.load(user);
  var countKey = Q.countKey(user, cfg.campaign);
  var sessionCount = Number(Q.read(window.sessionStorage, countKey, 0)) || 0;

  function toast(text) {
    toastEl.textContent = text;
    toastEl.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { toastEl.hidden = true; }, 5000);
  }

  function offline() { return !navigator.onLine; }

  /* ---- what the phone keeps: queue, held items, session counter ---- */
  function saveQueue() {
    if (!signingOut) Q.save(user, queue);
    render();
  }

  function saveHeld() {
    if (signingOut) return;
    var held = (current ? [current] : []).concat(buffer).map(function (item) {
      return { id: item.id, image_url: item.image_url };
    });
    Q.write(window.localStorage, Q.heldKey(user, cfg.campaign), held);
  }

  function setCount(n) {
    sessionCount = Math.max(n, 0);
    if (!signingOut) Q.write(window.sessionStorage, countKey, sessionCount);
    counterEl.textContent = sessionCount + " this session";
  }

  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  /* The status line, the offline banner and the end screen, from the state above. */
  function render() {
    var n = queue.filter(function (op) { return op.kind === "vote"; }).length;
    var left = buffer.length + (current ? 1 : 0);
    screen.dataset.pending = String(queue.length);
    screen.dataset.offline = offline() ? "1" : "0";
    offlineEl.hidden = !offline();
    if (offline()) {
      syncEl.textContent = plural(n, "answer", "answers") + " waiting, " +
        plural(left, "picture", "pictures") + " left offline";
    } else {
      syncEl.textContent = queue.length === 0 ? "All saved" : plural(queue.length, "answer", "answers") + " uploading…";
    }
    if (!current && screen.dataset.state === "empty") {
      if (campaignClosed) emptyText.textContent = "This campaign is closed. Thank you!";
      else if (offline()) {
        emptyText.textContent = "You have answered every picture kept on this phone. " +
          (n ? plural(n, "answer uploads", "answers upload") + " when the connection is back." : "Connect to get more.");
      } else emptyText.textContent = "No more pictures for you here right now. Thank you!";
    }
  }

  /* ---- upload ---- */
  function scheduleFlush(delay) {
    clearTimeout(flushTimer);
    flushTimer = setTimeout(flush, delay);
  }

  // Queued answers go up together (Q.sendBatch: one result per answer, each idempotent by its UUID); an undo
  // goes alone, in its place in the queue.
  var BATCH_MAX = 50;

  function isInflight(op) {
    return inflight !== null && inflight.indexOf(op) >= 0;
  }

  function refusal(op, r) {
    if (op.kind === "undo" && r.status === 409) toast("Too late to undo: that picture was already decided.");
    else if (r.code === "item_closed") toast("That picture was decided before your answer arrived.");
    else toast("An answer was refused by the server.");
  }

  function flush() {
    if (flushing || queue.length === 0 || signingOut) return;
    flushing = true;
    var ops = [queue[0]];
    if (queue[0].kind === "vote") {
      for (var k = 1; k < queue.length && ops.length < BATCH_MAX && queue[k].kind === "vote"; k++) ops.push(queue[k]);
    }
    inflight = ops;
    var call = ops[0].kind === "undo"
      ? Q.send(ops[0], cfg.votesUrl).then(function (r) { return [r]; })
      : Q.sendBatch(ops, cfg.votesUrl);
    call.then(function (results) {
      inflight = null;
      flushing = false;
      // Done and refused entries leave the queue (a refusal is said once); the rest waits for a retry.
      var settled = ops.filter(function (op, i) {
        var r = results[i];
        if (r.outcome === "refused") refusal(op, r);
        return r.outcome !== "retry";
      });
      var retry = results.filter(function (r) { return r.outcome === "retry"; });
      settled.forEach(function (op) {
        var i = queue.indexOf(op);
        if (i >= 0) queue.splice(i, 1);
      });
      if (settled.length) saveQueue();
      if (retry.length) {
        if (retry.some(function (r) { return r.status === 401 || r.status === 403; })) {
          toast("You are signed out: log in again, your answers are kept on this phone.");
        }
        render();
        scheduleFlush(backoff);
        backoff = Math.min(backoff * 2, BACKOFF_MAX);
        return;
      }
      backoff = 1000;
      if (queue.length) flush();
    });
  }

  /* ---- leasing, preloading, keeping pictures for offline ---- */
  function rememberSeen(id) {
    if (seen.indexOf(id) < 0) seen.push(id);
    if (seen.length > EXCLUDE_MAX) seen.shift();
  }

  function queuedItems() {
    return queue.filter(function (op) { return op.kind === "vote"; }).map(function (op) { return op.item; });
  }

  function keepForOffline(urls) {
    if (!urls.length || !("serviceWorker" in navigator)) return;
    navigator.serviceWorker.ready.then(function (reg) {
      if (!reg.active) return;
      var channel = new MessageChannel();
      channel.port1.onmessage = function (event) {
        screen.dataset.kept = String((Number(screen.dataset.kept) || 0) + event.data.kept);
      };
      reg.active.postMessage({ type: "keep-pictures", urls: urls }, [channel.port2]);
    });
  }

  function take(items) {
    var queued = queuedItems();
    var urls = [];
    items.forEach(function (item) {
      if (seen.indexOf(item.id) >= 0 || queued.indexOf(item.id) >= 0) return;
      rememberSeen(item.id);
      item.preload = new Image(); // keep a reference so the decoded picture stays in memory
      item.preload.src = item.image_url;
      buffer.push(item);
      urls.push(item.image_url);
    });
    keepForOffline(urls);
    return urls.length;
  }

  function goEmpty() {
    screen.dataset.state = "empty";
    empty.hidden = false;
    render();
  }

  function useHeld() {
    // Offline: the items leased on an earlier visit, whose pictures the service worker kept.
    var held = Q.read(window.localStorage, Q.heldKey(user, cfg.campaign), []);
    return take(Array.isArray(held) ? held : []);
  }

  function refill() {
    if (fetching || buffer.length > AHEAD || campaignClosed) return;
    if (offline()) {
      if (!current && !buffer.length) { useHeld(); if (!current) advance(false); }
      if (!current) goEmpty();
      return;
    }
    fetching = true;
    var exclude = seen.concat(queuedItems()).slice(-EXCLUDE_MAX);
    Q.request("POST", cfg.nextUrl, { count: BATCH - buffer.length - (current ? 1 : 0), exclude: exclude })
      .then(function (response) {
        if (response.status === 404) return { items: [], closed: true }; // the campaign was closed
        if (!response.ok) throw new Error("next " + response.status);
        return response.json();
      })
      .then(function (data) {
        fetching = false;
        var added = take(data.items);
        if (!current) advance(false);
        saveHeld();
        if (added === 0 && !current) {
          campaignClosed = !!data.closed;
          goEmpty();
          if (campaignClosed) return;
          clearTimeout(refillTimer);
          refillTimer = setTimeout(refill, 15000); // others' leases expire; look again later
        }
      })
      .catch(function () {
        fetching = false;
        if (!current && !buffer.length) { useHeld(); if (!current) advance(false); }
        if (!current) goEmpty();
        clearTimeout(refillTimer);
        refillTimer = setTimeout(refill, 3000);
      });
  }

  /* ---- showing a picture, and arming the answers once it is painted ---- */
  function disarm() {
    armed = false;
    screen.dataset.armed = "0";
  }

  function armWhenPainted(token) {
    function painted() {
      if (token !== showToken) return;
      // Two frames: the decoded picture has been composited, so the person has actually seen it.
      requestAnimationFrame(function () {
        requestAnimationFrame(function () {
          setTimeout(function () {
            if (token !== showToken) return;
            armed = true;
            screen.dataset.armed = "1";
          }, ARM_MS);
        });
      });
    }
    function failed() {
      if (token !== showToken) return;
      toast(offline() ? "This picture is not kept on this phone; skip it or reconnect." : "The picture did not load.");
    }
    if (picture.complete && picture.naturalWidth > 0) painted();
    else {
      picture.onload = function () { picture.onload = picture.onerror = null; painted(); };
      picture.onerror = function () { picture.onload = picture.onerror = null; failed(); };
    }
  }

  function show(item) {
    current = item;
    showToken += 1;
    disarm();
    if (!item) {
      screen.dataset.state = buffer.length ? "ready" : "loading";
      figure.removeAttribute("data-item-id");
      render();
      return;
    }
    empty.hidden = true;
    screen.dataset.state = "ready";
    figure.dataset.itemId = String(item.id);
    picture.onload = picture.onerror = null;
    picture.src = item.image_url;
    picture.classList.remove("lb-flash");
    void picture.offsetWidth; // restart the animation: a visible sign that the picture changed
    picture.classList.add("lb-flash");
    shownAt = performance.now();
    armWhenPainted(showToken);
    render();
  }

  function advance(fetchMore) {
    show(buffer.shift() || null);
    saveHeld();
    if (fetchMore !== false) refill();
    else if (!current && !buffer.length && screen.dataset.state !== "empty") screen.dataset.state = "loading";
  }

  /* ---- the three actions ---- */
  function answer(label) {
    if (!current || !armed || answered[current.id]) return; // too soon, not painted, or answered already
    disarm();
    answered[current.id] = true;
    var entry = {
      kind: "vote",
      uuid: window.crypto.randomUUID ? window.crypto.randomUUID() : uuid4(),
      item: current.id,
      label: label,
      ms: Math.min(Math.round(performance.now() - shownAt), 3600000),
    };
    queue.push(entry);
    saveQueue();
    history.push({ item: current, uuid: entry.uuid });
    setCount(sessionCount + 1);
    undoBtn.disabled = false;
    advance();
    flush();
  }

  function uuid4() {
    // Older browsers or a non-secure context: a version-4 UUID from getRandomValues.
    var b = new Uint8Array(16);
    window.crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
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
    delete answered[last.item.id];
    setCount(sessionCount - 1);
    undoBtn.disabled = history.length === 0;
    if (current) buffer.unshift(current);
    show(last.item);
    saveHeld();
    flush();
  }

  function skip() {
    if (!current) return;
    // Give the lease back so someone else can answer it now, not in ten minutes. Best effort: if it fails
    // (offline), the lease simply expires; this page never asks for the item again (it is in "seen").
    var leaseUrl = cfg.leaseUrl.replace("/0/", "/" + current.id + "/");
    Q.request("DELETE", leaseUrl).catch(function () {});
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
    if (guide.open || event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
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

  // Sign-out (static/js/session.js) decides about the queue; from then on this page must not write it back.
  document.addEventListener("spotcheck:signout", function () { signingOut = true; clearTimeout(flushTimer); });
  document.addEventListener("spotcheck:signout-cancelled", function () {
    signingOut = false;
    queue = Q.load(user);
    saveQueue();
    flush();
  });
  window.addEventListener("online", function () { backoff = 1000; render(); flush(); refill(); });
  window.addEventListener("offline", render);
  document.addEventListener("visibilitychange", function () { if (!document.hidden && queue.length) flush(); });
  setInterval(function () { if (queue.length) flush(); }, 10000);

  if ("serviceWorker" in navigator && cfg.serviceWorkerUrl) {
    navigator.serviceWorker.register(cfg.serviceWorkerUrl, { scope: cfg.scope }).catch(function () {});
    navigator.serviceWorker.ready.then(function (reg) {
      // This page and the campaign list (the installed app's start page), for when it opens offline.
      if (reg.active && !offline()) {
        reg.active.postMessage({ type: "keep-pages", urls: [window.location.pathname, cfg.scope] });
      }
    });
    var examples = Array.prototype.map.call(document.querySelectorAll(".lb-examples img"), function (img) {
      return img.getAttribute("src");
    });
    keepForOffline(examples);
  }

  setCount(sessionCount);
  if (dropped) toast(plural(dropped, "answer", "answers") + " kept by an older version of this app could not be told apart by person and were discarded.");
  render();
  flush(); // answers left from an earlier visit
  refill();
})();
