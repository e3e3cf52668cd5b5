// weft dashboard: live pages without a full reload. A page whose <main>
// carries data-live is fetched again every 2 s (its <main> only, with a
// digest of it in X-Weft-Digest); when the digest differs from the one the
// page shows (data-digest) it replaces <main>, keeping the <details> that
// were open. It does nothing while the tab is hidden, while
// a field on the page has focus, or once a form on it has been changed.
(function () {
  "use strict";
  var main = document.querySelector("main[data-live]");
  if (!main) return;
  var busy = false;
  var dirty = false;
  main.addEventListener("input", function () { dirty = true; });
  main.addEventListener("change", function () { dirty = true; });
  function editing() {
    var el = document.activeElement;
    return dirty || (el && main.contains(el) && /^(INPUT|TEXTAREA|SELECT|BUTTON)$/.test(el.tagName));
  }
  function openDetails() {
    var open = [];
    main.querySelectorAll("details").forEach(function (d, i) { if (d.open) open.push(i); });
    return open;
  }
  function tick() {
    if (busy || document.hidden || editing()) return;
    busy = true;
    fetch(location.href, { headers: { "X-Weft-Part": "main" }, credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) return null;
        var digest = r.headers.get("X-Weft-Digest");
        return r.text().then(function (html) { return { html: html, digest: digest }; });
      })
      .then(function (got) {
        if (got === null || editing() || got.digest === main.dataset.digest) return;
        main.dataset.digest = got.digest;
        var html = got.html;
        var open = openDetails();
        main.innerHTML = html;
        var all = main.querySelectorAll("details");
        open.forEach(function (i) { if (all[i]) all[i].open = true; });
        main.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () {})
      .then(function () { busy = false; });
  }
  setInterval(tick, 2000);
})();
