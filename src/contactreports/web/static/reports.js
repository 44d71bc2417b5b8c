// Keeps the reports list current without reloading the page: fetches the list's HTML from the
// app (/reports/live) and swaps it in when it changed; every second while a report is queued or
// processing, every few seconds otherwise, and not while the tab is hidden.
"use strict";
(function () {
  const list = document.getElementById("reports");
  if (!list) return;
  const ACTIVE_MS = 1000;
  const IDLE_MS = 3000;
  let shown = null;

  function active() {
    const toolbar = list.querySelector("[data-active]");
    return toolbar !== null && toolbar.dataset.active === "true";
  }

  async function refresh() {
    if (!document.hidden) {
      try {
        const response = await fetch(list.dataset.src, { headers: { Accept: "text/html" }, cache: "no-store" });
        if (response.status === 401) {
          window.location.assign("/"); // signed out meanwhile: the sign-in form
          return;
        }
        if (response.ok) {
          const html = await response.text();
          if (html !== shown) {
            list.innerHTML = html;
            shown = html;
          }
        }
      } catch (error) {
        // The service is unreachable for now: try again at the next tick.
      }
    }
    window.setTimeout(refresh, active() ? ACTIVE_MS : IDLE_MS);
  }

  window.setTimeout(refresh, active() ? ACTIVE_MS : IDLE_MS);
})();
