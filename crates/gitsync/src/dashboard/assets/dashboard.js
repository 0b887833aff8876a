// gitsync dashboard: while a page says a sync is running (#live[data-running]), reload that part
// of the page every 3 seconds, keeping open attempts open and never while someone types there.
(function () {
  "use strict";
  function live() { return document.getElementById("live"); }
  function editing(region) {
    var a = document.activeElement;
    return a && region.contains(a) && /^(INPUT|TEXTAREA|SELECT)$/.test(a.tagName);
  }
  function schedule() { setTimeout(refresh, 3000); }
  function refresh() {
    var region = live();
    if (!region || !region.hasAttribute("data-running")) return;
    if (editing(region)) return schedule();
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (!r.ok || r.redirected) throw new Error("signed out or unavailable");
        return r.text();
      })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("live");
        var current = live();
        if (fresh && current && !editing(current)) {
          var open = Array.prototype.map.call(current.querySelectorAll("details[open][id]"), function (d) { return d.id; });
          current.replaceWith(document.importNode(fresh, true));
          open.forEach(function (id) { var d = document.getElementById(id); if (d) d.open = true; });
        }
        schedule();
      })
      .catch(function () { setTimeout(refresh, 15000); });
  }
  schedule();
})();
