// The status page keeps itself up to date: reloaded every few seconds while
// shown, unless paused with the button this adds (the choice kept for the tab).
(function () {
  "use strict";
  var me = document.currentScript;
  var seconds = Math.max(2, Number(me && me.dataset.seconds) || 5);
  document.addEventListener("DOMContentLoaded", function () {
    var paused = sessionStorage.getItem("mailroom-paused") === "1";
    var button = document.createElement("button");
    button.type = "button";
    button.id = "pause";
    function label() {
      button.textContent = paused ? "Resume updates" : "Pause updates";
      button.setAttribute("aria-pressed", paused ? "true" : "false");
    }
    label();
    button.addEventListener("click", function () {
      paused = !paused;
      sessionStorage.setItem("mailroom-paused", paused ? "1" : "0");
      label();
    });
    var footer = document.querySelector("footer");
    if (footer) { footer.prepend(button, " "); }
    setInterval(function () {
      if (!paused && document.visibilityState === "visible") { location.reload(); }
    }, seconds * 1000);
  });
})();
