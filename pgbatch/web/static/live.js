// pgbatch live refresh: every element with data-live="N" (N > 0 seconds) is
// replaced, every N seconds, by the element with the same id in a fresh copy
// of the page (fetched from the same URL, same origin, with the same cookies).
// Refreshing pauses while the tab is hidden or a form field has focus.
// No dependency, nothing fetched from anywhere else.
(function () {
  "use strict";
  function schedule(el) {
    var seconds = parseFloat(el.getAttribute("data-live"));
    if (!(seconds > 0)) { return; }
    window.setTimeout(function () { refresh(el.id); }, seconds * 1000);
  }
  function busy() {
    var a = document.activeElement;
    return document.hidden || (a && (a.tagName === "INPUT" || a.tagName === "SELECT" || a.tagName === "TEXTAREA"));
  }
  function refresh(id) {
    var el = document.getElementById(id);
    if (!el) { return; }
    if (busy()) { schedule(el); return; }
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Live-Refresh": "1" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById(id);
        var cur = document.getElementById(id);
        if (fresh && cur) {
          cur.replaceWith(document.importNode(fresh, true));
          document.body.setAttribute("data-refreshed", String(Date.now()));
          schedule(document.getElementById(id));
        }
      })
      .catch(function () { var cur = document.getElementById(id); if (cur) { schedule(cur); } });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var els = document.querySelectorAll("[data-live]");
    for (var i = 0; i < els.length; i++) { if (els[i].id) { schedule(els[i]); } }
  });
})();
