// The report page: while the report is queued or processing, its status kept current; once it
// is done or failed, the whole page again (the summary, rows and exports).
"use strict";
(function () {
  const status = document.getElementById("report-status");
  const running = ["queued", "processing"];
  if (!status || !running.includes(status.dataset.status)) return;
  async function refresh() {
    if (!document.hidden) {
      try {
        const response = await fetch(window.location.href, { cache: "no-store", redirect: "manual" });
        if (response.type === "opaqueredirect") {
          window.location.reload(); // deleted or signed out meanwhile: the page it now redirects to says so
          return;
        }
        if (response.ok) {
          const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
          const next = fresh.getElementById("report-status");
          if (next && !running.includes(next.dataset.status)) {
            window.location.reload();
            return;
          }
          if (next) {
            status.innerHTML = next.innerHTML;
            window.localTimes(status);
          }
        }
      } catch (error) {
        // Unreachable for now: try again at the next tick.
      }
    }
    window.setTimeout(refresh, 1000);
  }
  window.setTimeout(refresh, 1000);
})();
