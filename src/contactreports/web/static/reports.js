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

  // A control is known by its report's row and its label: the swap replaces the element, and a
  // keyboard user must not be thrown back to the top of the page every time the list changes.
  function identity(element) {
    const row = element.closest("[data-report-id]");
    const label = element.getAttribute("aria-label") || element.textContent.trim();
    return (row ? row.dataset.reportId : "") + "\n" + label;
  }

  function swap(html) {
    const focused = list.contains(document.activeElement) ? identity(document.activeElement) : null;
    list.innerHTML = html;
    window.localTimes(list);
    if (focused !== null) {
      const again = Array.from(list.querySelectorAll("a, button")).find((e) => identity(e) === focused);
      if (again) again.focus();
    }
  }

  async function refresh() {
    if (!document.hidden) {
      try {
        const response = await fetch(list.dataset.src, { cache: "no-store", redirect: "manual" });
        if (response.type === "opaqueredirect") {
          window.location.assign("/"); // signed out meanwhile: the sign-in form
          return;
        }
        if (response.ok) {
          const html = await response.text();
          if (html !== shown) {
            swap(html);
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
