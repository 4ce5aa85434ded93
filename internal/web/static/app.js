// writ console: the only script the console loads (the Content-Security-
// Policy allows no other and no inline script). Pages work without it;
// it only keeps the approvals list live.
"use strict";
(function () {
  var live = document.getElementById("live");
  if (!live || !window.EventSource) {
    return;
  }
  var submitting = false;
  document.addEventListener("submit", function () {
    // A decision is on its way: its answer page replaces this one.
    submitting = true;
  });
  var es = new EventSource(live.getAttribute("data-stream"));
  es.addEventListener("changed", function () {
    if (submitting) {
      return;
    }
    var a = document.activeElement;
    if (a && a.tagName === "INPUT" && a.value !== "") {
      // Someone is writing a reason: do not throw it away.
      live.textContent = "New or decided requests: reload the page to see them.";
      return;
    }
    window.location.replace(window.location.pathname);
  });
  document.body.setAttribute("data-live", "1");
})();
