// agenttrace UI: the little behaviour pages need beyond links and forms. No framework, no inline
// handlers (the Content-Security-Policy allows scripts from this file only).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  function flash(button, text) {
    var old = button.textContent;
    button.textContent = text;
    setTimeout(function () { button.textContent = old; }, 1200);
  }
  function copy(text, button) {
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { flash(button, "copied"); },
        function () { fallback(text, button); });
    } else {
      fallback(text, button);
    }
  }
  function fallback(text, button) {
    var area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); flash(button, "copied"); } catch (e) { flash(button, "select and copy"); }
    area.remove();
  }
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () { copy(button.getAttribute("data-copy"), button); });
  });
  document.querySelectorAll("button[data-copy-link]").forEach(function (button) {
    button.addEventListener("click", function () { copy(window.location.href, button); });
  });
  // Pickers apply at once: choosing an experiment or a time range re-runs the search.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
  // The selected span stays in view in a long tree.
  var selected = document.querySelector("tr.span-row.selected");
  if (selected && selected.scrollIntoView) { selected.scrollIntoView({ block: "nearest" }); }
});
