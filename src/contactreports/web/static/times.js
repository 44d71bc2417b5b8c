// Times in the viewer's time zone: the pages write them in UTC, which is what shows without
// JavaScript. The live list and report status call localTimes again on what they swap in.
"use strict";
window.localTimes = (function () {
  const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
  function localTimes(root) {
    for (const element of root.querySelectorAll("time[datetime]")) {
      element.textContent = format.format(new Date(element.getAttribute("datetime")));
    }
  }
  localTimes(document);
  return localTimes;
})();
