// The operator's page (quota): every 5 s, fetches each live chart
// (an element with `data-refresh`) again as SVG. The page works without it.
(function () {
  "use strict";
  var boxes = document.querySelectorAll("[data-refresh]");
  if (boxes.length === 0) { return; }
  function refresh(box) {
    fetch(box.getAttribute("data-refresh"), { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        var type = r.headers.get("content-type") || "";
        if (!r.ok || type.indexOf("image/svg+xml") !== 0) { throw new Error("signed out"); }
        return r.text();
      })
      .then(function (svg) { box.innerHTML = svg; })
      .catch(function () { /* keep the last chart */ });
  }
  setInterval(function () { boxes.forEach(refresh); }, 5000);
})();
