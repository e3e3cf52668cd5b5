// weft dashboard: live pages without a full reload. A page whose <main>
// carries data-live is fetched again every 2 s; its <main> is swapped in
// when it changed, unless the operator is typing in a form on it.
(function () {
  "use strict";
  var main = document.querySelector("main[data-live]");
  if (!main) return;
  var busy = false;
  function editing() {
    var el = document.activeElement;
    return el && main.contains(el) && /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName);
  }
  function tick() {
    if (busy || document.hidden || editing()) return;
    busy = true;
    fetch(location.href, { headers: { "X-Weft-Part": "main" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html !== null && html !== main.innerHTML && !editing()) {
          main.innerHTML = html;
          main.setAttribute("data-refreshed", String(Date.now()));
        }
      })
      .catch(function () {})
      .then(function () { busy = false; });
  }
  setInterval(tick, 2000);
})();
