/* Spotcheck: the per-user queue of labeling answers waiting to upload, shared by the labeling screen and
 * the sign-out button.
 *
 * The queue lives in localStorage under a key that names the user ("spotcheck.labeling.queue.v2.u<id>"), so
 * after a sign-out the next person on the phone never uploads it as theirs; it is independent of the service
 * worker's caches, so a new version of the app never strands it. Each entry carries its own client UUID:
 * re-sending is harmless, the server recognises it.
 */
(function () {
  "use strict";

  var PREFIX = "spotcheck.labeling.";
  var LEGACY_KEY = "spotcheck.labeling.queue.v1"; // before queues named their user: whose it is is unknown

  function queueKey(user) { return PREFIX + "queue.v2.u" + user; }
  function heldKey(user, campaign) { return PREFIX + "held.u" + user + ".c" + campaign; }
  function countKey(user, campaign) { return PREFIX + "count.u" + user + ".c" + campaign; }

  function read(storage, key, fallback) {
    try {
      var value = JSON.parse(storage.getItem(key));
      return value === null ? fallback : value;
    } catch (e) {
      return fallback;
    }
  }

  function write(storage, key, value) {
    try {
      storage.setItem(key, JSON.stringify(value));
      return true;
    } catch (e) {
      return false; // storage full or disabled: the caller keeps the value in memory
    }
  }

  function load(user) {
    var q = read(window.localStorage, queueKey(user), []);
    return Array.isArray(q) ? q : [];
  }

  function save(user, queue) {
    if (queue.length) return write(window.localStorage, queueKey(user), queue);
    window.localStorage.removeItem(queueKey(user));
    return true;
  }

  /* Answers an older version kept under one key for whoever was signed in: they cannot be attributed, and
   * uploading them as the current user is exactly the misattribution the per-user key prevents. */
  function dropLegacy() {
    var old = read(window.localStorage, LEGACY_KEY, []);
    window.localStorage.removeItem(LEGACY_KEY);
    return Array.isArray(old) ? old.length : 0;
  }

  /* Everything this phone keeps for a user: their queue, held pictures and session counters. */
  function forget(user) {
    [window.localStorage, window.sessionStorage].forEach(function (storage) {
      var doomed = [];
      for (var i = 0; i < storage.length; i++) {
        var k = storage.key(i);
        if (k === queueKey(user) || k.indexOf(PREFIX + "held.u" + user + ".") === 0 ||
            k.indexOf(PREFIX + "count.u" + user + ".") === 0) doomed.push(k);
      }
      doomed.forEach(function (k) { storage.removeItem(k); });
    });
  }

  function csrfToken() {
    var m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  function request(method, url, body, timeoutMs) {
    var opts = {
      method: method,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
    };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    if (timeoutMs && window.AbortController) {
      var ctl = new AbortController();
      setTimeout(function () { ctl.abort(); }, timeoutMs);
      opts.signal = ctl.signal;
    }
    return fetch(url, opts);
  }

  function errorCode(response) {
    return response.json().then(
      function (data) { return (data && data.error && data.error.code) || ""; },
      function () { return ""; }
    );
  }

  /* What a status means for an entry: "done", "retry" (signed out, throttled, server trouble) or "refused"
   * (any other 4xx: the server will never take this entry). */
  function outcomeOf(s) {
    if (s >= 200 && s < 300) return "done";
    if (s === 401 || s === 403 || s === 429 || s >= 500) return "retry";
    return "refused";
  }

  function answerBody(op) {
    return { item: op.item, label: op.label, client_uuid: op.uuid, ms_to_answer: op.ms };
  }

  /* Upload one entry. Resolves {outcome: "done" | "retry" | "refused", status, code}. */
  function send(op, votesUrl, timeoutMs) {
    var call = op.kind === "undo"
      ? request("DELETE", votesUrl + encodeURIComponent(op.uuid) + "/", undefined, timeoutMs)
      : request("POST", votesUrl, answerBody(op), timeoutMs);
    return call.then(function (response) {
      var s = response.status;
      if (outcomeOf(s) !== "refused") return { outcome: outcomeOf(s), status: s };
      return errorCode(response).then(function (code) { return { outcome: "refused", status: s, code: code }; });
    }, function () {
      return { outcome: "retry", status: 0 }; // no network
    });
  }

  /* Upload several answers (votes, never an undo) in one request: POST votes/batch/ answers one result per
   * answer, in order, each idempotent by its UUID. Resolves one {outcome, status, code} per answer. */
  function sendBatch(ops, votesUrl, timeoutMs) {
    function all(result) { return ops.map(function () { return result; }); }
    return request("POST", votesUrl + "batch/", { votes: ops.map(answerBody) }, timeoutMs).then(function (response) {
      var s = response.status;
      if (s === 200) {
        return response.json().then(function (data) {
          return ops.map(function (op, i) {
            var r = data.results[i];
            return { outcome: outcomeOf(r.status), status: r.status, code: (r.error && r.error.code) || "" };
          });
        }, function () { return all({ outcome: "retry", status: s }); });
      }
      if (outcomeOf(s) !== "refused") return all({ outcome: outcomeOf(s), status: s });
      // The whole request was refused (not one answer): the server will never take it as it is.
      return errorCode(response).then(function (code) { return all({ outcome: "refused", status: s, code: code }); });
    }, function () {
      return all({ outcome: "retry", status: 0 }); // no network
    });
  }

  window.SpotcheckQueue = {
    queueKey: queueKey,
    heldKey: heldKey,
    countKey: countKey,
    read: read,
    write: write,
    load: load,
    save: save,
    dropLegacy: dropLegacy,
    forget: forget,
    request: request,
    send: send,
    sendBatch: sendBatch,
  };
})();
