/* Spotcheck labeling service worker: the labeling screen opens and works with no network.
 *
 * Served by labeling.pwa.service_worker at /label/sw.js (scope /label/), which fills in the shell version
 * and the static URLs. Caches:
 * - "spotcheck-shell-<version>": CSS, JS and icons, fetched at install; older versions are deleted when a
 *   new one activates.
 * - "spotcheck-pages": the labeling pages as last seen online (network first). Not versioned: a page that
 *   a new version fetched must survive that version's activation. Dropped at sign-out and on the login page.
 * - "spotcheck-pictures": the leased pictures and the guidelines' examples (cache first; the page lists
 *   them). Not versioned either: a shell update keeps the pictures held for offline work.
 * Answers waiting to upload live in localStorage, keyed by user, never in a cache: no version bump of this
 * file can strand them.
 */
"use strict";

var VERSION = "__SHELL_VERSION__";
var SHELL_URLS = __SHELL_URLS__;
var SHELL = "spotcheck-shell-" + VERSION;
var PAGES = "spotcheck-pages";
var PICTURES = "spotcheck-pictures";
var PICTURES_MAX = 400;

self.addEventListener("install", function (event) {
  event.waitUntil(
    caches.open(SHELL).then(function (cache) { return cache.addAll(SHELL_URLS); }).then(function () {
      return self.skipWaiting();
    })
  );
});

self.addEventListener("activate", function (event) {
  event.waitUntil(
    caches.keys().then(function (names) {
      return Promise.all(names.filter(function (name) {
        return name.indexOf("spotcheck-shell-") === 0 && name !== SHELL;
      }).map(function (name) { return caches.delete(name); }));
    }).then(function () { return self.clients.claim(); })
  );
});

function offlinePage() {
  var html = "<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width,initial-scale=1'>" +
    "<title>Offline · Spotcheck</title><body style='font-family:system-ui,sans-serif;padding:1.5rem;max-width:30rem'>" +
    "<h1>You are offline</h1><p>This page has not been opened on this phone with a connection yet. " +
    "Open a labeling campaign once while online; after that it works without a connection.</p></body>";
  return new Response(html, { status: 503, headers: { "Content-Type": "text/html; charset=utf-8" } });
}

function fromNetworkThenCache(request) {
  return fetch(request).then(function (response) {
    // A redirect (to the login page) or an error is never kept in place of the page.
    if (response.ok && !response.redirected && response.type === "basic") {
      var copy = response.clone();
      caches.open(PAGES).then(function (cache) { cache.put(request.url, copy); });
    }
    return response;
  }, function () {
    return caches.open(PAGES).then(function (cache) { return cache.match(request.url); }).then(function (hit) {
      return hit || offlinePage();
    });
  });
}

function fromCacheThenNetwork(request, cacheName) {
  return caches.match(request.url).then(function (hit) {
    if (hit) return hit;
    return fetch(request).then(function (response) {
      if (response.ok && response.type === "basic") {
        var copy = response.clone();
        caches.open(cacheName).then(function (cache) { cache.put(request.url, copy); });
      }
      return response;
    });
  });
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") return; // votes, undo, leases: the page's queue handles them
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate") {
    // The campaign list and the labeling screens; not downloads, stats or the admin's pages.
    if (/^\/label\/(\d+\/)?$/.test(url.pathname)) event.respondWith(fromNetworkThenCache(request));
    return;
  }
  if (url.pathname.indexOf("/static/") === 0) event.respondWith(fromCacheThenNetwork(request, SHELL));
  else if (url.pathname.indexOf("/media/") === 0) event.respondWith(fromCacheThenNetwork(request, PICTURES));
});

function keepPictures(urls) {
  return caches.open(PICTURES).then(function (cache) {
    return Promise.all(urls.map(function (u) {
      return cache.match(u).then(function (hit) {
        if (hit) return true;
        return fetch(u, { credentials: "same-origin" }).then(function (response) {
          if (!response.ok) return false;
          return cache.put(u, response).then(function () { return true; });
        }, function () { return false; });
      });
    })).then(function (kept) {
      return cache.keys().then(function (keys) {
        // Oldest first: drop what is beyond the cap (pictures already answered, in practice).
        var extra = keys.length - PICTURES_MAX;
        var drops = keys.slice(0, Math.max(extra, 0)).map(function (k) { return cache.delete(k); });
        return Promise.all(drops).then(function () { return kept.filter(Boolean).length; });
      });
    });
  });
}

/* The pages a labeler opened before this worker controlled them (the first visit) are fetched again here. */
function keepPages(urls) {
  return caches.open(PAGES).then(function (cache) {
    return Promise.all(urls.map(function (u) {
      return fetch(u, { credentials: "same-origin" }).then(function (response) {
        if (response.ok && !response.redirected) return cache.put(u, response);
      }, function () {});
    }));
  });
}

self.addEventListener("message", function (event) {
  var data = event.data || {};
  var port = event.ports && event.ports[0];
  if (data.type === "keep-pages") event.waitUntil(keepPages(data.urls || []));
  if (data.type === "keep-pictures") {
    event.waitUntil(keepPictures(data.urls || []).then(function (n) {
      if (port) port.postMessage({ kept: n, version: VERSION });
    }));
  }
});
