// The report page: times in the viewer's time zone (the page shows UTC without JavaScript), and,
// while the report is queued or processing, its status kept current (the whole page once it ends).
"use strict";
(function () {
  const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
  function localTimes(root) {
    for (const element of root.querySelectorAll("time[datetime]")) {
      element.textContent = format.format(new Date(element.getAttribute("datetime")));
    }
  }
  localTimes(document);

  const status = document.getElementById("report-status");
  if (!status || !["queued", "processing"].includes(status.dataset.status)) return;
  async function refresh() {
    if (!document.hidden) {
      try {
        const response = await fetch(window.location.href, { cache: "no-store" });
        if (response.ok) {
          const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
          const next = fresh.getElementById("report-status");
          if (next && next.dataset.status !== status.dataset.status) {
            window.location.reload(); // done or failed: the rows, summary and exports
            return;
          }
          if (next) {
            status.innerHTML = next.innerHTML;
            localTimes(status);
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
