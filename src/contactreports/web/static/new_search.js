// The new-search form: "All ... actions" checks or clears its category's actions (and follows
// them), and the quick ranges fill the dates. Without this script the form still works: the server
// treats a checked category box as the whole category, and a quick range button fills the dates.
"use strict";
(function () {
  for (const group of document.querySelectorAll("fieldset.category")) {
    const all = group.querySelector("input[name=categories]");
    const actions = Array.from(group.querySelectorAll("input[name=actions]"));
    const follow = function () {
      const checked = actions.filter((box) => box.checked).length;
      all.checked = checked === actions.length;
      all.indeterminate = checked > 0 && checked < actions.length;
    };
    all.addEventListener("change", function () {
      for (const box of actions) box.checked = all.checked;
      all.indeterminate = false;
    });
    for (const box of actions) box.addEventListener("change", follow);
    follow();
  }
  for (const button of document.querySelectorAll("button[name=quick]")) {
    button.addEventListener("click", function (event) {
      event.preventDefault();
      document.getElementById("start").value = button.dataset.start;
      document.getElementById("end").value = button.dataset.end;
    });
  }
})();
