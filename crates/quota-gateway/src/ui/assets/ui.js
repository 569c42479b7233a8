// The operator's page (quota): refreshes the Now chart every 5 s by
// fetching it again as SVG. The page works without it.
(function () {
  "use strict";
  var box = document.getElementById("chart-now-box");
  if (!box) { return; }
  var src = box.getAttribute("data-refresh");
  function refresh() {
    fetch(src, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        var type = r.headers.get("content-type") || "";
        if (!r.ok || type.indexOf("image/svg+xml") !== 0) { throw new Error("signed out"); }
        return r.text();
      })
      .then(function (svg) { box.innerHTML = svg; })
      .catch(function () { /* keep the last chart */ });
  }
  setInterval(refresh, 5000);
})();
