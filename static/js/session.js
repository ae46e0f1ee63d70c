/* Spotcheck, every page: what signing out means for answers kept on this phone.
 *
 * Signing out first uploads the signed-in person's queued labeling answers; if some cannot be uploaded
 * (offline), it says how many and asks before discarding them. Either way nothing of theirs is left for
 * the next person: queue, held pictures and the cached labeling pages go. A page shown to nobody signed in
 * (the login page) drops the cached labeling pages too, in case a session simply expired.
 */
(function () {
  "use strict";

  var body = document.body;
  var user = body.dataset.user;
  var PAGES = "spotcheck-pages";

  function dropPages() {
    return window.caches ? window.caches.delete(PAGES).catch(function () {}) : Promise.resolve();
  }

  if (!user) {
    dropPages();
    return;
  }
  var form = document.querySelector("form.logout");
  var Q = window.SpotcheckQueue;
  if (!form || !Q) return;
  var votesUrl = body.dataset.votesUrl;

  function uploadAll() {
    var queue = Q.load(user);
    function next() {
      if (!queue.length) return Promise.resolve(0);
      return Q.send(queue[0], votesUrl, 6000).then(function (r) {
        if (r.outcome === "retry") return queue.length;
        queue.shift();
        Q.save(user, queue);
        return next();
      });
    }
    return next();
  }

  form.addEventListener("submit", function (event) {
    if (form.dataset.cleared === "1") return;
    if (!Q.load(user).length) {
      // Nothing waiting: sign out at once (the login page drops the cached pages again, in case).
      Q.forget(user);
      dropPages();
      return;
    }
    event.preventDefault();
    // The labeling screen stops writing its queue from here on: what follows decides its fate.
    document.dispatchEvent(new CustomEvent("spotcheck:signout"));
    var button = form.querySelector("button");
    if (button) button.disabled = true;
    uploadAll().then(function (left) {
      if (left > 0 && !window.confirm(
        left + (left === 1 ? " answer has" : " answers have") + " not reached the server yet (no connection). " +
        "Signing out now discards " + (left === 1 ? "it" : "them") + " from this phone. Sign out anyway?")) {
        if (button) button.disabled = false;
        document.dispatchEvent(new CustomEvent("spotcheck:signout-cancelled"));
        return;
      }
      Q.forget(user);
      dropPages().then(function () {
        form.dataset.cleared = "1";
        form.submit();
      });
    });
  });
})();
