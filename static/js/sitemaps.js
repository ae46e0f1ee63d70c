// Review page: poll the scrape API while classification runs, update the progress bar, reload when done.
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
        var formDirty = document.querySelector("#sitemap-form select[data-dirty]");
        if (s.status === "done" || s.status === "failed") {
          if (!formDirty) window.location.reload();
          return;
        }
        window.setTimeout(poll, 2000);
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  document.addEventListener("change", function (e) {
    if (e.target.matches && e.target.matches("#sitemap-form select")) e.target.dataset.dirty = "1";
  });
  window.setTimeout(poll, 1500);
})();

// Update: send only the dropdowns that changed (a page of 25 vehicles x 12 pictures has 1,200 fields, and the
// server saves only changes anyway). Without JavaScript the whole form is sent and the server compares.
(function () {
  "use strict";
  var form = document.getElementById("sitemap-form");
  if (!form) return;
  form.addEventListener("submit", function () {
    form.querySelectorAll("select[name]").forEach(function (select) {
      var shown = form.querySelector('input[name="shown-' + select.name + '"]');
      if (shown && shown.value === select.value) {
        select.disabled = true;
        shown.disabled = true;
      }
    });
  });
})();
