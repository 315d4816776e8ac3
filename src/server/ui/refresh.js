// Reloads a list or the overview every 5 seconds while the tab is visible;
// the pages work the same without it.
"use strict";
setInterval(function () {
  if (document.visibilityState === "visible") {
    window.location.reload();
  }
}, 5000);
